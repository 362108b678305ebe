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

/// CPU time so far, in clock ticks (`USER_HZ`, 100 a second on Linux), of this process's
/// threads that serve the endpoints (named `telemetry`, `telemetry-client` (shown as
/// `telemetry-clien`) and `prometheus`), from `/proc/self/task/*/stat`.
fn server_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut ticks = 0;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        if !(comm.starts_with("telemetry") || comm == "prometheus") {
            continue;
        }
        // After the comm: state (field 3), ..., utime (14), stime (15).
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += field(11) + field(12);
    }
    ticks
}

/// Queries the endpoints of `opts` until `stop`; returns how many queries were answered and
/// the CPU ticks the serving threads had used at the last of them.
fn client(opts: TelemetryOptions, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut answered, mut ticks) = (0, 0);
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
        ticks = server_ticks();
    }
    (answered, ticks)
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

/// One run of `secs` seconds at the maximum rate: Mpps at the sink, queries answered, CPU
/// ticks of the serving threads.
fn run(variant: Variant, secs: f64, dir: &Path) -> Result<(f64, u64, u64), String> {
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
    let (answered, ticks) = queries.join().unwrap_or((0, 0));
    let s = summary.map_err(|e| e.one_line())?;
    Ok((s.rate_mpps, answered, ticks))
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
    let (mut answered, mut ticks, mut on_secs) = (0, 0, 0.0);
    for round in 0..rounds {
        let mut row = vec![String::new(); VARIANTS.len()];
        let order: Vec<usize> = if round % 2 == 0 {
            (0..VARIANTS.len()).collect()
        } else {
            (0..VARIANTS.len()).rev().collect()
        };
        for i in order {
            match run(VARIANTS[i], secs, &dir) {
                Ok((mpps, n, t)) => {
                    rates[i].push(mpps);
                    answered += n;
                    ticks += t;
                    if VARIANTS[i] != Variant::Off {
                        on_secs += secs;
                    }
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
        "\n{answered} queries answered during the runs; the threads serving them used {} ms of \
         CPU in {on_secs:.0} s of runs with endpoints on ({:.3} % of one core; 10 ms \
         resolution). Target: telemetry+prometheus on costs under 2 % of the forwarding rate; \
         compare the difference of the medians with the ranges (this machine's noise).\n",
        ticks * 10,
        if on_secs > 0.0 {
            ticks as f64 * 0.01 / on_secs * 100.0
        } else {
            0.0
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ticks_counts_the_cpu_of_threads_named_for_telemetry() {
        let before = server_ticks();
        let t = std::thread::Builder::new()
            .name("telemetry-spin".into())
            .spawn(move || {
                // Spin until 50 ms of CPU show in the count; a parser that missed this
                // thread would never see them, and fails at the (generous) wall bound.
                let until = std::time::Instant::now() + Duration::from_secs(120);
                let mut x = 0u64;
                while server_ticks() < before + 5 && std::time::Instant::now() < until {
                    for i in 0..100_000u64 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                }
                server_ticks()
            })
            .unwrap();
        let during = t.join().unwrap();
        assert!(during >= before + 5, "{before} then {during}");
    }
}
