//! Per-queue counters: written by the queue's lcore, read by anyone.
//!
//! Each counter has one writer (the lcore that owns the queue), so it is bumped with a
//! relaxed load and store — no locked read-modify-write on the data path — and read by a
//! stats thread with relaxed loads. A reader may see one counter a burst ahead of another;
//! each value on its own is exact.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters of one rx or tx queue.
#[derive(Debug, Default)]
pub struct QueueCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    drops: AtomicU64,
    rx_nombuf: AtomicU64,
    errors: AtomicU64,
    full: AtomicU64,
}

#[inline(always)]
fn bump(counter: &AtomicU64, n: u64) {
    // Single writer: a plain load and store, not `fetch_add`.
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl QueueCounters {
    /// Counts `packets` packets of `bytes` bytes in all, received or sent.
    #[inline]
    pub fn add_packets(&self, packets: u64, bytes: u64) {
        bump(&self.packets, packets);
        bump(&self.bytes, bytes);
    }

    /// Counts packets the queue dropped (for example frames the device discarded).
    #[inline]
    pub fn add_drops(&self, n: u64) {
        bump(&self.drops, n);
    }

    /// Counts receive descriptors left unfilled for lack of buffers.
    #[inline]
    pub fn add_rx_nombuf(&self, n: u64) {
        bump(&self.rx_nombuf, n);
    }

    /// Counts errors (bad descriptors, device faults).
    #[inline]
    pub fn add_errors(&self, n: u64) {
        bump(&self.errors, n);
    }

    /// Counts bursts that found the queue full (a transmit ring without room).
    #[inline]
    pub fn add_full(&self, n: u64) {
        bump(&self.full, n);
    }

    /// The counters now.
    pub fn snapshot(&self) -> QueueStats {
        QueueStats {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            rx_nombuf: self.rx_nombuf.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            full: self.full.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a queue's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets received (rx) or accepted for transmission (tx).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets dropped by the queue.
    pub drops: u64,
    /// Receive descriptors left unfilled for lack of buffers.
    pub rx_nombuf: u64,
    /// Errors, including device faults.
    pub errors: u64,
    /// Bursts that found the queue full.
    pub full: u64,
}

impl QueueStats {
    /// Field-wise `self - earlier` (for rates between two snapshots).
    pub fn since(&self, earlier: &QueueStats) -> QueueStats {
        QueueStats {
            packets: self.packets.wrapping_sub(earlier.packets),
            bytes: self.bytes.wrapping_sub(earlier.bytes),
            drops: self.drops.wrapping_sub(earlier.drops),
            rx_nombuf: self.rx_nombuf.wrapping_sub(earlier.rx_nombuf),
            errors: self.errors.wrapping_sub(earlier.errors),
            full: self.full.wrapping_sub(earlier.full),
        }
    }

    /// Field-wise sum (for port totals).
    pub fn plus(&self, other: &QueueStats) -> QueueStats {
        QueueStats {
            packets: self.packets + other.packets,
            bytes: self.bytes + other.bytes,
            drops: self.drops + other.drops,
            rx_nombuf: self.rx_nombuf + other.rx_nombuf,
            errors: self.errors + other.errors,
            full: self.full + other.full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_diff() {
        let c = QueueCounters::default();
        c.add_packets(32, 2048);
        let first = c.snapshot();
        c.add_packets(1, 64);
        c.add_drops(2);
        c.add_rx_nombuf(3);
        c.add_errors(4);
        c.add_full(5);
        let now = c.snapshot();
        assert_eq!(
            now.since(&first),
            QueueStats {
                packets: 1,
                bytes: 64,
                drops: 2,
                rx_nombuf: 3,
                errors: 4,
                full: 5
            }
        );
        assert_eq!(first.plus(&first).bytes, 4096);
    }
}
