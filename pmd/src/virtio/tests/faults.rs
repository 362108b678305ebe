//! An untrusted device: bad used ids, lengths and index jumps are counted and survived,
//! never followed; buffers come back to the pool; the last fault of each queue is kept with
//! its details until taken.

use super::*;
use crate::net::{NetPort, RxQueue, TxQueue};
use crate::virtio::UsedFault;
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
    let (dev, mut port) = open(loopback(Rings::Split(RingEngine::Own)), &cfg(64), &pool);
    let mut q = port.take_queues().unwrap();
    dev.inject_used(1, 999, 0); // out of range
    dev.inject_used(1, 5, 0); // in range, nothing in flight
    assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 1)), 1);
    assert_eq!(q.tx[0].counters().snapshot().errors, 2);
    // The last of the two, on virtqueue 1 (transmitq 0).
    let fault = q.tx[0].take_fault();
    assert_eq!(
        fault,
        Some(UsedFault::BadId {
            queue: 1,
            id: 5,
            size: 64
        })
    );
    assert_eq!(
        fault.unwrap().to_string(),
        "device wrote used id 5, which is not in flight (queue size 64)"
    );
    assert_eq!(q.tx[0].take_fault(), None, "taken");
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
    let fault = q.rx[0].take_fault().unwrap();
    assert_eq!(
        fault,
        UsedFault::BadId {
            queue: 0,
            id: 40_000,
            size: 64
        }
    );
    assert_eq!(
        format!("queue 0 rx: {fault}"),
        "queue 0 rx: device wrote used id 40000 (queue size 64)"
    );
    drop(got);
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

#[test]
fn a_length_larger_than_the_buffer_recovers_the_buffer_unread() {
    length_larger_than_the_buffer(model(Rings::Split(RingEngine::Own)));
}

/// On `mc`'s rings: a receive length past the buffer, and any length on a transmit buffer
/// (with WRITE on a packed ring; without it the length of a read-only buffer means nothing),
/// are counted as device errors and the buffers come back unread. Buffer 0 (descriptor or
/// id) is the first posted on each queue.
fn length_larger_than_the_buffer(mc: ModelConfig) {
    let pool = pool(512);
    let (dev, mut port) = open(mc, &cfg(64), &pool);
    dev.set_auto(false);
    let mut q = port.take_queues().unwrap();
    // Receive: 2048 + 12 bytes writable.
    dev.inject_used(0, 0, 100_000);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    assert_eq!(q.rx[0].posted(), 64, "refilled");
    assert_eq!(
        q.rx[0].take_fault(),
        Some(UsedFault::BadLen {
            queue: 0,
            id: 0,
            len: 100_000,
            max: 2048 + 12
        })
    );
    // Transmit: a device must write nothing into a transmit buffer.
    assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 1)), 1);
    dev.inject_used(1, 0, 10);
    q.tx[0].reclaim();
    assert_eq!(q.tx[0].counters().snapshot().errors, 1);
    assert_eq!(q.tx[0].in_flight(), 0, "the buffer came back");
    assert_eq!(
        q.tx[0].take_fault(),
        Some(UsedFault::BadLen {
            queue: 1,
            id: 0,
            len: 10,
            max: 0
        })
    );
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

#[test]
fn a_used_index_jump_breaks_the_queue_without_reading_past_it() {
    let pool = pool(512);
    let (dev, mut port) = open(loopback(Rings::Split(RingEngine::Own)), &cfg(64), &pool);
    let mut q = port.take_queues().unwrap();
    dev.jump_used(0, 1000);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert!(q.rx[0].is_broken());
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    assert_eq!(
        q.rx[0].take_fault(),
        Some(UsedFault::IndexJump {
            queue: 0,
            last: 0,
            device: 1000,
            size: 64
        })
    );
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
    assert_eq!(
        q.tx[0].take_fault(),
        Some(UsedFault::IndexJump {
            queue: 1,
            last: 0,
            device: 65,
            size: 64
        })
    );
    assert_eq!(
        q.rx[0].take_fault(),
        None,
        "a broken queue finds nothing more"
    );
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

/// Packed rings: a used descriptor takes the place of an available one, so the model's
/// faults return a real buffer under a wrong id or length.
mod packed {
    use super::*;

    fn packed_model(loopback: bool) -> ModelConfig {
        ModelConfig {
            loopback,
            ..model(Rings::Packed)
        }
    }

    #[test]
    fn used_ids_out_of_range_or_not_in_flight_are_counted_and_the_ring_goes_on() {
        let pool = pool(512);
        let (dev, mut port) = open(packed_model(true), &cfg(64), &pool);
        assert_eq!(port.ring_kind(), crate::virtio::RingKind::Packed);
        let mut q = port.take_queues().unwrap();
        // Receive: the first two posted buffers come back as ids 999 and 40000.
        dev.inject_used(0, 999, 64);
        dev.inject_used(0, 40_000, 64);
        let mut got: Batch<PktBuf> = Batch::new();
        assert_eq!(q.rx[0].rx_burst(&mut got), 0);
        assert_eq!(q.rx[0].counters().snapshot().errors, 2);
        assert_eq!(
            q.rx[0].take_fault(),
            Some(UsedFault::BadId {
                queue: 0,
                id: 40_000,
                size: 64
            })
        );
        // Transmit: two in flight (ids 0 and 1); the first comes back as id 5, not in
        // flight; the second normally.
        dev.set_auto(false);
        assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 1)), 1);
        assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 2)), 1);
        dev.inject_used(1, 5, 0);
        dev.step();
        q.tx[0].reclaim();
        assert_eq!(q.tx[0].counters().snapshot().errors, 1);
        assert_eq!(
            q.tx[0].in_flight(),
            1,
            "the overwritten buffer waits for the reset"
        );
        assert_eq!(
            q.tx[0].take_fault(),
            Some(UsedFault::BadId {
                queue: 1,
                id: 5,
                size: 64
            })
        );
        // Still working both ways: the second frame was looped back.
        got.clear();
        assert_eq!(q.rx[0].rx_burst(&mut got), 1);
        assert_eq!(got[0].data(), &frame(2, 64)[..]);
        dev.set_auto(true);
        assert_eq!(q.tx[0].tx_burst(&mut one(&pool, 3)), 1);
        got.clear();
        assert_eq!(q.rx[0].rx_burst(&mut got), 1);
        assert_eq!(got[0].data(), &frame(3, 64)[..]);
        assert!(!q.rx[0].is_broken() && !q.tx[0].is_broken());
        assert_eq!((q.rx[0].take_fault(), q.tx[0].take_fault()), (None, None));
        drop(got);
        drop(q);
        drop(port);
        assert_eq!(dev.status(), 0);
        assert_eq!(
            pool.available(),
            512,
            "parked buffers freed after the reset"
        );
    }

    #[test]
    fn a_length_larger_than_the_buffer_recovers_the_buffer_unread() {
        length_larger_than_the_buffer(packed_model(false));
    }
}
