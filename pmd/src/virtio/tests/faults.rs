//! An untrusted device: bad used ids, lengths and index jumps are counted and survived,
//! never followed; buffers come back to the pool.

use super::*;
use crate::net::{NetPort, RxQueue, TxQueue};
use sluice_mempool::{Batch, PktBuf};

fn one(pool: &PktPool, seq: u32) -> Batch<PktBuf> {
    let mut out: Batch<PktBuf> = Batch::new();
    let mut p = pool.alloc().unwrap();
    p.extend_from_slice(&frame(seq, 64)).unwrap();
    out.push(p).unwrap();
    out
}

#[test]
fn used_ids_out_of_range_or_not_in_flight_are_counted_and_ignored() {
    let pool = pool(512);
    let (dev, mut port) = open(loopback(RingEngine::Own), &cfg(64), &pool);
    let mut q = port.take_queues().unwrap();
    dev.inject_used(1, 999, 0); // out of range
    dev.inject_used(1, 5, 0); // in range, nothing in flight
    assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 1)), 1);
    assert_eq!(q.tx[0].counters().snapshot().errors, 2);
    // Still working.
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 1);
    assert_eq!(got[0].data(), &frame(1, 64)[..]);
    // A receive entry naming the second descriptor of nothing / a head twice.
    dev.inject_used(0, 40_000, 64);
    got.clear();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    assert!(!q.rx[0].is_broken());
    drop(got);
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

#[test]
fn a_length_larger_than_the_buffer_recovers_the_buffer_unread() {
    let pool = pool(512);
    let (dev, mut port) = open(model(RingEngine::Own), &cfg(64), &pool);
    dev.set_auto(false);
    let mut q = port.take_queues().unwrap();
    // Receive: descriptor 0 holds the first posted buffer (2048 + 12 bytes writable).
    dev.inject_used(0, 0, 100_000);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    assert_eq!(q.rx[0].posted(), 64, "refilled");
    // Transmit: a device must write nothing into a transmit buffer.
    assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 1)), 1);
    dev.inject_used(1, 0, 10);
    q.tx[0].reclaim();
    assert_eq!(q.tx[0].counters().snapshot().errors, 1);
    assert_eq!(q.tx[0].in_flight(), 0, "the buffer came back");
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

#[test]
fn a_used_index_jump_breaks_the_queue_without_reading_past_it() {
    let pool = pool(512);
    let (dev, mut port) = open(loopback(RingEngine::Own), &cfg(64), &pool);
    let mut q = port.take_queues().unwrap();
    dev.jump_used(0, 1000);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert!(q.rx[0].is_broken());
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    dev.inject(0, &frame(1, 64));
    assert_eq!(
        q.rx[0].rx_burst(&mut got),
        0,
        "a broken queue returns nothing"
    );
    // Transmit: one more than the ring size.
    dev.set_auto(false);
    assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 2)), 1);
    dev.jump_used(1, 65);
    let mut more = one(&pool, 3);
    assert_eq!(q.tx[0].tx_burst(&mut more), 0, "nothing taken once broken");
    assert!(q.tx[0].is_broken());
    assert_eq!(more.len(), 1, "the caller keeps its packet");
    assert_eq!(q.tx[0].counters().snapshot().errors, 1);
    drop(more);
    drop(q);
    drop(port);
    assert_eq!(dev.status(), 0);
    assert_eq!(
        pool.available(),
        512,
        "parked buffers freed after the reset"
    );
}
