//! A latency histogram the lcore that measures bumps and any other thread reads while it
//! runs: 4 buckets per power of two of nanoseconds (bounds within 25 %), each a single-writer
//! atomic counter, so the telemetry socket and the Prometheus endpoint read live percentiles
//! and buckets without touching the lcore.
//!
//! The measuring lcore keeps its exact HdrHistogram for the final summary; this one is what
//! can be read from outside during the run.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets: values 1..=4 one each, then 4 per power of two up to `u64::MAX`.
const BUCKETS: usize = 252;

#[inline(always)]
fn bump(counter: &AtomicU64, n: u64) {
    // Single writer: a plain load and store, not `fetch_add` (as the queue counters).
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The bucket of `v - 1`: bucket `i` holds the values in `(upper(i - 1), upper(i)]`.
#[inline(always)]
fn index(ns: u64) -> usize {
    let v = ns.saturating_sub(1);
    if v < 4 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // >= 2
    let m = ((v >> (e - 2)) & 3) as usize;
    4 * (e - 1) + m
}

/// The largest value bucket `i` holds (its Prometheus `le` bound, in ns).
fn upper(i: usize) -> u64 {
    if i < 4 {
        return i as u64 + 1;
    }
    let (e, m) = (i / 4 + 1, (i % 4) as u64);
    // (5 + m) << (e - 2) passes u64::MAX only for the last bucket, which ends there.
    u64::try_from(u128::from(5 + m) << (e - 2)).unwrap_or(u64::MAX)
}

/// Live latency counts, written by one lcore.
#[derive(Debug)]
pub struct LatencyBuckets {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyBuckets {
    /// Records one latency of `ns` nanoseconds. Only one thread may record.
    #[inline]
    pub fn record(&self, ns: u64) {
        bump(&self.buckets[index(ns)], 1);
        bump(&self.sum_ns, ns);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
    }

    /// The sum of every latency recorded, in nanoseconds.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns.load(Ordering::Relaxed)
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            max_ns: self.max_ns.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`LatencyBuckets`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    counts: Vec<u64>,
    /// Sum of the latencies recorded, in ns.
    pub sum_ns: u64,
    /// The largest recorded, in ns.
    pub max_ns: u64,
}

impl LatencySnapshot {
    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q`-quantile (0..=1), as the upper bound of its bucket (at most 25 % over), capped
    /// at the maximum; 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max_ns.max(1));
            }
        }
        self.max_ns
    }

    /// Cumulative counts at the powers of two from 2^`lo` to 2^`hi` ns: `(le_ns, count)`,
    /// the buckets of a Prometheus histogram (each a bound of the buckets here, so exact).
    pub fn cumulative_pow2(&self, lo: u32, hi: u32) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let (mut seen, mut i) = (0u64, 0usize);
        for k in lo..=hi.min(63) {
            let le = 1u64 << k;
            while i < BUCKETS && upper(i) <= le {
                seen += self.counts[i];
                i += 1;
            }
            out.push((le, seen));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_line_with_le_bounds() {
        for v in [
            1u64,
            2,
            3,
            4,
            5,
            7,
            8,
            9,
            1000,
            1023,
            1024,
            1025,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(i < BUCKETS, "{v}");
            assert!(v <= upper(i), "{v} over bucket {i}'s bound {}", upper(i));
            assert!(
                i == 0 || v > upper(i - 1),
                "{v} at or under bucket {}'s bound",
                i - 1
            );
        }
        for k in 0..63 {
            assert_eq!(upper(index(1 << k)), 1 << k, "2^{k} is a bound");
        }
        assert_eq!(index(0), 0);
    }

    #[test]
    fn quantiles_are_within_a_quarter_and_cumulative_counts_exact() {
        let h = LatencyBuckets::default();
        for ns in 1..=1000u64 {
            h.record(ns * 1000);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        let p50 = s.quantile(0.5);
        assert!((500_000..=625_000).contains(&p50), "{p50}");
        assert_eq!(s.quantile(1.0), 1_000_000);
        assert_eq!(s.sum_ns, 1000 * 1001 / 2 * 1000);
        let cum = s.cumulative_pow2(10, 20);
        // Values <= 2^19 ns = 524288: 524 of them.
        assert_eq!(cum.iter().find(|c| c.0 == 1 << 19).unwrap().1, 524);
        assert_eq!(cum.last().unwrap(), &(1 << 20, 1000));
    }
}
