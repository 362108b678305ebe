//! Counters sampled once per interval and printed per port and queue: rx/tx Mpps, Gbit/s,
//! drops, rx_nombuf, ring-full bursts; pipeline rings and lcore load beside them.
//!
//! The data path only bumps its single-writer counters; the [`StatsThread`] reads them with
//! relaxed loads, subtracts the previous sample and prints text or one JSON object per
//! line. Gbit/s counts frame bytes without FCS, preamble and gap (what the queues count).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_pmd::net::{PortCounters, QueueCounters, QueueStats};

use crate::lcore::LcoreCounters;

/// What the stats thread reads.
#[derive(Debug, Clone, Default)]
pub struct StatsSources {
    /// Ports by name, with their queue counters.
    pub ports: Vec<(String, PortCounters)>,
    /// Pipeline rings by name (`lcore 1 -> lcore 2`).
    pub rings: Vec<(String, Arc<QueueCounters>)>,
    /// Lcores: name, core, loop counters.
    pub lcores: Vec<(String, Option<usize>, Arc<LcoreCounters>)>,
}

/// One queue (or ring) over an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueRate {
    /// Port (or ring) name.
    pub name: String,
    /// Queue index (0 for a ring).
    pub queue: u16,
    /// `"rx"`, `"tx"`, or `"ring"`.
    pub dir: &'static str,
    /// Packets in the interval.
    pub packets: u64,
    /// Million packets per second.
    pub mpps: f64,
    /// Gigabits per second of frame data.
    pub gbps: f64,
    /// Packets dropped in the interval.
    pub drops: u64,
    /// Rx descriptors left unfilled for lack of buffers.
    pub rx_nombuf: u64,
    /// Bursts that found the queue or ring full.
    pub full: u64,
    /// Errors.
    pub errors: u64,
}

/// One lcore's load over an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LcoreLoad {
    /// Its name.
    pub name: String,
    /// Its core.
    pub core: Option<usize>,
    /// Share of loop iterations that moved packets, in percent.
    pub busy_pct: f64,
}

/// All counters over one interval (or, for a summary, the whole run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the sampler started, at the end of the interval.
    pub t: f64,
    /// Seconds the interval lasted.
    pub interval: f64,
    /// Port queues with any traffic or event so far.
    pub queues: Vec<QueueRate>,
    /// Pipeline rings.
    pub rings: Vec<QueueRate>,
    /// Lcores.
    pub lcores: Vec<LcoreLoad>,
}

/// Turns counter snapshots into interval rates.
#[derive(Debug)]
pub struct Sampler {
    sources: StatsSources,
    start: Instant,
    last_t: Instant,
    first: Snap,
    last: Snap,
}

#[derive(Debug, Clone)]
struct Snap {
    queues: Vec<(usize, u16, &'static str, QueueStats)>,
    rings: Vec<QueueStats>,
    lcores: Vec<(u64, u64)>,
}

fn take(sources: &StatsSources) -> Snap {
    let mut queues = Vec::new();
    for (i, (_, c)) in sources.ports.iter().enumerate() {
        for (q, rx) in c.rx.iter().enumerate() {
            queues.push((i, q as u16, "rx", rx.snapshot()));
        }
        for (q, tx) in c.tx.iter().enumerate() {
            queues.push((i, q as u16, "tx", tx.snapshot()));
        }
    }
    Snap {
        queues,
        rings: sources.rings.iter().map(|r| r.1.snapshot()).collect(),
        lcores: sources.lcores.iter().map(|l| l.2.snapshot()).collect(),
    }
}

fn rate(name: String, queue: u16, dir: &'static str, d: &QueueStats, secs: f64) -> QueueRate {
    QueueRate {
        name,
        queue,
        dir,
        packets: d.packets,
        mpps: d.packets as f64 / secs / 1e6,
        gbps: d.bytes as f64 * 8.0 / secs / 1e9,
        drops: d.drops,
        rx_nombuf: d.rx_nombuf,
        full: d.full,
        errors: d.errors,
    }
}

/// Every counter of `snap` at zero: the state of counters created for this run.
fn zeroed(snap: &Snap) -> Snap {
    Snap {
        queues: snap
            .queues
            .iter()
            .map(|&(i, q, d, _)| (i, q, d, QueueStats::default()))
            .collect(),
        rings: vec![QueueStats::default(); snap.rings.len()],
        lcores: vec![(0, 0); snap.lcores.len()],
    }
}

impl Sampler {
    /// Starts sampling now: totals count from the counters' values now.
    pub fn new(sources: StatsSources) -> Self {
        let snap = take(&sources);
        Self::with_baseline(sources, snap.clone(), snap)
    }

    /// Starts sampling counters that were created for this run, possibly after traffic has
    /// begun (lcores start before their counters can be gathered): totals count from zero, so
    /// nothing that moved before this call is missing from them; `started` is when the run
    /// began, for the rates.
    pub fn from_zero(sources: StatsSources, started: Instant) -> Self {
        let snap = take(&sources);
        let mut s = Self::with_baseline(sources, zeroed(&snap), snap);
        s.start = started;
        s
    }

    fn with_baseline(sources: StatsSources, first: Snap, last: Snap) -> Self {
        let now = Instant::now();
        Self {
            sources,
            start: now,
            last_t: now,
            first,
            last,
        }
    }

    /// The interval since the previous call (or the start).
    pub fn sample(&mut self) -> Sample {
        let (now, snap) = (Instant::now(), take(&self.sources));
        let s = self.diff(&self.last, &snap, now - self.last_t, now);
        (self.last, self.last_t) = (snap, now);
        s
    }

    /// The whole run so far.
    pub fn total(&self) -> Sample {
        let (now, snap) = (Instant::now(), take(&self.sources));
        self.diff(&self.first, &snap, now - self.start, now)
    }

    fn diff(&self, a: &Snap, b: &Snap, dt: Duration, now: Instant) -> Sample {
        let secs = dt.as_secs_f64().max(1e-9);
        let since_start = &self.first;
        let queues = b
            .queues
            .iter()
            .zip(&a.queues)
            .zip(&since_start.queues)
            .filter(|((now, _), first)| now.3.since(&first.3) != QueueStats::default())
            .map(|((&(p, q, dir, ref now), (_, _, _, then)), _)| {
                rate(
                    self.sources.ports[p].0.clone(),
                    q,
                    dir,
                    &now.since(then),
                    secs,
                )
            })
            .collect();
        let rings = b
            .rings
            .iter()
            .zip(&a.rings)
            .zip(&self.sources.rings)
            .map(|((now, then), (name, _))| rate(name.clone(), 0, "ring", &now.since(then), secs))
            .collect();
        let lcores = b
            .lcores
            .iter()
            .zip(&a.lcores)
            .zip(&self.sources.lcores)
            .map(|((now, then), (name, core, _))| {
                let polls = now.0.wrapping_sub(then.0);
                let busy = now.1.wrapping_sub(then.1);
                LcoreLoad {
                    name: name.clone(),
                    core: *core,
                    busy_pct: if polls == 0 {
                        0.0
                    } else {
                        100.0 * busy as f64 / polls as f64
                    },
                }
            })
            .collect();
        Sample {
            t: (now - self.start).as_secs_f64(),
            interval: secs,
            queues,
            rings,
            lcores,
        }
    }
}

/// How samples are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A small table per interval.
    Text,
    /// One JSON object per line: `{"type":"interval", ...Sample}`.
    Json,
}

/// `sample` as a table (one line per queue, ring and lcore).
pub fn render_text(title: &str, sample: &Sample) -> String {
    let mut s = format!(
        "{title} t={:.1}s\n  {:<24} {:>4} {:>9} {:>8} {:>12} {:>9} {:>9} {:>9} {:>7}\n",
        sample.t,
        "queue",
        "dir",
        "Mpps",
        "Gbit/s",
        "packets",
        "drops",
        "rx_nombuf",
        "full",
        "errors"
    );
    for r in sample.queues.iter().chain(&sample.rings) {
        let name = if r.dir == "ring" {
            r.name.clone()
        } else {
            format!("{}/q{}", r.name, r.queue)
        };
        s.push_str(&format!(
            "  {:<24} {:>4} {:>9.3} {:>8.3} {:>12} {:>9} {:>9} {:>9} {:>7}\n",
            name, r.dir, r.mpps, r.gbps, r.packets, r.drops, r.rx_nombuf, r.full, r.errors
        ));
    }
    let loads: Vec<String> = sample
        .lcores
        .iter()
        .map(|l| match l.core {
            Some(c) => format!(
                "{} on core {c}: {:.0}% of polls moved packets",
                l.name, l.busy_pct
            ),
            None => format!(
                "{} (unpinned): {:.0}% of polls moved packets",
                l.name, l.busy_pct
            ),
        })
        .collect();
    if !loads.is_empty() {
        s.push_str(&format!("  {}\n", loads.join("; ")));
    }
    s
}

/// `sample` as one JSON line, tagged `"type": kind` (`interval` or `total`).
pub fn render_json(kind: &str, sample: &Sample) -> String {
    let mut v = serde_json::to_value(sample).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), kind.into());
    }
    v.to_string()
}

/// A thread that prints a sample every interval until finished.
#[derive(Debug)]
pub struct StatsThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Sampler>>,
}

impl StatsThread {
    /// Starts printing samples of `sources` to `out` every `interval`.
    pub fn spawn(
        sources: StatsSources,
        interval: Duration,
        format: Format,
        mut out: Box<dyn Write + Send>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || {
                let mut sampler = Sampler::new(sources);
                let mut next = Instant::now() + interval;
                while !flag.load(Ordering::Acquire) {
                    // A control thread may sleep; short naps keep finishing prompt.
                    std::thread::sleep(Duration::from_millis(10).min(interval));
                    if Instant::now() < next {
                        continue;
                    }
                    next += interval;
                    let s = sampler.sample();
                    let text = match format {
                        Format::Text => render_text("stats", &s),
                        Format::Json => render_json("interval", &s) + "\n",
                    };
                    // A closed stdout (a pipe to `head`) ends the printing, not the run.
                    if out
                        .write_all(text.as_bytes())
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        break;
                    }
                }
                sampler
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops printing and returns the run's totals, or `None` if the thread panicked.
    pub fn finish(mut self) -> Option<Sample> {
        self.stop.store(true, Ordering::Release);
        self.thread.take()?.join().ok().map(|s| s.total())
    }
}

impl Drop for StatsThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_report_rates_and_skip_silent_queues() {
        let port = PortCounters::new(1, 1);
        let mut sampler = Sampler::new(StatsSources {
            ports: vec![("p0".into(), port.clone())],
            ..Default::default()
        });
        port.rx[0].add_packets(1000, 64_000);
        port.rx[0].add_rx_nombuf(3);
        std::thread::sleep(Duration::from_millis(20));
        let s = sampler.sample();
        assert_eq!(s.queues.len(), 1, "the silent tx queue is left out");
        let q = &s.queues[0];
        assert_eq!((q.dir, q.packets, q.rx_nombuf), ("rx", 1000, 3));
        assert!(q.mpps > 0.0 && q.gbps > 0.0);
        let text = render_text("stats", &s);
        assert!(text.contains("p0/q0"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render_json("interval", &s)).unwrap();
        assert_eq!(json["type"], "interval");
        assert_eq!(json["queues"][0]["packets"], 1000);
        // Quiet since: the next interval reports zero, the total keeps the count.
        assert_eq!(sampler.sample().queues[0].packets, 0);
        assert_eq!(sampler.total().queues[0].packets, 1000);
    }
}
