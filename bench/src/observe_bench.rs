//! What observability costs the forwarder: the in-memory forwarder of [`crate::fwd_bench`]
//! (the same `sluice_apps::fwd::run`) with every endpoint off, beside the telemetry socket and
//! the Prometheus endpoint on and queried while it forwards. Rounds alternate the variants
//! (and their order), so that the machine's load drifts over all of them alike; the table
//! gives each round, the medians and the ranges.
//!
//! While a variant with endpoints runs, a client thread asks the socket for
//! `/ethdev/stats,1` and `/sluice/lcores` and scrapes `/metrics` every [`QUERY_EVERY`]: far
//! more often than Prometheus' default 15 s, so the figure bounds the cost from above.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_apps::config::{Config, LOOPBACK_EXAMPLE};
use sluice_apps::fwd::{self, RunOptions};
use sluice_apps::telemetry::TelemetryOptions;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::table::Table;

/// How often the client queries the endpoints during a run.
pub const QUERY_EVERY: Duration = Duration::from_millis(250);

/// One column of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// No socket, no endpoint.
    Off,
    /// The telemetry socket and the Prometheus endpoint, both queried.
    TelemetryPrometheus,
    // A capture-on column goes here (and in `VARIANTS`, `label` and `options`).
}

/// The columns, in the order of the first round.
pub const VARIANTS: &[Variant] = &[Variant::Off, Variant::TelemetryPrometheus];

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Off => "all off",
            Variant::TelemetryPrometheus => "telemetry+prometheus on",
        }
    }

    /// The endpoints this variant runs with, in `dir`.
    fn options(self, dir: &Path) -> Result<TelemetryOptions, String> {
        Ok(match self {
            Variant::Off => TelemetryOptions::default(),
            Variant::TelemetryPrometheus => TelemetryOptions {
                socket: Some(dir.join("dpdk_telemetry.v2")),
                prometheus: Some(free_port()?.to_string()),
            },
        })
    }
}

/// A loopback address with a port free now (the run binds it a moment later).
fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// Queries the endpoints of `opts` until `stop`; returns how many queries were answered.
fn client(opts: TelemetryOptions, stop: Arc<AtomicBool>) -> u64 {
    let mut answered = 0;
    let mut sock = None;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(QUERY_EVERY);
        if let Some(path) = &opts.socket {
            if sock.is_none() {
                sock = connect(path);
            }
            if let Some(s) = sock.as_mut()
                && ask(s, "/ethdev/stats,1").is_some()
                && ask(s, "/sluice/lcores").is_some()
            {
                answered += 1;
            }
        }
        if let Some(addr) = &opts.prometheus
            && scrape(addr).is_some()
        {
            answered += 1;
        }
    }
    answered
}

fn connect(path: &Path) -> Option<Socket> {
    let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).ok()?;
    s.connect(&SockAddr::unix(path).ok()?).ok()?;
    let mut info = vec![0u8; 1024];
    // The info message first, as every client reads it.
    let n = (&s).read(&mut info).ok()?;
    (n > 0).then_some(s)
}

fn ask(s: &mut Socket, cmd: &str) -> Option<usize> {
    s.write_all(cmd.as_bytes()).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    s.read(&mut buf).ok().filter(|&n| n > 0)
}

fn scrape(addr: &str) -> Option<usize> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .ok()?;
    let mut body = Vec::new();
    c.read_to_end(&mut body).ok()?;
    body.starts_with(b"HTTP/1.1 200").then_some(body.len())
}

/// One run of `secs` seconds at the maximum rate: Mpps at the sink, queries answered.
fn run(variant: Variant, secs: f64, dir: &Path) -> Result<(f64, u64), String> {
    let config = Config::from_str_named(LOOPBACK_EXAMPLE, "config/examples/loopback.toml")
        .map_err(|e| e.to_string())?;
    let telemetry = variant.options(dir)?;
    let opts = RunOptions {
        duration: Some(Duration::from_secs_f64(secs)),
        print_stats: false,
        telemetry: telemetry.clone(),
        ..RunOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let queries = std::thread::spawn(move || client(telemetry, flag));
    let summary = fwd::run(&config, &opts, Arc::new(AtomicBool::new(false)));
    stop.store(true, Ordering::Release);
    let answered = queries.join().unwrap_or(0);
    let s = summary.map_err(|e| e.one_line())?;
    Ok((s.rate_mpps, answered))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The comparison: `rounds` rounds of every variant, `secs` seconds each.
pub fn cost_section(quick: bool) -> String {
    let (rounds, secs) = if quick { (2, 1.0) } else { (7, 3.0) };
    let dir: PathBuf = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return format!("observability cost: {}: {e}\n", dir.display());
    }
    let mut out = format!(
        "\nObservability cost: the same forwarder, max rate, {rounds} rounds of {secs:.0} s per \
         variant, alternating (odd rounds reversed); endpoints queried every {} ms\n\n",
        QUERY_EVERY.as_millis()
    );
    let mut header = vec!["round".to_string()];
    header.extend(VARIANTS.iter().map(|v| format!("{} Mpps", v.label())));
    let mut t = Table::new(header);
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut answered = 0;
    for round in 0..rounds {
        let mut row = vec![String::new(); VARIANTS.len()];
        let order: Vec<usize> = if round % 2 == 0 {
            (0..VARIANTS.len()).collect()
        } else {
            (0..VARIANTS.len()).rev().collect()
        };
        for i in order {
            match run(VARIANTS[i], secs, &dir) {
                Ok((mpps, n)) => {
                    rates[i].push(mpps);
                    answered += n;
                    row[i] = format!("{mpps:.3}");
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return format!("{out}observability cost bench failed: {e}\n");
                }
            }
        }
        t.row(std::iter::once(format!("#{}", round + 1)).chain(row));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ranges: Vec<(f64, f64)> = rates
        .iter()
        .map(|r| {
            (
                r.iter().copied().fold(f64::INFINITY, f64::min),
                r.iter().copied().fold(0.0, f64::max),
            )
        })
        .collect();
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    t.row(std::iter::once("median".to_string()).chain(medians.iter().map(|m| format!("{m:.3}"))));
    t.row(
        std::iter::once("range".to_string())
            .chain(ranges.iter().map(|(a, b)| format!("{a:.3}-{b:.3}"))),
    );
    let base = medians[0];
    t.row(
        std::iter::once("vs all off".to_string()).chain(
            medians
                .iter()
                .map(|m| format!("{:+.1}%", 100.0 * (m - base) / base)),
        ),
    );
    out.push_str(&t.render());
    out.push_str(&format!(
        "\n{answered} queries answered during the runs. Target: telemetry+prometheus on costs \
         under 2 % of the forwarding rate; compare the difference of the medians with the \
         ranges (this machine's noise).\n"
    ));
    out
}
