//! A receive and a transmit queue on rings whose other side is played by the caller, as an
//! untrusted kernel would (feature `test-utils`, for fuzz targets and tests): any
//! descriptor, any address, any index, at any time. The driver must never panic, never
//! follow an address outside its UMEM, and return every buffer to its pool once the socket
//! is gone ([`FakeKernel::finish`]).
//!
//! The rings are shared memory mapped twice (`RingMap::pair`), one view per side; the
//! socket is a stand-in descriptor (`/dev/null`), so wakeups fail and are counted.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_mempool::{Batch, HugePagePolicy, PageSize, PktBuf, PktPoolConfig};

use super::ring::{ConsRing, ProdRing};
use super::rx::AfXdpRxQueue;
use super::sys::{RingEntry, RingMap, XdpDesc};
use super::tx::AfXdpTxQueue;
use super::umem::{ChunkTable, Umem, XDP_PACKET_HEADROOM};
use super::xsk::Xsk;
use crate::net::{QueueCounters, RxQueue, TxQueue};

/// An AF_XDP receive and transmit queue and the kernel's side of their four rings.
pub struct FakeKernel {
    umem: Arc<Umem>,
    rx: AfXdpRxQueue,
    tx: AfXdpTxQueue,
    fill: RingMap<u64>,
    rx_ring: RingMap<XdpDesc>,
    tx_ring: RingMap<XdpDesc>,
    comp: RingMap<u64>,
    /// Addresses taken from FILL, not yet given back on RX.
    filled: VecDeque<u64>,
    /// Addresses taken from TX, not yet completed.
    sent: VecDeque<u64>,
}

impl core::fmt::Debug for FakeKernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeKernel")
            .field("rx", &self.rx)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

/// The kernel consuming up to `n` entries of a ring user space produces.
fn take<E: RingEntry>(ring: &RingMap<E>, n: u32) -> Vec<E> {
    let cons = ring.consumer().load(Ordering::Relaxed);
    let prod = ring.producer().load(Ordering::Acquire);
    let n = n.min(prod.wrapping_sub(cons)).min(ring.size());
    let v = (0..n).map(|i| ring.read(cons.wrapping_add(i))).collect();
    ring.consumer()
        .store(cons.wrapping_add(n), Ordering::Release);
    v
}

/// The kernel producing `e` on a ring user space consumes.
fn put<E: RingEntry>(ring: &mut RingMap<E>, e: E) {
    let prod = ring.producer().load(Ordering::Relaxed);
    ring.write(prod, e);
    ring.producer()
        .store(prod.wrapping_add(1), Ordering::Release);
}

impl FakeKernel {
    /// A UMEM of `chunks` 2048-byte chunks on 4 KiB pages, and queues on rings of
    /// `ring_size` entries (a power of two), FILL primed as at bind time.
    pub fn new(chunks: u32, ring_size: u32) -> io::Result<Self> {
        let mut cfg = PktPoolConfig::new("fake-xdp", chunks);
        cfg.page_size = PageSize::Size4K;
        cfg.huge_pages = HugePagePolicy::Never;
        cfg.cache_size = 0;
        let umem = Umem::new(&cfg, 2048).map_err(io::Error::other)?;
        let (fill_user, fill) = RingMap::<u64>::pair(ring_size)?;
        let (rx_user, rx_ring) = RingMap::<XdpDesc>::pair(ring_size)?;
        let (tx_user, tx_ring) = RingMap::<XdpDesc>::pair(ring_size)?;
        let (comp_user, comp) = RingMap::<u64>::pair(ring_size)?;
        let xsk = Arc::new(Xsk::fake(
            std::fs::File::open("/dev/null")?.into(),
            umem.clone(),
        ));
        let counters = Arc::new(QueueCounters::default());
        let mut fill_user = ProdRing::new(fill_user);
        let mut table = ChunkTable::new(umem.geometry());
        AfXdpRxQueue::prime(&mut fill_user, &mut table, umem.pool(), &counters);
        let rx = AfXdpRxQueue::new(
            xsk.clone(),
            fill_user,
            ConsRing::new(rx_user),
            table,
            counters,
            0,
            0,
        );
        let tx = AfXdpTxQueue::new(
            xsk,
            ProdRing::new(tx_user),
            ConsRing::new(comp_user),
            ChunkTable::new(umem.geometry()),
            Arc::new(QueueCounters::default()),
            0,
        );
        Ok(Self {
            umem,
            rx,
            tx,
            fill,
            rx_ring,
            tx_ring,
            comp,
            filled: VecDeque::new(),
            sent: VecDeque::new(),
        })
    }

    /// The kernel takes up to `n` buffers from FILL; returns how many.
    pub fn take_fill(&mut self, n: u32) -> usize {
        let got = take(&self.fill, n);
        self.filled.extend(&got);
        got.len()
    }

    /// The kernel receives a frame of `len` bytes into the oldest buffer it took from FILL
    /// (as a good kernel does); false when it holds none.
    pub fn receive(&mut self, len: u32) -> bool {
        let Some(addr) = self.filled.pop_front() else {
            return false;
        };
        put(
            &mut self.rx_ring,
            XdpDesc {
                addr: addr + XDP_PACKET_HEADROOM as u64,
                len,
                options: 0,
            },
        );
        true
    }

    /// The kernel writes any RX descriptor.
    pub fn rx_desc(&mut self, addr: u64, len: u32, options: u32) {
        put(&mut self.rx_ring, XdpDesc { addr, len, options });
    }

    /// The kernel completes the oldest buffer it took from TX (as a good kernel does);
    /// false when it holds none.
    pub fn complete(&mut self) -> bool {
        let Some(addr) = self.sent.pop_front() else {
            return false;
        };
        put(&mut self.comp, addr);
        true
    }

    /// The kernel writes any COMPLETION entry.
    pub fn completion(&mut self, addr: u64) {
        put(&mut self.comp, addr);
    }

    /// The kernel takes up to `n` descriptors from TX; returns how many.
    pub fn take_tx(&mut self, n: u32) -> usize {
        let got = take(&self.tx_ring, n);
        self.sent.extend(got.iter().map(|d| d.addr));
        got.len()
    }

    /// The kernel stores any value in one of the index or flags words it writes: `which`
    /// % 6 picks RX producer, COMPLETION producer, FILL consumer, TX consumer, FILL flags,
    /// TX flags.
    pub fn set_word(&mut self, which: u8, value: u32) {
        let word = match which % 6 {
            0 => self.rx_ring.producer(),
            1 => self.comp.producer(),
            2 => self.fill.consumer(),
            3 => self.tx_ring.consumer(),
            4 => self.fill.flags(),
            _ => self.tx_ring.flags(),
        };
        word.store(value, Ordering::Release);
    }

    /// One receive burst; the frames are dropped at once. Returns how many there were.
    pub fn rx_burst(&mut self) -> usize {
        let mut out: Batch<PktBuf> = Batch::new();
        let n = self.rx.rx_burst(&mut out);
        assert!(
            out.iter().all(|p| p.len() <= p.buf_len()),
            "a frame longer than its buffer"
        );
        n
    }

    /// One transmit burst of `n` frames of `len` bytes (as many as the pool gives), the
    /// rest dropped. Returns how many the queue took.
    pub fn tx_burst(&mut self, n: usize, len: usize) -> usize {
        let mut batch: Batch<PktBuf> = Batch::new();
        for _ in 0..n.min(batch.capacity()) {
            let Some(mut p) = self.umem.pool().alloc() else {
                break;
            };
            if p.append(len.min(p.tailroom())).is_none() {
                break;
            }
            let _ = batch.push(p);
        }
        self.tx.tx_burst(&mut batch)
    }

    /// Kicks the kernel and reclaims completions.
    pub fn flush(&mut self) {
        self.tx.flush();
    }

    /// Drops the queues and the socket; returns the pool's (available, capacity): every
    /// buffer must be back, whatever the kernel did.
    pub fn finish(self) -> (usize, usize) {
        let Self { umem, rx, tx, .. } = self;
        drop(rx);
        drop(tx);
        let pool = umem.pool();
        (pool.available(), pool.capacity())
    }
}
