//! Forwarding rate at 64 B on in-memory ports, through the forwarder's own code path
//! (`sluice_apps::fwd::run`, what `sluice-fwd` runs) with the built-in loopback
//! configuration: generator and sink on core 0, the forwarding lcore on core 1.
//!
//! Each run sends as fast as the generator can for a fixed time with the default transmit
//! policy (hold one burst, drop after a 100 µs stall); the sink counts what arrives intact.
//! A last run paces the generator at half the median rate, to show latency when the rings are
//! not full (at the maximum rate every ring is full and latency is queueing delay).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_apps::config::{Config, LOOPBACK_EXAMPLE};
use sluice_apps::fwd::{self, FwdSummary, RunOptions};

use crate::table::Table;

fn run(rate_pps: u64, secs: f64) -> Result<FwdSummary, String> {
    let text = LOOPBACK_EXAMPLE.replace("rate_pps = 0", &format!("rate_pps = {rate_pps}"));
    let config = Config::from_str_named(&text, "config/examples/loopback.toml")
        .map_err(|e| e.to_string())?;
    let opts = RunOptions {
        duration: Some(Duration::from_secs_f64(secs)),
        print_stats: false,
        ..RunOptions::default()
    };
    fwd::run(&config, &opts, Arc::new(AtomicBool::new(false))).map_err(|e| e.one_line())
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn row(t: &mut Table, label: &str, s: &FwdSummary) {
    let drop_rate = if s.sent > 0 {
        100.0 * s.lost as f64 / s.sent as f64
    } else {
        0.0
    };
    let lat = s.latency_ns;
    let busy = |name: &str| {
        s.lcores
            .iter()
            .find(|l| l.name.starts_with(name))
            .map_or("n/a".to_string(), |l| format!("{:.0}%", l.busy_pct))
    };
    t.row([
        label.to_string(),
        format!("{:.2}", s.rate_mpps),
        format!("{}", s.sent),
        format!("{:.4}%", drop_rate),
        format!("{}", s.corrupted + s.reordered),
        lat.map_or("n/a".into(), |l| us(l.p50)),
        lat.map_or("n/a".into(), |l| us(l.p99)),
        lat.map_or("n/a".into(), |l| us(l.p999)),
        lat.map_or("n/a".into(), |l| us(l.max)),
        busy("lcore 1"),
        busy("generator+sink"),
    ]);
}

/// Runs the forwarding benchmark and returns its report.
pub fn fwd_section(quick: bool) -> String {
    let (runs, secs) = if quick { (2, 1.0) } else { (5, 3.0) };
    let mut out = String::from(
        "Forwarding, 64 B frames, in-memory ports, sluice-fwd's built-in loopback config\n\
         (generator+sink on core 0, forwarding lcore on core 1, io mode, burst 32)\n",
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        out.push_str(&format!(
            "load average before the runs: {}\n",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    out.push('\n');
    let mut t = Table::new([
        "run",
        "Mpps",
        "sent",
        "lost",
        "bad",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "fwd polls w/ pkts",
        "gen+sink polls w/ pkts",
    ]);
    let mut rates = Vec::new();
    for i in 0..runs {
        match run(0, secs) {
            Ok(s) => {
                rates.push(s.rate_mpps);
                row(&mut t, &format!("max rate #{}", i + 1), &s);
            }
            Err(e) => return format!("{out}forwarding bench failed: {e}\n"),
        }
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let paced = (median * 1e6 / 2.0) as u64;
    match run(paced.max(1), secs) {
        Ok(s) => row(&mut t, &format!("paced {:.2} Mpps", paced as f64 / 1e6), &s),
        Err(e) => return format!("{out}forwarding bench failed: {e}\n"),
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nmedian {median:.2} Mpps over {runs} runs of {secs:.0} s. Mpps: intact frames the sink \
         received per second while they arrived; lost: (sent - received) / sent, frames dropped \
         by the transmit policy or still in a ring at the stop; bad: corrupted + reordered; \
         polls w/ pkts: share of an lcore's loop iterations that moved packets (a forwarder waiting on a full ring polls without moving any).\n"
    ));
    out.push_str(&crate::observe_bench::cost_section(quick));
    out
}
