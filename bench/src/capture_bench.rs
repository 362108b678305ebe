//! The cost of `sluice-fwd --capture`: the forwarding rate of the built-in loopback
//! configuration with capture off and with every frame captured (`fwd0/q0:rx`), side by side,
//! in alternating rounds of one run.
//!
//! The capture file is `/dev/null`: the figure is the cost of copying every frame into the
//! side ring on the lcore and of the writer thread turning them into pcapng blocks, not of a
//! disk (at 20 Mpps of 64 B frames a file grows by 2 GB/s). The writer runs where the
//! scheduler puts it, pinned to core 0 (beside the generator and sink), and, where the
//! machine has a third CPU, pinned to core 2 (a core of its own).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_apps::capture::{CaptureControl, CaptureSettings, PointSpec, TapReport};
use sluice_apps::config::{Config, LOOPBACK_EXAMPLE};
use sluice_apps::fwd::{self, FwdSummary, RunOptions};

use crate::table::Table;

/// Where the writer runs in one column.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Off,
    Capture(Option<usize>),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Off => "capture off".into(),
            Variant::Capture(None) => "capture on, writer unpinned".into(),
            Variant::Capture(Some(0)) => "capture on, writer on core 0 (gen+sink)".into(),
            Variant::Capture(Some(c)) => format!("capture on, writer on core {c} (own)"),
        }
    }
}

fn run(v: Variant, secs: f64) -> Result<(FwdSummary, Option<TapReport>), String> {
    let config = Config::from_str_named(LOOPBACK_EXAMPLE, "config/examples/loopback.toml")
        .map_err(|e| e.to_string())?;
    let opts = RunOptions {
        duration: Some(Duration::from_secs_f64(secs)),
        print_stats: false,
        ..RunOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let Variant::Capture(core) = v else {
        return fwd::run(&config, &opts, stop)
            .map(|s| (s, None))
            .map_err(|e| e.one_line());
    };
    let settings = CaptureSettings {
        writer_core: core,
        ..CaptureSettings::default()
    };
    let control = CaptureControl::new(&config, settings).map_err(|e| e.to_string())?;
    let spec = PointSpec::parse("fwd0/q0:rx").map_err(|e| e.to_string())?;
    control
        .start(&spec, Path::new("/dev/null"))
        .map_err(|e| e.to_string())?;
    let s = fwd::run_with(
        &config,
        &opts,
        stop,
        fwd::Attach {
            capture: Some(&control),
            cores: None,
        },
    )
    .map_err(|e| e.one_line());
    let tap = control.finish().pop();
    Ok((s?, tap))
}

fn median_range(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The capture-cost table of the forwarding section.
pub fn capture_section(quick: bool) -> String {
    let (rounds, secs) = if quick { (3, 1.0) } else { (5, 2.0) };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut variants = vec![
        Variant::Off,
        Variant::Capture(None),
        Variant::Capture(Some(0)),
    ];
    if cpus > 2 {
        variants.push(Variant::Capture(Some(2)));
    }
    let mut out = format!(
        "\nCapture cost: the same forwarder with capture off and with every frame of fwd0/q0:rx\n\
         captured to /dev/null (8 MiB side ring, snaplen 65535), {rounds} alternating rounds of \
         {secs:.0} s, {cpus} CPUs\n"
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let l: Vec<&str> = load.split_whitespace().take(3).collect();
        out.push_str(&format!("load average before the runs: {}\n", l.join(" ")));
    }
    out.push('\n');
    let mut t = Table::new(["round", "variant", "Mpps", "written", "not captured"]);
    let mut rates = vec![Vec::new(); variants.len()];
    for r in 0..rounds {
        for (i, &v) in variants.iter().enumerate() {
            let (s, tap) = match run(v, secs) {
                Ok(x) => x,
                Err(e) => return format!("{out}capture bench failed: {e}\n"),
            };
            rates[i].push(s.rate_mpps);
            let (w, n) = tap.map_or(("-".into(), "-".into()), |t| {
                let all = (t.written + t.not_captured).max(1) as f64;
                (
                    t.written.to_string(),
                    format!("{:.1}%", 100.0 * t.not_captured as f64 / all),
                )
            });
            t.row([
                format!("{}", r + 1),
                v.label(),
                format!("{:.2}", s.rate_mpps),
                w,
                n,
            ]);
        }
    }
    out.push_str(&t.render());
    out.push('\n');
    let (off, _, _) = median_range(&mut rates[0].clone());
    for (i, v) in variants.iter().enumerate() {
        let (m, lo, hi) = median_range(&mut rates[i]);
        let cost = if off > 0.0 {
            100.0 * (1.0 - m / off)
        } else {
            0.0
        };
        out.push_str(&format!(
            "{:<44} median {m:6.2} Mpps (range {lo:.2}-{hi:.2}), cost vs off {cost:5.1}%\n",
            v.label()
        ));
    }
    out
}
