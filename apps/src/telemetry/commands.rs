//! The commands over an app's counters: DPDK's `/ethdev/list`, `/ethdev/stats,<port id>`
//! and `/ethdev/xstats,<port id>` (shaped as DPDK 22.11's `lib/ethdev` telemetry), and
//! Sluice's `/sluice/...`. Every handler reads counters the lcores bump anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use sluice_dataplane::stats::StatsSources;
use sluice_pmd::PktPool;
use sluice_pmd::net::QueueStats;

use super::latency::{LatencyBuckets, LatencySnapshot};
use super::{Telemetry, TelemetryError};

/// Per-queue stats arrays in `/ethdev/stats` have this many entries, as DPDK's
/// (`RTE_ETHDEV_QUEUE_STAT_CNTRS`).
pub const QUEUE_STAT_CNTRS: usize = 16;

/// Live counters of one block queue (an NVMe I/O queue pair, an io_uring, a RAM disk),
/// written by the lcore that owns it.
#[derive(Debug, Default)]
pub struct BlockQueueCounters {
    ios: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
    /// Largest completion latency since the last [`BlockQueueCounters::take_max_ns`].
    lat_max_ns: AtomicU64,
    /// Completion latency.
    pub latency: LatencyBuckets,
}

#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl BlockQueueCounters {
    /// Counts one completion of `bytes` bytes after `ns` nanoseconds (single writer).
    #[inline]
    pub fn complete(&self, bytes: u64, ns: u64, ok: bool) {
        // The latency first, and the count released after it: a reader that sees `ios`
        // completions sees at least as many latencies.
        self.latency.record(ns);
        if ns > self.lat_max_ns.load(Ordering::Relaxed) {
            self.lat_max_ns.store(ns, Ordering::Relaxed);
        }
        bump(&self.bytes, bytes);
        if !ok {
            bump(&self.errors, 1);
        }
        let ios = &self.ios;
        ios.store(
            ios.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }

    /// Sets how many requests are in flight.
    #[inline]
    pub fn set_in_flight(&self, n: u64) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// Completions, bytes, errors, in flight.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let ios = self.ios.load(Ordering::Acquire);
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (ios, l(&self.bytes), l(&self.errors), l(&self.in_flight))
    }

    /// The sum of all completion latencies so far, in nanoseconds.
    pub fn latency_sum_ns(&self) -> u64 {
        self.latency.sum_ns()
    }

    /// The largest completion latency since the last call, reset to 0 (for one reader, the
    /// progress sampler: a completion racing the reset may be missed from one interval's
    /// maximum, never from the counts).
    pub fn take_max_ns(&self) -> u64 {
        self.lat_max_ns.swap(0, Ordering::Relaxed)
    }
}

/// What the commands and the Prometheus endpoint read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Ports (their index is their DPDK port id), pipeline rings, lcores.
    pub stats: StatsSources,
    /// Packet pools.
    pub pools: Vec<PktPool>,
    /// The sink's latency, when a sink runs.
    pub latency: Option<Arc<LatencyBuckets>>,
    /// Block queues by name (`sluice-blkperf`), with the target they drive.
    pub block_queues: Vec<(String, Arc<BlockQueueCounters>)>,
    /// What the block queues drive (`nvme 0000:00:03.0`, `ram`, a file).
    pub block_target: String,
}

fn port_id(sources: &Sources, param: Option<&str>) -> Option<usize> {
    // As DPDK: a decimal port id, nothing else.
    let p = param?.trim();
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse()
        .ok()
        .filter(|&id: &usize| id < sources.stats.ports.len())
}

fn queue_array(stats: &[QueueStats], f: impl Fn(&QueueStats) -> u64) -> Value {
    let mut v: Vec<u64> = stats.iter().take(QUEUE_STAT_CNTRS).map(f).collect();
    v.resize(QUEUE_STAT_CNTRS, 0);
    json!(v)
}

fn snapshots(c: &[Arc<sluice_pmd::net::QueueCounters>]) -> Vec<QueueStats> {
    c.iter().map(|q| q.snapshot()).collect()
}

fn sum(q: &[QueueStats]) -> QueueStats {
    q.iter().fold(QueueStats::default(), |a, s| a.plus(s))
}

/// `/ethdev/stats,<id>`: DPDK's `rte_eth_stats` fields.
pub fn ethdev_stats(sources: &Sources, param: Option<&str>) -> Option<Value> {
    let (_, c) = &sources.stats.ports[port_id(sources, param)?];
    let (rx, tx) = (snapshots(&c.rx), snapshots(&c.tx));
    let (r, t) = (sum(&rx), sum(&tx));
    Some(json!({
        "ipackets": r.packets,
        "opackets": t.packets,
        "ibytes": r.bytes,
        "obytes": t.bytes,
        "imissed": r.drops,
        "ierrors": r.errors,
        "oerrors": t.errors,
        "rx_nombuf": r.rx_nombuf,
        "q_ipackets": queue_array(&rx, |s| s.packets),
        "q_opackets": queue_array(&tx, |s| s.packets),
        "q_ibytes": queue_array(&rx, |s| s.bytes),
        "q_obytes": queue_array(&tx, |s| s.bytes),
        "q_errors": queue_array(&rx, |s| s.errors),
    }))
}

/// `/ethdev/xstats,<id>`: DPDK's generic names first, then per queue, then Sluice's own.
pub fn ethdev_xstats(sources: &Sources, param: Option<&str>) -> Option<Value> {
    let (_, c) = &sources.stats.ports[port_id(sources, param)?];
    let (rx, tx) = (snapshots(&c.rx), snapshots(&c.tx));
    let (r, t) = (sum(&rx), sum(&tx));
    let mut m = Map::new();
    let mut put = |k: String, v: u64| {
        m.insert(k, json!(v));
    };
    put("rx_good_packets".into(), r.packets);
    put("tx_good_packets".into(), t.packets);
    put("rx_good_bytes".into(), r.bytes);
    put("tx_good_bytes".into(), t.bytes);
    put("rx_missed_errors".into(), r.drops);
    put("rx_errors".into(), r.errors);
    put("tx_errors".into(), t.errors);
    put("rx_mbuf_allocation_errors".into(), r.rx_nombuf);
    for (q, s) in rx.iter().enumerate() {
        put(format!("rx_q{q}_packets"), s.packets);
        put(format!("rx_q{q}_bytes"), s.bytes);
        put(format!("rx_q{q}_errors"), s.errors);
    }
    for (q, s) in tx.iter().enumerate() {
        put(format!("tx_q{q}_packets"), s.packets);
        put(format!("tx_q{q}_bytes"), s.bytes);
    }
    for (q, s) in rx.iter().enumerate() {
        put(format!("rx_q{q}_dropped"), s.drops);
        put(format!("rx_q{q}_full_bursts"), s.full);
    }
    for (q, s) in tx.iter().enumerate() {
        put(format!("tx_q{q}_dropped"), s.drops);
        put(format!("tx_q{q}_full_bursts"), s.full);
        put(format!("tx_q{q}_errors"), s.errors);
    }
    Some(Value::Object(m))
}

fn latency_json(s: &LatencySnapshot) -> Value {
    let n = s.count();
    json!({
        "count": n,
        "mean_ns": s.sum_ns.checked_div(n).unwrap_or(0),
        "p50_ns": s.quantile(0.5),
        "p90_ns": s.quantile(0.9),
        "p99_ns": s.quantile(0.99),
        "p999_ns": s.quantile(0.999),
        "max_ns": s.max_ns,
    })
}

fn lcores(sources: &Sources, last: &Mutex<Vec<(u64, u64)>>) -> Value {
    let now: Vec<(u64, u64)> = sources
        .stats
        .lcores
        .iter()
        .map(|l| l.2.snapshot())
        .collect();
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    last.resize(now.len(), (0, 0));
    let pct = |polls: u64, busy: u64| {
        if polls == 0 {
            0.0
        } else {
            (1000.0 * busy as f64 / polls as f64).round() / 10.0
        }
    };
    let mut m = Map::new();
    for ((name, core, _), (&(p, b), then)) in
        sources.stats.lcores.iter().zip(now.iter().zip(last.iter()))
    {
        m.insert(
            name.clone(),
            json!({
                "core": core,
                "polls": p,
                "busy_polls": b,
                "busy_pct": pct(p.wrapping_sub(then.0), b.wrapping_sub(then.1)),
                "busy_pct_total": pct(p, b),
            }),
        );
    }
    *last = now;
    Value::Object(m)
}

/// Registers DPDK's ethdev commands and Sluice's over `sources` in `t`.
pub fn register(t: &Telemetry, sources: Arc<Sources>) -> Result<(), TelemetryError> {
    let s = sources.clone();
    t.register(
        "/ethdev/list",
        "Returns list of available ethdev ports. Takes no parameters",
        move |_| Some(json!((0..s.stats.ports.len()).collect::<Vec<_>>())),
    )?;
    let s = sources.clone();
    t.register(
        "/ethdev/stats",
        "Returns the common stats for a port. Parameters: int port_id",
        move |p| ethdev_stats(&s, p),
    )?;
    let s = sources.clone();
    t.register(
        "/ethdev/xstats",
        "Returns the extended stats for a port. Parameters: int port_id",
        move |p| ethdev_xstats(&s, p),
    )?;
    let s = sources.clone();
    t.register(
        "/sluice/ports",
        "Port ids, names and queue counts. Takes no parameters",
        move |_| {
            Some(json!(
                s.stats
                    .ports
                    .iter()
                    .enumerate()
                    .map(|(i, (name, c))| json!({
                        "id": i, "name": name, "rx_queues": c.rx.len(), "tx_queues": c.tx.len(),
                    }))
                    .collect::<Vec<_>>()
            ))
        },
    )?;
    let (s, last) = (sources.clone(), Mutex::new(Vec::new()));
    t.register(
        "/sluice/lcores",
        "Lcore loop counts and busy % (since last ask, total)",
        move |_| Some(lcores(&s, &last)),
    )?;
    let s = sources.clone();
    t.register(
        "/sluice/mempools",
        "Free and total buffers of each pool. Takes no parameters",
        move |_| {
            let mut m = Map::new();
            for p in &s.pools {
                m.insert(
                    p.name().to_string(),
                    json!({ "free": p.available(), "capacity": p.capacity() }),
                );
            }
            Some(Value::Object(m))
        },
    )?;
    let s = sources.clone();
    t.register(
        "/sluice/rings",
        "Pipeline rings: packets, drops, full bursts. No parameters",
        move |_| {
            let mut m = Map::new();
            for (name, c) in &s.stats.rings {
                let q = c.snapshot();
                m.insert(
                    name.clone(),
                    json!({ "packets": q.packets, "drops": q.drops, "full_bursts": q.full }),
                );
            }
            Some(Value::Object(m))
        },
    )?;
    let s = sources.clone();
    t.register(
        "/sluice/latency",
        "Sink latency percentiles in ns (null: no sink). No params",
        move |_| s.latency.as_ref().map(|l| latency_json(&l.snapshot())),
    )?;
    if !sources.block_queues.is_empty() {
        let s = sources;
        t.register(
            "/sluice/nvme/queues",
            "Block I/O queues: I/Os, bytes, latency. No parameters",
            move |_| {
                let mut m = Map::new();
                for (name, c) in &s.block_queues {
                    let (ios, bytes, errors, in_flight) = c.snapshot();
                    m.insert(
                        name.clone(),
                        json!({
                            "target": s.block_target, "ios": ios, "bytes": bytes, "errors": errors,
                            "in_flight": in_flight, "latency": latency_json(&c.latency.snapshot()),
                        }),
                    );
                }
                Some(Value::Object(m))
            },
        )?;
    }
    Ok(())
}
