//! `sluice-fwd`: the forwarder.
//!
//! ```text
//! sluice-fwd [--config FILE] [--duration SECONDS] [--json] [--count N]
//! ```
//!
//! With no `--config` it runs the built-in loopback configuration (in-memory ports, built-in
//! generator and sink on core 0, forwarding lcore on core 1): no device, no hugepages, no
//! privileges. SIGINT or SIGTERM stops it; more within a second are the same stop (a
//! terminal or `timeout` signals the whole process group), one after that exits at once.
//! The final summary prints rate, loss and latency percentiles. Errors are one line on
//! stderr and exit 1.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sluice_apps::AppError;
use sluice_apps::capture::{CaptureControl, TapReport, TapState};
use sluice_apps::cli::fwd::FwdArgs;
use sluice_apps::cli::{self, say};
use sluice_apps::fwd;

fn main() -> ExitCode {
    let args = FwdArgs::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-fwd: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

fn run(args: &FwdArgs) -> Result<ExitCode, AppError> {
    let opts = args.run_options();
    let config = cli::load_config(args.config.as_deref())?;
    let interrupt = cli::stop_on_signals("sluice-fwd")?;
    if !args.json {
        say(&format!(
            "sluice-fwd: {}: {} ports, lcores on cores {:?}{}\n",
            config.name(),
            config.ports().len(),
            config
                .lcores()
                .iter()
                .map(|l| args
                    .lcores
                    .as_ref()
                    .map_or(l.core as usize, |m| m.cpu(l.core)))
                .collect::<Vec<_>>(),
            match opts.duration {
                Some(d) => format!(", {:.1} s", d.as_secs_f64()),
                None => ", until Ctrl-C".to_string(),
            }
        ));
    }
    // Capture files are created (and their errors reported) before any packet moves.
    let capture = CaptureControl::new(&config, args.capture_settings())?;
    for req in &args.capture {
        capture.start(&req.points, &req.path)?;
    }
    let attach = fwd::Attach {
        capture: Some(&capture),
        cores: args.lcores.as_ref(),
    };
    let result = fwd::run_with(&config, &opts, interrupt, attach);
    let taps = capture.finish();
    let summary = result?;
    if args.json {
        say(&(summary.to_json() + "\n"));
        if !taps.is_empty() {
            say(&(serde_json::json!({ "captures": taps }).to_string() + "\n"));
        }
    } else {
        say(&summary.render());
        for t in &taps {
            say(&(capture_line(t) + "\n"));
        }
    }
    if let Some(t) = taps.iter().find(|t| t.error.is_some()) {
        eprintln!(
            "sluice-fwd: error: capture file {}: {}",
            t.path.display(),
            t.error.as_deref().unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    if !summary.no_leak() {
        eprintln!(
            "sluice-fwd: error: buffers not returned to their pools (a bug): see mempools above"
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// One capture in the text summary.
fn capture_line(t: &TapReport) -> String {
    format!(
        "capture {}: {} -> {}: {} frames written, {} not captured (side ring full){}",
        t.id,
        t.points,
        t.path.display(),
        t.written,
        t.not_captured,
        if t.state == TapState::Running {
            ", writer still running"
        } else {
            ""
        }
    )
}
