//! The final summary of a forwarder run: rate, loss, latency percentiles, drops, how the
//! cores were used, and whether every buffer came home.

use std::time::Duration;

use serde::Serialize;
use sluice_dataplane::stats::{LcoreLoad, Sample, render_text};

use crate::traffic::{GenControl, SinkReport};

/// A pool's fill level after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolCheck {
    /// The pool.
    pub name: String,
    /// Free buffers after everything stopped.
    pub available: usize,
    /// Buffers in all.
    pub capacity: usize,
}

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

/// Everything a run reports at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FwdSummary {
    /// The configuration's file name.
    pub config: String,
    /// `rtc` or `pipeline`.
    pub mode: String,
    /// Rx burst used.
    pub burst: usize,
    /// Seconds the run lasted (until the stop began).
    pub secs: f64,
    /// Whether SIGINT/SIGTERM ended it.
    pub interrupted: bool,
    /// Frame size of the built-in generator (with FCS).
    pub frame_size: Option<u16>,
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames the sink received intact.
    pub received: u64,
    /// `sent - received` (frames dropped or still on a wire when the run stopped).
    pub lost: u64,
    /// Frames that arrived after a higher sequence number.
    pub reordered: u64,
    /// Frames that failed a payload check.
    pub corrupted: u64,
    /// Frames seen twice.
    pub duplicates: u64,
    /// Destination and source MAC of the first frame the sink received (`aa:bb:..`).
    pub sink_macs: Option<(String, String)>,
    /// Frames whose MACs differed from the first frame's.
    pub mac_changes: u64,
    /// The sink's receive rate while frames were arriving, in Mpps.
    pub rate_mpps: f64,
    /// The same in Gbit/s of frame data.
    pub rate_gbps: f64,
    /// Latency percentiles, when the sink saw frames.
    pub latency_ns: Option<Latency>,
    /// Drops counted anywhere: queue and ring drops, and packets a pipeline stage found no
    /// route for.
    pub drops: u64,
    /// Per-queue totals over the run.
    pub totals: Sample,
    /// Lcore load over the run.
    pub lcores: Vec<LcoreLoad>,
    /// Pool fill levels after the stop.
    pub pools: Vec<PoolCheck>,
}

/// What [`FwdSummary::new`] is made from.
pub(crate) struct Parts<'a> {
    pub(crate) config: &'a str,
    pub(crate) frame_size: Option<u16>,
    pub(crate) mode: &'static str,
    pub(crate) burst: usize,
    pub(crate) elapsed: Duration,
    pub(crate) interrupted: bool,
    pub(crate) generator: Option<&'a GenControl>,
    pub(crate) sink: Option<SinkReport>,
    pub(crate) totals: Sample,
    pub(crate) lcores: Vec<LcoreLoad>,
    pub(crate) pools: Vec<PoolCheck>,
}

impl FwdSummary {
    pub(crate) fn new(p: Parts<'_>) -> Self {
        let sent = p.generator.map_or(0, GenControl::sent);
        let sink = p.sink.as_ref();
        let received = sink.map_or(0, |s| s.received);
        let latency_ns = sink.filter(|s| !s.latency.is_empty()).map(|s| Latency {
            p50: s.latency.value_at_quantile(0.50),
            p99: s.latency.value_at_quantile(0.99),
            p999: s.latency.value_at_quantile(0.999),
            max: s.latency.max(),
        });
        let drops = p
            .totals
            .queues
            .iter()
            .chain(&p.totals.rings)
            // A ring's errors are packets its consumer dropped for want of a route.
            .map(|q| q.drops + if q.dir == "ring" { q.errors } else { 0 })
            .sum();
        let (rate_mpps, rate_gbps) = sink.map_or((0.0, 0.0), |s| {
            let pps = s.rate_pps();
            let bps = if s.active_secs > 0.0 {
                s.bytes as f64 * 8.0 / s.active_secs
            } else {
                0.0
            };
            (pps / 1e6, bps / 1e9)
        });
        FwdSummary {
            config: p.config.to_string(),
            mode: p.mode.to_string(),
            burst: p.burst,
            secs: p.elapsed.as_secs_f64(),
            interrupted: p.interrupted,
            frame_size: p.frame_size,
            sent,
            received,
            lost: sent.saturating_sub(received),
            reordered: sink.map_or(0, |s| s.reordered),
            corrupted: sink.map_or(0, |s| s.corrupted),
            duplicates: sink.map_or(0, |s| s.duplicates),
            sink_macs: sink.and_then(|s| s.first_macs).map(|(d, s)| {
                (
                    sluice_pmd::net::MacAddr(d).to_string(),
                    sluice_pmd::net::MacAddr(s).to_string(),
                )
            }),
            mac_changes: sink.map_or(0, |s| s.mac_changes),
            rate_mpps,
            rate_gbps,
            latency_ns,
            drops,
            totals: p.totals,
            lcores: p.lcores,
            pools: p.pools,
        }
    }

    /// Whether every pool is full again.
    pub fn no_leak(&self) -> bool {
        self.pools.iter().all(|p| p.available == p.capacity)
    }

    /// The summary as text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&render_text("total", &self.totals));
        s.push_str(&format!(
            "summary: {} ({} mode, burst {}), {:.2} s{}\n",
            self.config,
            self.mode,
            self.burst,
            self.secs,
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            }
        ));
        if let Some(size) = self.frame_size {
            s.push_str(&format!(
                "  generator: {} frames of {size} B sent\n  sink:      {} received at {:.3} Mpps ({:.3} Gbit/s), lost {}, reordered {}, corrupted {}, duplicates {}\n",
                self.sent,
                self.received,
                self.rate_mpps,
                self.rate_gbps,
                self.lost,
                self.reordered,
                self.corrupted,
                self.duplicates
            ));
        }
        match self.latency_ns {
            Some(l) => s.push_str(&format!(
                "  latency:   p50 {} us, p99 {} us, p99.9 {} us, max {} us\n",
                us(l.p50),
                us(l.p99),
                us(l.p999),
                us(l.max)
            )),
            None => s.push_str("  latency:   no frames received\n"),
        }
        s.push_str(&format!(
            "  drops:     {} (all queues and rings)\n",
            self.drops
        ));
        let cores: Vec<String> = self
            .lcores
            .iter()
            .map(|l| match l.core {
                Some(c) => format!(
                    "{} on core {c} ({:.0}% of polls moved packets)",
                    l.name, l.busy_pct
                ),
                None => format!(
                    "{} unpinned ({:.0}% of polls moved packets)",
                    l.name, l.busy_pct
                ),
            })
            .collect();
        s.push_str(&format!("  lcores:    {}\n", cores.join("; ")));
        let pools: Vec<String> = self
            .pools
            .iter()
            .map(|p| format!("{} {}/{} free", p.name, p.available, p.capacity))
            .collect();
        s.push_str(&format!("  mempools:  {}\n", pools.join("; ")));
        s
    }

    /// The summary as one JSON line, tagged `"type": "summary"`.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), "summary".into());
        }
        v.to_string()
    }
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}
