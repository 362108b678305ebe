//! The rings under test, each behind [`SpscPeer`] and each driven through the burst API its
//! authors intend (per-item calls where it has none).

use crossbeam_queue::ArrayQueue;
use ringbuf::HeapRb;
use ringbuf::traits::{Consumer as _, Producer as _, Split as _};
use rtrb::chunks::ChunkError;
use sluice_mempool::Batch;
use sluice_mempool::ring::{self, Consumer, Producer};

use crate::ring_bench::{MAX_BURST, Sequence, SpscPeer};
use std::sync::Arc;

/// A burst array kept with a ring end and reused for every call, as an application keeps
/// its `rx_burst` array: creating (and zeroing) one per call would bill 256 bytes of stores
/// to every poll.
pub type BurstBuf = [u64; MAX_BURST];

/// Fills `buf[..n]` with `first, first + 1, ..` and returns that prefix: the items a
/// slice-based producer hands to its ring.
#[inline]
fn sequence(buf: &mut BurstBuf, first: u64, n: usize) -> &[u64] {
    for (i, slot) in buf[..n].iter_mut().enumerate() {
        *slot = first + i as u64;
    }
    &buf[..n]
}

/// Sluice's ring through its slice API (`push_slice_burst` / `pop_slice_burst`), the way a
/// port hands over a burst of descriptors or pointers.
#[derive(Debug)]
pub struct SluiceSlice;

impl SpscPeer for SluiceSlice {
    const NAME: &'static str = "sluice ring (slice)";
    type Tx = (Producer<u64>, BurstBuf);
    type Rx = (Consumer<u64>, BurstBuf);

    fn split(capacity: usize) -> (Self::Tx, Self::Rx) {
        let (tx, rx) = ring::ring(capacity).expect("capacity is a power of two");
        ((tx, [0; MAX_BURST]), (rx, [0; MAX_BURST]))
    }

    #[inline]
    fn push((tx, buf): &mut Self::Tx, first: u64, n: usize) -> usize {
        tx.push_slice_burst(sequence(buf, first, n))
    }

    #[inline]
    fn pop((rx, out): &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize {
        let n = rx.pop_slice_burst(&mut out[..max]);
        seen.check(&out[..n]);
        n
    }
}

/// Sluice's ring through its in-place API (`push_iter` / `consume_slices`): items are written
/// straight into the slots and read where they lie, as rtrb's chunk API does.
#[derive(Debug)]
pub struct SluiceInPlace;

impl SpscPeer for SluiceInPlace {
    const NAME: &'static str = "sluice ring (in place)";
    type Tx = Producer<u64>;
    type Rx = Consumer<u64>;

    fn split(capacity: usize) -> (Self::Tx, Self::Rx) {
        ring::ring(capacity).expect("capacity is a power of two")
    }

    #[inline]
    fn push(tx: &mut Self::Tx, first: u64, n: usize) -> usize {
        tx.push_iter(&mut (first..first + n as u64))
    }

    #[inline]
    fn pop(rx: &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize {
        rx.consume_slices(max, |a, b| {
            seen.check(a);
            seen.check(b);
        })
        .0
    }
}

/// Sluice's ring through its owned-item API (`push_burst` / `pop_burst` over a [`Batch`]),
/// the path `PktBuf`s take between lcores.
#[derive(Debug)]
pub struct SluiceBatch;

impl SpscPeer for SluiceBatch {
    const NAME: &'static str = "sluice ring (Batch)";
    type Tx = (Producer<u64>, Batch<u64, MAX_BURST>);
    type Rx = (Consumer<u64>, Batch<u64, MAX_BURST>);

    fn split(capacity: usize) -> (Self::Tx, Self::Rx) {
        let (tx, rx) = ring::ring(capacity).expect("capacity is a power of two");
        ((tx, Batch::new()), (rx, Batch::new()))
    }

    #[inline]
    fn push((tx, batch): &mut Self::Tx, first: u64, n: usize) -> usize {
        // Whatever the ring did not take last time is still at the front of the batch and is
        // exactly the items `first..`; top the batch up to `n`.
        let have = batch.len() as u64;
        batch.extend(first + have..first + n as u64);
        tx.push_burst(batch)
    }

    #[inline]
    fn pop((rx, batch): &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize {
        let n = rx.pop_burst(batch, max);
        seen.check(batch.as_slice());
        batch.clear();
        n
    }
}

/// `crossbeam_queue::ArrayQueue`: a bounded MPMC queue with no burst API, so a burst is a
/// loop of `push`/`pop`.
#[derive(Debug)]
pub struct CrossbeamArrayQueue;

impl SpscPeer for CrossbeamArrayQueue {
    const NAME: &'static str = "ArrayQueue";
    type Tx = Arc<ArrayQueue<u64>>;
    type Rx = (Arc<ArrayQueue<u64>>, BurstBuf);

    fn split(capacity: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(ArrayQueue::new(capacity));
        (q.clone(), (q, [0; MAX_BURST]))
    }

    #[inline]
    fn push(tx: &mut Self::Tx, first: u64, n: usize) -> usize {
        (0..n)
            .take_while(|&i| tx.push(first + i as u64).is_ok())
            .count()
    }

    #[inline]
    fn pop((rx, out): &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize {
        let mut n = 0;
        while n < max {
            let Some(item) = rx.pop() else { break };
            out[n] = item;
            n += 1;
        }
        seen.check(&out[..n]);
        n
    }
}

/// `rtrb` 0.4: `push`/`pop` for single items, its chunk API (`write_chunk_uninit` +
/// `fill_from_iter`, `read_chunk`) for bursts, shrinking a chunk to what is available as its
/// docs show.
#[derive(Debug)]
pub struct Rtrb;

impl SpscPeer for Rtrb {
    const NAME: &'static str = "rtrb";
    type Tx = rtrb::Producer<u64>;
    type Rx = rtrb::Consumer<u64>;

    fn split(capacity: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(capacity)
    }

    #[inline]
    fn push(tx: &mut Self::Tx, first: u64, n: usize) -> usize {
        if n == 1 {
            return usize::from(tx.push(first).is_ok());
        }
        let chunk = match tx.write_chunk_uninit(n) {
            Ok(chunk) => chunk,
            Err(ChunkError::TooFewSlots(0)) => return 0,
            Err(ChunkError::TooFewSlots(k)) => match tx.write_chunk_uninit(k) {
                Ok(chunk) => chunk,
                Err(_) => return 0,
            },
        };
        chunk.fill_from_iter(first..)
    }

    #[inline]
    fn pop(rx: &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize {
        if max == 1 {
            return rx.pop().map_or(0, |item| {
                seen.check(&[item]);
                1
            });
        }
        let chunk = match rx.read_chunk(max) {
            Ok(chunk) => chunk,
            Err(ChunkError::TooFewSlots(0)) => return 0,
            Err(ChunkError::TooFewSlots(k)) => match rx.read_chunk(k) {
                Ok(chunk) => chunk,
                Err(_) => return 0,
            },
        };
        let (a, b) = chunk.as_slices();
        seen.check(a);
        seen.check(b);
        let n = chunk.len();
        chunk.commit_all();
        n
    }
}

/// `ringbuf` 0.4: the slice API (`push_slice` / `pop_slice`) of a split `HeapRb`.
#[derive(Debug)]
pub struct Ringbuf;

impl SpscPeer for Ringbuf {
    const NAME: &'static str = "ringbuf";
    type Tx = (ringbuf::HeapProd<u64>, BurstBuf);
    type Rx = (ringbuf::HeapCons<u64>, BurstBuf);

    fn split(capacity: usize) -> (Self::Tx, Self::Rx) {
        let (tx, rx) = HeapRb::new(capacity).split();
        ((tx, [0; MAX_BURST]), (rx, [0; MAX_BURST]))
    }

    #[inline]
    fn push((tx, buf): &mut Self::Tx, first: u64, n: usize) -> usize {
        tx.push_slice(sequence(buf, first, n))
    }

    #[inline]
    fn pop((rx, out): &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize {
        let n = rx.pop_slice(&mut out[..max]);
        seen.check(&out[..n]);
        n
    }
}
