//! The sink: receives on one rx queue, checks every frame (see [`frame::parse`]), tracks the
//! sequence, records latency in an HdrHistogram, and frees the buffers.
//!
//! Sequence accounting, for one generator: a frame above the next expected number opens a
//! gap (counted as lost for now); a frame below it arrived late (reordered) and closes one
//! lost slot. Loss is exact when the generator's sent count is known (the app reports
//! `sent - received`); the gap count is what the sink alone can tell.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use sluice_dataplane::{Task, tsc};
use sluice_pmd::net::RxQueue;
use sluice_pmd::{Batch, PktBuf};

use super::frame;
use crate::telemetry::LatencyBuckets;

/// What the sink saw, final once the sink task is dropped.
#[derive(Debug, Clone)]
pub struct SinkReport {
    /// Frames that passed the checks.
    pub received: u64,
    /// Their bytes (without FCS).
    pub bytes: u64,
    /// Frames that failed a check (bad header, checksum, length, or payload byte).
    pub corrupted: u64,
    /// Frames that arrived after a higher sequence number.
    pub reordered: u64,
    /// Sequence numbers skipped and not seen late (loss as the sink alone sees it).
    pub gaps: u64,
    /// Frames with a sequence number seen before.
    pub duplicates: u64,
    /// Destination and source MAC of the first intact frame (to check a forwarder's rewrite).
    pub first_macs: Option<([u8; 6], [u8; 6])>,
    /// Intact frames whose MACs differ from the first one's.
    pub mac_changes: u64,
    /// Latency in nanoseconds, send stamp to receive.
    pub latency: Histogram<u64>,
    /// Seconds between the first and the last frame received.
    pub active_secs: f64,
}

impl SinkReport {
    /// Frames per second over the time frames were arriving.
    pub fn rate_pps(&self) -> f64 {
        if self.active_secs > 0.0 {
            self.received as f64 / self.active_secs
        } else {
            0.0
        }
    }
}

/// Live counts and, once the sink ends, its report.
#[derive(Debug, Default)]
pub struct SinkControl {
    burst: usize,
    received: AtomicU64,
    corrupted: AtomicU64,
    report: Mutex<Option<SinkReport>>,
    live_latency: Arc<LatencyBuckets>,
}

impl SinkControl {
    /// Frames received per poll, at most (the task's batch capacity).
    pub fn burst(&self) -> usize {
        self.burst
    }
    /// Frames received and checked so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }
    /// Corrupted frames so far.
    pub fn corrupted(&self) -> u64 {
        self.corrupted.load(Ordering::Relaxed)
    }
    /// Latency so far, readable while the sink runs (telemetry).
    pub fn live_latency(&self) -> &Arc<LatencyBuckets> {
        &self.live_latency
    }
    /// The final report, once the sink task has ended.
    pub fn report(&self) -> Option<SinkReport> {
        self.report.lock().ok()?.clone()
    }
}

/// The sink task.
#[derive(Debug)]
pub struct SinkTask<R: RxQueue, const N: usize> {
    rx: R,
    batch: Batch<PktBuf, N>,
    ctl: Arc<SinkControl>,
    clock: tsc::Clock,
    next_seq: u64,
    /// Sequence numbers seen, as a bitmap over a sliding window, to tell late from duplicate.
    seen: Vec<u64>,
    received: u64,
    bytes: u64,
    corrupted: u64,
    reordered: u64,
    gaps: u64,
    duplicates: u64,
    first_tsc: u64,
    last_tsc: u64,
    macs: Option<[u8; 12]>,
    mac_changes: u64,
    latency: Histogram<u64>,
    live_latency: Arc<LatencyBuckets>,
}

/// Window of sequence numbers behind the highest one within which duplicates are told from
/// late frames (bits).
const WINDOW: u64 = 1 << 16;

impl<R: RxQueue, const N: usize> SinkTask<R, N> {
    /// A sink on `rx`.
    pub fn new(rx: R) -> (Self, Arc<SinkControl>) {
        let ctl = Arc::new(SinkControl {
            burst: N,
            ..SinkControl::default()
        });
        // 1 ns to 100 s at 3 significant digits: allocated once, here.
        let latency = Histogram::new_with_bounds(1, 100_000_000_000, 3)
            .expect("constant bounds are valid: 1 <= 1e11, 3 significant digits");
        (
            Self {
                rx,
                batch: Batch::new(),
                ctl: ctl.clone(),
                clock: tsc::Clock::calibrate(),
                next_seq: 0,
                seen: vec![0; (WINDOW / 64) as usize],
                received: 0,
                bytes: 0,
                corrupted: 0,
                reordered: 0,
                gaps: 0,
                duplicates: 0,
                first_tsc: 0,
                last_tsc: 0,
                macs: None,
                mac_changes: 0,
                latency,
                live_latency: ctl.live_latency.clone(),
            },
            ctl,
        )
    }

    #[inline]
    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = (seq % WINDOW) as usize;
        // In range: `seen` has WINDOW bits.
        let word = &mut self.seen[i / 64];
        (word, 1u64 << (i % 64))
    }

    #[inline]
    fn account(&mut self, seq: u64) {
        if seq >= self.next_seq {
            // Clear the bits of the numbers skipped over (and of `seq`), which now stand
            // for numbers WINDOW higher than before.
            let skipped = seq - self.next_seq;
            self.gaps += skipped;
            for s in self.next_seq..=seq.min(self.next_seq + WINDOW) {
                let (w, b) = self.bit(s);
                *w &= !b;
            }
            let (w, b) = self.bit(seq);
            *w |= b;
            self.next_seq = seq + 1;
        } else if self.next_seq - seq > WINDOW {
            // Too old to tell: count it as late.
            self.reordered += 1;
            self.gaps = self.gaps.saturating_sub(1);
        } else {
            let (w, b) = self.bit(seq);
            if *w & b != 0 {
                self.duplicates += 1;
            } else {
                *w |= b;
                self.reordered += 1;
                self.gaps = self.gaps.saturating_sub(1);
            }
        }
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            received: self.received,
            bytes: self.bytes,
            corrupted: self.corrupted,
            reordered: self.reordered,
            gaps: self.gaps,
            duplicates: self.duplicates,
            first_macs: self.macs.map(|m| {
                let (mut dst, mut src) = ([0u8; 6], [0u8; 6]);
                dst.copy_from_slice(&m[..6]);
                src.copy_from_slice(&m[6..]);
                (dst, src)
            }),
            mac_changes: self.mac_changes,
            latency: self.latency.clone(),
            active_secs: self
                .clock
                .ticks_to_ns(self.last_tsc.wrapping_sub(self.first_tsc))
                as f64
                / 1e9,
        }
    }
}

impl<R: RxQueue + 'static, const N: usize> Task for SinkTask<R, N> {
    #[inline]
    fn poll(&mut self) -> usize {
        let n = self.rx.rx_burst(&mut self.batch);
        if n == 0 {
            return 0;
        }
        let now = tsc::now();
        if self.first_tsc == 0 {
            self.first_tsc = now;
        }
        self.last_tsc = now;
        for i in 0..self.batch.len() {
            let Some(p) = self.batch.get(i) else { break };
            let len = p.len() as u64;
            let data = p.data();
            match frame::parse(data) {
                Some(f) => {
                    let mut macs = [0u8; 12];
                    macs.copy_from_slice(&data[..12]);
                    match self.macs {
                        None => self.macs = Some(macs),
                        Some(first) if first != macs => self.mac_changes += 1,
                        Some(_) => {}
                    }
                    self.received += 1;
                    self.bytes += len;
                    self.account(f.seq);
                    let ns = self.clock.ticks_to_ns(now.saturating_sub(f.tsc));
                    self.latency.saturating_record(ns.max(1));
                    self.live_latency.record(ns);
                }
                None => self.corrupted += 1,
            }
        }
        PktBuf::free_bulk(&mut self.batch);
        self.ctl.corrupted.store(self.corrupted, Ordering::Relaxed);
        self.ctl.received.store(self.received, Ordering::Release);
        n
    }

    fn drain(&mut self) -> bool {
        self.poll() == 0
    }
}

impl<R: RxQueue, const N: usize> Drop for SinkTask<R, N> {
    fn drop(&mut self) {
        let report = self.report();
        if let Ok(mut slot) = self.ctl.report.lock() {
            *slot = Some(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_pmd::net::NetPort;
    use sluice_pmd::soft::ring_port::{RingPairConfig, ring_pair};

    fn sink() -> SinkTask<sluice_pmd::soft::ring_port::RingRxQueue, 32> {
        let (_a, mut b) = ring_pair("a", "b", &RingPairConfig::default()).unwrap();
        SinkTask::new(b.take_queues().unwrap().rx.remove(0)).0
    }

    #[test]
    fn sequence_accounting_tells_loss_reordering_and_duplicates() {
        let mut s = sink();
        for seq in [0, 1, 3, 4, 2, 2, 7] {
            s.account(seq);
        }
        // 2 came late (reordered, so not lost), 2 again is a duplicate, 5 and 6 are missing.
        assert_eq!((s.reordered, s.duplicates, s.gaps), (1, 1, 2));
        assert_eq!(s.next_seq, 8);
    }
}
