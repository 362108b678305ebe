//! The two-core SPSC transfer harness, shared by every ring under test.
//!
//! Methodology, identical for every ring (and mirrored by `bench/dpdk/peer.c`):
//! - the producer, pinned to one core, pushes the sequence `0..items` in bursts of `B` as
//!   fast as it can; what a burst call did not take is offered again;
//! - the consumer, pinned to the other core, pops bursts of up to `B`, checks that every
//!   item arrives exactly once and in order, and times from the first item to the last;
//! - each figure is the best and the median of `reps` runs; a run that loses, duplicates or reorders an
//!   item voids the whole figure.

use std::sync::Barrier;
use std::time::Instant;

use crate::pin::{CorePair, pin_current};
use crate::stats::{Summary, summarize};

/// Items are `u64` (8 bytes, a pointer's size) and no burst is longer than this.
pub const MAX_BURST: usize = 32;

/// Bursts the ring table shows.
pub const BURSTS: [usize; 3] = [1, 8, 32];

/// One SPSC ring implementation, seen through the narrowest interface the harness needs.
pub trait SpscPeer {
    /// Column title.
    const NAME: &'static str;
    /// The producing end.
    type Tx: Send;
    /// The consuming end.
    type Rx: Send;

    /// A ring holding `capacity` items, split into its ends.
    fn split(capacity: usize) -> (Self::Tx, Self::Rx);

    /// Pushes up to `n` (at most [`MAX_BURST`]) items `first, first + 1, ..` the way this
    /// ring's burst API is meant to be used; returns how many it took (possibly 0).
    fn push(tx: &mut Self::Tx, first: u64, n: usize) -> usize;

    /// Pops up to `max` items, hands them to `seen` in order, and returns how many.
    fn pop(rx: &mut Self::Rx, max: usize, seen: &mut Sequence) -> usize;
}

/// The consumer's check that items arrive exactly once and in order.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    next: u64,
    in_order: bool,
}

impl Sequence {
    /// Expects `0, 1, 2, ..`.
    pub fn new() -> Self {
        Self {
            next: 0,
            in_order: true,
        }
    }

    /// Checks the next items. Branch-free so it costs the same for every ring.
    #[inline]
    pub fn check(&mut self, items: &[u64]) {
        let mut ok = true;
        for (i, &item) in items.iter().enumerate() {
            ok &= item == self.next + i as u64;
        }
        self.in_order &= ok;
        self.next += items.len() as u64;
    }

    /// Checks the next item, for consumers that see items one at a time.
    #[inline]
    pub fn check_one(&mut self, item: u64) {
        self.in_order &= item == self.next;
        self.next += 1;
    }

    /// How many items have been seen.
    pub fn count(&self) -> u64 {
        self.next
    }

    /// Whether every item seen so far was the expected one.
    pub fn in_order(&self) -> bool {
        self.in_order
    }
}

/// Knobs shared by every ring run.
#[derive(Debug, Clone, Copy)]
pub struct TransferConfig {
    /// Ring capacity (a power of two).
    pub capacity: usize,
    /// Items per run.
    pub items: u64,
    /// Runs per figure.
    pub reps: usize,
    /// Where the two threads run.
    pub cores: CorePair,
}

/// One run of some ring at some burst: consumer ns per item, or what went wrong.
pub type Runner = fn(&TransferConfig, usize) -> Result<f64, String>;

/// Runs every ring in `rings` at `burst`, `cfg.reps` rounds, the rings taking turns within
/// a round so that a noisy stretch (another process, a descheduled vCPU) hits them all
/// alike. Returns each ring's best and median ns per item, `None` if any of its runs lost
/// data.
pub fn measure_interleaved(
    cfg: &TransferConfig,
    burst: usize,
    rings: &[Runner],
) -> Vec<Option<Summary>> {
    let mut runs: Vec<Result<Vec<f64>, ()>> = vec![Ok(Vec::new()); rings.len()];
    for _ in 0..cfg.reps {
        for (ring, samples) in rings.iter().zip(runs.iter_mut()) {
            let Ok(list) = samples else { continue };
            match ring(cfg, burst) {
                Ok(ns) => list.push(ns),
                Err(why) => {
                    eprintln!("VOID: {why}");
                    *samples = Err(());
                }
            }
        }
    }
    runs.iter()
        .map(|r| r.as_ref().ok().and_then(|v| summarize(v)))
        .collect()
}

/// One run: returns consumer ns per item.
pub fn transfer_once<P: SpscPeer>(cfg: &TransferConfig, burst: usize) -> Result<f64, String> {
    assert!(
        (1..=MAX_BURST).contains(&burst),
        "burst {burst} out of range"
    );
    let (mut tx, mut rx) = P::split(cfg.capacity);
    let items = cfg.items;
    // Both threads start spinning at the same moment; the timing starts at the first item.
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_current(cfg.cores.producer);
            start.wait();
            let mut next = 0;
            while next < items {
                let n = burst.min((items - next) as usize);
                next += P::push(&mut tx, next, n) as u64;
            }
        });
        let consumer = s.spawn(|| {
            pin_current(cfg.cores.consumer);
            let mut seen = Sequence::new();
            start.wait();
            // Wait for the first item outside the timed region.
            while P::pop(&mut rx, burst, &mut seen) == 0 {}
            let t0 = Instant::now();
            while seen.count() < items {
                P::pop(&mut rx, burst, &mut seen);
            }
            let elapsed = t0.elapsed();
            (elapsed, seen)
        });
        let (elapsed, seen) = consumer.join().expect("consumer thread panicked");
        if seen.count() != items || !seen.in_order() {
            return Err(format!(
                "{}: burst {burst}: received {} of {items} items, in order: {}",
                P::NAME,
                seen.count(),
                seen.in_order()
            ));
        }
        Ok(elapsed.as_nanos() as f64 / items as f64)
    })
}
