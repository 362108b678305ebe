//! The Prometheus endpoint: `GET /metrics` over HTTP/1.1 on a thread of its own, the
//! counters of a [`Sources`] encoded by the `prometheus-client` crate at each scrape (a
//! [`Collector`]: nothing is copied between scrapes, the lcores are not involved).
//!
//! Metrics (units in the names, OpenMetrics text):
//! `sluice_port_packets_total`, `sluice_port_bytes_total`, `sluice_port_dropped_packets_total`,
//! `sluice_port_rx_nombuf_total`, `sluice_port_full_bursts_total`, `sluice_port_errors_total`
//! (labels `port`, `queue`, `direction`); `sluice_ring_packets_total`,
//! `sluice_ring_dropped_packets_total` (`ring`); `sluice_lcore_polls_total`,
//! `sluice_lcore_busy_polls_total` (`lcore`, `core`); `sluice_mempool_free_buffers`,
//! `sluice_mempool_capacity_buffers` (`pool`); `sluice_latency_seconds` (histogram, the sink's
//! send-to-receive latency); `sluice_block_ios_total`, `sluice_block_bytes_total`,
//! `sluice_block_errors_total`, `sluice_block_in_flight_requests`,
//! `sluice_block_latency_seconds` (`queue`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::latency::LatencySnapshot;
use super::{Sources, TelemetryError};

/// Histogram buckets: powers of two from 2^8 ns (256 ns) to 2^34 ns (17 s).
const LE_POW2: (u32, u32) = (8, 34);
/// How long a scraper may take to send its request or read the reply.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct SluiceCollector(Arc<Sources>);

type Labels = Vec<(&'static str, String)>;

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[(Labels, u64)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[(Labels, i64)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, LatencySnapshot)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, s) in rows {
        let mut buckets: Vec<(f64, u64)> = s
            .cumulative_pow2(LE_POW2.0, LE_POW2.1)
            .into_iter()
            .map(|(le, c)| (le as f64 / 1e9, c))
            .collect();
        let count = s.count();
        buckets.push((f64::INFINITY, count));
        // The encoder takes per-bucket counts and sums them itself.
        let mut prev = 0;
        for b in &mut buckets {
            (b.1, prev) = (b.1 - prev, b.1);
        }
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            s.sum_ns as f64 / 1e9,
            count,
            &buckets,
            None,
        )?;
    }
    Ok(())
}

fn packets() -> Unit {
    Unit::Other("packets".into())
}

impl SluiceCollector {
    fn ports(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        type Row = (Labels, sluice_pmd::net::QueueStats);
        let mut rows: Vec<Row> = Vec::new();
        for (name, c) in &self.0.stats.ports {
            for (dir, qs) in [("rx", &c.rx), ("tx", &c.tx)] {
                for (q, s) in qs.iter().enumerate() {
                    let l = vec![
                        ("port", name.clone()),
                        ("queue", q.to_string()),
                        ("direction", dir.to_string()),
                    ];
                    rows.push((l, s.snapshot()));
                }
            }
        }
        let pick = |f: fn(&sluice_pmd::net::QueueStats) -> u64| -> Vec<(Labels, u64)> {
            rows.iter().map(|(l, s)| (l.clone(), f(s))).collect()
        };
        let p = packets();
        counters(
            enc,
            "sluice_port",
            "Frames received or sent",
            Some(&p),
            &pick(|s| s.packets),
        )?;
        counters(
            enc,
            "sluice_port",
            "Frame bytes received or sent (no FCS)",
            Some(&Unit::Bytes),
            &pick(|s| s.bytes),
        )?;
        counters(
            enc,
            "sluice_port_dropped",
            "Frames dropped",
            Some(&p),
            &pick(|s| s.drops),
        )?;
        counters(
            enc,
            "sluice_port_rx_nombuf",
            "Rx descriptors left unfilled for lack of buffers",
            None,
            &pick(|s| s.rx_nombuf),
        )?;
        counters(
            enc,
            "sluice_port_full_bursts",
            "Bursts that found the queue full",
            None,
            &pick(|s| s.full),
        )?;
        counters(
            enc,
            "sluice_port_errors",
            "Queue errors",
            None,
            &pick(|s| s.errors),
        )
    }

    fn rest(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let p = packets();
        let rings: Vec<_> = s
            .stats
            .rings
            .iter()
            .map(|(n, c)| (vec![("ring", n.clone())], c.snapshot()))
            .collect();
        let ring = |f: fn(&sluice_pmd::net::QueueStats) -> u64| -> Vec<(Labels, u64)> {
            rings.iter().map(|(l, q)| (l.clone(), f(q))).collect()
        };
        counters(
            enc,
            "sluice_ring",
            "Frames through a pipeline ring",
            Some(&p),
            &ring(|q| q.packets),
        )?;
        counters(
            enc,
            "sluice_ring_dropped",
            "Frames dropped at a full pipeline ring",
            Some(&p),
            &ring(|q| q.drops),
        )?;
        let lcores: Vec<_> = s
            .stats
            .lcores
            .iter()
            .map(|(n, core, c)| {
                let core = core.map_or_else(|| "none".to_string(), |c| c.to_string());
                (vec![("lcore", n.clone()), ("core", core)], c.snapshot())
            })
            .collect();
        let polls: Vec<_> = lcores.iter().map(|(l, c)| (l.clone(), c.0)).collect();
        let busy: Vec<_> = lcores.iter().map(|(l, c)| (l.clone(), c.1)).collect();
        counters(
            enc,
            "sluice_lcore_polls",
            "Lcore loop iterations",
            None,
            &polls,
        )?;
        counters(
            enc,
            "sluice_lcore_busy_polls",
            "Lcore loop iterations that moved packets",
            None,
            &busy,
        )?;
        let buffers = Unit::Other("buffers".into());
        let free: Vec<_> = s
            .pools
            .iter()
            .map(|p| (vec![("pool", p.name().to_string())], p.available() as i64))
            .collect();
        let cap: Vec<_> = s
            .pools
            .iter()
            .map(|p| (vec![("pool", p.name().to_string())], p.capacity() as i64))
            .collect();
        gauges(
            enc,
            "sluice_mempool_free",
            "Free buffers of a pool",
            Some(&buffers),
            &free,
        )?;
        gauges(
            enc,
            "sluice_mempool_capacity",
            "Buffers of a pool",
            Some(&buffers),
            &cap,
        )?;
        if let Some(l) = &s.latency {
            histograms(
                enc,
                "sluice_latency",
                "Sink latency, generator send to sink receive",
                &[(Vec::new(), l.snapshot())],
            )?;
        }
        let blk: Vec<_> = s
            .block_queues
            .iter()
            .map(|(n, c)| {
                (
                    vec![("queue", n.clone())],
                    c.snapshot(),
                    c.latency.snapshot(),
                )
            })
            .collect();
        let col = |f: fn(&(u64, u64, u64, u64)) -> u64| -> Vec<(Labels, u64)> {
            blk.iter().map(|(l, c, _)| (l.clone(), f(c))).collect()
        };
        counters(
            enc,
            "sluice_block_ios",
            "Block I/O requests completed",
            None,
            &col(|c| c.0),
        )?;
        counters(
            enc,
            "sluice_block",
            "Block I/O bytes completed",
            Some(&Unit::Bytes),
            &col(|c| c.1),
        )?;
        counters(
            enc,
            "sluice_block_errors",
            "Block I/O requests completed with an error",
            None,
            &col(|c| c.2),
        )?;
        let inflight: Vec<_> = blk
            .iter()
            .map(|(l, c, _)| (l.clone(), c.3 as i64))
            .collect();
        gauges(
            enc,
            "sluice_block_in_flight",
            "Block I/O requests in flight",
            Some(&Unit::Other("requests".into())),
            &inflight,
        )?;
        let lat: Vec<_> = blk.into_iter().map(|(l, _, h)| (l, h)).collect();
        histograms(
            enc,
            "sluice_block_latency",
            "Block I/O completion latency",
            &lat,
        )
    }
}

impl Collector for SluiceCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.ports(&mut enc)?;
        self.rest(&mut enc)
    }
}

/// The OpenMetrics exposition of `sources` now (what `/metrics` serves to a scraper that
/// accepts `application/openmetrics-text`, as Prometheus does).
pub fn render(sources: &Arc<Sources>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SluiceCollector(sources.clone())));
    let mut out = String::new();
    // Writing into a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The same in Prometheus' text format 0.0.4 (what `/metrics` serves to other clients:
/// `curl`, `promtool`): a counter family is named with its `_total` suffix, as its samples
/// are (OpenMetrics names the family without it), and the `# UNIT` and `# EOF` lines of
/// OpenMetrics go (the unit is in the name already).
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta.and_then(|(p, rest)| Some((p, rest.split_once(' ')?))) {
            Some((p, (name, rest))) if counters.contains(name) => {
                out.push_str(&format!("{p}{name}_total {rest}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A bound endpoint, not serving yet (bound before the lcores start, so that an address in
/// use stops the app before any packet moves).
#[derive(Debug)]
pub struct PrometheusListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl PrometheusListener {
    /// Binds `addr` (`IP:PORT`; port 0 picks one).
    pub fn bind(addr: &str) -> Result<Self, TelemetryError> {
        let sa: SocketAddr = addr.parse().map_err(|_| TelemetryError::BadAddr {
            addr: addr.to_string(),
        })?;
        let bind = |source| TelemetryError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(sa).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(Self { listener, addr })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `/metrics` over `sources` on a thread of its own.
    pub fn serve(self, sources: Arc<Sources>) -> Result<PrometheusServer, TelemetryError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("prometheus".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        return;
                    }
                    if let Ok(c) = conn {
                        let _ = answer(c, &sources);
                    }
                }
            })
            .map_err(|source| TelemetryError::Bind {
                addr: self.addr.to_string(),
                source,
            })?;
        Ok(PrometheusServer {
            addr: self.addr,
            stop,
            thread: Some(thread),
        })
    }
}

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct PrometheusServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PrometheusServer {
    /// Listens on `addr` and serves `/metrics` over `sources`.
    pub fn start(addr: &str, sources: Arc<Sources>) -> Result<Self, TelemetryError> {
        PrometheusListener::bind(addr)?.serve(sources)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request and answers it; the connection closes after.
fn answer(conn: TcpStream, sources: &Arc<Sources>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(Read::take(conn.try_clone()?, 64 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // The headers (bounded by `take`): only Accept matters.
    let (mut h, mut openmetrics) = (String::new(), false);
    while reader.read_line(&mut h)? > 2 {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("accept:") && lower.contains("application/openmetrics-text") {
            openmetrics = true;
        }
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") if openmetrics => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(sources),
        ),
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            openmetrics_to_text(&render(sources)),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        w.write_all(body.as_bytes())?;
    }
    w.flush()
}
