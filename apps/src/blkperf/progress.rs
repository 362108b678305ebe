//! What `sluice-blkperf` shows while it runs and beside its report: a progress line or a
//! JSON record each second (`--progress`, `--json`), and the bucketed latency histogram of
//! `-LL` (as `spdk_nvme_perf -LL` prints one).
//!
//! Each lcore counts its completions into its queue's [`BlockQueueCounters`] (the counters
//! the telemetry socket and the Prometheus endpoint read too); a sampler thread reads them
//! once a second.
//! The sampler's last record covers the time from its previous one to the end of the run,
//! taken after the lcores have drained: the records' `ios` add up to the report's total.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Report;
use crate::telemetry::BlockQueueCounters;

/// How the sampler prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressFormat {
    /// A line of text.
    Text,
    /// A JSON object per line (`"type":"interval"`).
    Json,
}

/// Totals of all lcores at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    ios: u64,
    bytes: u64,
    lat_sum_ns: u64,
}

fn sample(lives: &[Arc<BlockQueueCounters>]) -> (Sample, u64) {
    let mut s = Sample::default();
    let mut max = 0;
    for l in lives {
        let (ios, bytes, _, _) = l.snapshot();
        s.ios += ios;
        s.bytes += bytes;
        s.lat_sum_ns += l.latency_sum_ns();
        max = max.max(l.take_max_ns());
    }
    (s, max)
}

/// One interval as a line of text or JSON.
fn record(fmt: ProgressFormat, t: Duration, dt: Duration, d: Sample, max_ns: u64) -> String {
    let secs = dt.as_secs_f64().max(1e-9);
    let iops = d.ios as f64 / secs;
    let mibs = d.bytes as f64 / secs / f64::from(1 << 20);
    let avg_us = if d.ios == 0 {
        0.0
    } else {
        d.lat_sum_ns as f64 / d.ios as f64 / 1e3
    };
    let max_us = max_ns as f64 / 1e3;
    match fmt {
        ProgressFormat::Text => format!(
            "[{:>7.1} s] {iops:>12.1} IOPS {mibs:>10.2} MiB/s  avg {avg_us:>9.2} us  max {max_us:>10.2} us\n",
            t.as_secs_f64()
        ),
        ProgressFormat::Json => format!(
            "{{\"type\":\"interval\",\"t_s\":{:.3},\"interval_s\":{:.3},\"ios\":{},\"iops\":{iops:.1},\"mib_s\":{mibs:.3},\"avg_us\":{avg_us:.3},\"max_us\":{max_us:.3}}}\n",
            t.as_secs_f64(),
            dt.as_secs_f64(),
            d.ios
        ),
    }
}

/// The sampler thread: a record each `every` until [`Progress::finish`].
#[derive(Debug)]
pub struct Progress {
    done: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Progress {
    /// Starts sampling `lives` (the lcores have just started) into stdout.
    pub fn spawn(
        lives: Vec<Arc<BlockQueueCounters>>,
        every: Duration,
        fmt: ProgressFormat,
    ) -> std::io::Result<Self> {
        let (done, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let t0 = Instant::now();
                let (mut last, mut at) = (Sample::default(), t0);
                loop {
                    let end =
                        !matches!(rx.recv_timeout(every), Err(mpsc::RecvTimeoutError::Timeout));
                    let now = Instant::now();
                    let (s, max) = sample(&lives);
                    let d = Sample {
                        ios: s.ios - last.ios,
                        bytes: s.bytes - last.bytes,
                        lat_sum_ns: s.lat_sum_ns - last.lat_sum_ns,
                    };
                    let line = record(fmt, now - t0, now - at, d, max);
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
                    (last, at) = (s, now);
                    if end {
                        break;
                    }
                }
            })?;
        Ok(Self { done, thread })
    }

    /// Prints the last record (up to now: call it once the lcores have drained) and ends.
    pub fn finish(self) {
        let _ = self.done.send(());
        let _ = self.thread.join();
    }
}

/// Buckets per doubling of latency in the `-LL` histogram.
const PER_DOUBLING: f64 = 8.0;

/// The non-empty buckets of the run's latency: (from us, to us, count), bucket edges
/// growing by 2^(1/8) from 1 us.
pub fn histogram_buckets(r: &Report) -> Vec<(f64, f64, u64)> {
    let Some(h) = merged(r) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut lo = 0.0;
    for v in h.iter_log(1000, 2f64.powf(1.0 / PER_DOUBLING)) {
        let hi = v.value_iterated_to() as f64 / 1e3;
        let n = v.count_since_last_iteration();
        if n > 0 {
            out.push((lo, hi, n));
        }
        lo = hi;
    }
    out
}

fn merged(r: &Report) -> Option<Histogram<u64>> {
    let first = r.lcores.first()?;
    let mut h = Histogram::new_from(&first.latency);
    for l in &r.lcores {
        h.add(&l.latency).ok()?;
    }
    (!h.is_empty()).then_some(h)
}

/// The `-LL` histogram as text, in `spdk_nvme_perf`'s layout.
pub fn render_histogram(r: &Report) -> String {
    let buckets = histogram_buckets(r);
    let total: u64 = buckets.iter().map(|b| b.2).sum();
    let mut s = String::from("\nlatency histogram:\n");
    let _ = writeln!(
        s,
        "{:>26}  {:>11}  {:>12}",
        "range (us)", "cumulative", "IO count"
    );
    let mut cum = 0;
    for (lo, hi, n) in buckets {
        cum += n;
        let pct = 100.0 * cum as f64 / total.max(1) as f64;
        let _ = writeln!(s, "{lo:>12.3} - {hi:>11.3}:  {pct:>10.4}%  ({n:>10})");
    }
    s
}

/// The `-LL` histogram as one JSON line (`"type":"histogram"`).
pub fn histogram_json(r: &Report) -> String {
    let b: Vec<String> = histogram_buckets(r)
        .iter()
        .map(|(lo, hi, n)| format!("[{lo:.3},{hi:.3},{n}]"))
        .collect();
    format!(
        "{{\"type\":\"histogram\",\"buckets_us\":[{}]}}",
        b.join(",")
    )
}
