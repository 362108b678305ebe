//! `num_buffers`, the device's word on how many buffers a received frame spans, bounded by
//! what the negotiated features allow; and a broken ring that still has free descriptors.

use super::*;
use crate::net::{NetPort, RxQueue};
use sluice_mempool::{Batch, PktBuf};

/// The default model without `MRG_RXBUF`, on `rings` (own engine: faults need it).
fn without_mrg(rings: Rings) -> ModelConfig {
    let mc = model(rings);
    ModelConfig {
        features: mc.features & !feature::MRG_RXBUF,
        ..mc
    }
}

fn num_buffers_without_mrg_rxbuf_is_not_followed(rings: Rings) {
    let pool = pool(512);
    let (dev, mut port) = open(without_mrg(rings), &cfg(64), &pool);
    assert_eq!(port.features() & feature::MRG_RXBUF, 0);
    let mut q = port.take_queues().unwrap();
    assert_eq!(q.rx[0].max_merge(), 1);
    // Before: 0xFFFF made the driver skip the next 65 534 good frames.
    dev.set_num_buffers(Some(0xFFFF));
    for seq in 0..5 {
        dev.inject(0, &frame(seq, 100));
    }
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 5, "every frame is one buffer");
    for (seq, pkt) in got.iter().enumerate() {
        assert_eq!(pkt.data(), &frame(seq as u32, 100)[..]);
    }
    let s = q.rx[0].counters().snapshot();
    assert_eq!((s.errors, s.drops), (5, 0), "each bad header counted");
    assert_eq!(q.rx[0].skipped(), 0);
    drop(got);
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

#[test]
fn num_buffers_without_mrg_rxbuf_is_not_followed_split() {
    num_buffers_without_mrg_rxbuf_is_not_followed(Rings::Split(RingEngine::Own));
}

#[test]
fn num_buffers_without_mrg_rxbuf_is_not_followed_packed() {
    num_buffers_without_mrg_rxbuf_is_not_followed(Rings::Packed);
}

fn num_buffers_beyond_the_largest_frame_skips_nothing(rings: Rings) {
    let pool = pool(512);
    let (dev, mut port) = open(model(rings), &cfg(256), &pool);
    assert_ne!(port.features() & feature::MRG_RXBUF, 0);
    let mut q = port.take_queues().unwrap();
    // 65 535 + 18 + 12 bytes over buffers of 2048 + 12.
    assert_eq!(q.rx[0].max_merge(), 32);
    for bad in [0xFFFF, 33, 0] {
        dev.set_num_buffers(Some(bad));
        dev.inject(0, &frame(bad.into(), 64));
    }
    dev.set_num_buffers(None);
    for seq in 0..3 {
        dev.inject(0, &frame(seq, 64));
    }
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(
        q.rx[0].rx_burst(&mut got),
        3,
        "the good frames after the bad ones"
    );
    for (seq, pkt) in got.iter().enumerate() {
        assert_eq!(pkt.data(), &frame(seq as u32, 64)[..]);
    }
    let s = q.rx[0].counters().snapshot();
    assert_eq!((s.errors, s.drops), (3, 0));
    assert_eq!(q.rx[0].skipped(), 0);
    drop(got);
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

#[test]
fn num_buffers_beyond_the_largest_frame_skips_nothing_split() {
    num_buffers_beyond_the_largest_frame_skips_nothing(Rings::Split(RingEngine::Own));
}

#[test]
fn num_buffers_beyond_the_largest_frame_skips_nothing_packed() {
    num_buffers_beyond_the_largest_frame_skips_nothing(Rings::Packed);
}

#[test]
fn the_continuations_of_a_dropped_merged_frame_are_counted() {
    let pool = pool(512);
    let (dev, mut port) = open(model(Rings::Split(RingEngine::Own)), &cfg(64), &pool);
    let mut q = port.take_queues().unwrap();
    dev.inject(0, &frame(1, 5000)); // 12 + 5000 over three 2060-byte buffers
    dev.inject(0, &frame(2, 100));
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 1);
    assert_eq!(got[0].data(), &frame(2, 100)[..]);
    let s = q.rx[0].counters().snapshot();
    assert_eq!((s.errors, s.drops), (0, 1));
    assert_eq!(q.rx[0].skipped(), 2);
    drop(got);
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}

/// Regression: a receive ring broken by an index jump while it had free descriptors made
/// the refill allocate and free buffers forever (`add` refuses them all): `rx_burst` hung.
#[test]
fn a_broken_ring_with_free_descriptors_does_not_hang_the_refill() {
    let pool = pool(512);
    let (dev, mut port) = open(model(Rings::Split(RingEngine::Own)), &cfg(64), &pool);
    let mut q = port.take_queues().unwrap();
    dev.inject(0, &frame(1, 100));
    let mut got: Batch<PktBuf> = Batch::new();
    // One frame in, no refill yet (under a quarter of the ring is free): a free descriptor.
    assert_eq!(q.rx[0].rx_burst(&mut got), 1);
    assert_eq!(q.rx[0].posted(), 63);
    dev.jump_used(0, 1000);
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert!(q.rx[0].is_broken());
    assert_eq!(q.rx[0].refill(), 0, "a broken ring takes nothing");
    assert_eq!(q.rx[0].posted(), 63);
    assert_eq!(pool.available(), 512 - 64, "63 posted, 1 received");
    drop(got);
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 512);
}
