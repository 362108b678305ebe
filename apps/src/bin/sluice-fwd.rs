//! `sluice-fwd`: the forwarder.
//!
//! ```text
//! sluice-fwd [--config FILE] [--duration SECONDS] [--json] [--count N]
//! ```
//!
//! With no `--config` it runs the built-in loopback configuration (in-memory ports, built-in
//! generator and sink on core 0, forwarding lcore on core 1): no device, no hugepages, no
//! privileges. SIGINT or SIGTERM stops it (a second one exits at once); the final summary
//! prints rate, loss and latency percentiles. Errors are one line on stderr and exit 1.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use sluice_apps::AppError;
use sluice_apps::config::Config;
use sluice_apps::fwd::{self, RunOptions};

/// Sluice forwarder: forwards between the ports of a configuration on pinned, busy-polling
/// lcores.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML); default: the built-in loopback configuration.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long, short)]
    duration: Option<f64>,
    /// Stats and summary as JSON, one object per line.
    #[arg(long)]
    json: bool,
    /// The built-in generator stops after this many frames (the run ends when they arrive).
    #[arg(long)]
    count: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-fwd: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, AppError> {
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::builtin_default(),
    };
    let duration = match args.duration {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(AppError::Usage(format!(
                "--duration: {s} is not a positive number of seconds"
            )));
        }
        s => s.map(Duration::from_secs_f64),
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for an orderly stop; a second one exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, interrupt.clone())
            .and_then(|_| signal_hook::flag::register(sig, interrupt.clone()))
            .map_err(|source| AppError::Os {
                what: "installing the SIGINT/SIGTERM handler",
                source,
            })?;
    }
    let mut opts = RunOptions {
        duration,
        json: args.json,
        ..RunOptions::default()
    };
    opts.start.gen_count = args.count;
    if !args.json {
        say(&format!(
            "sluice-fwd: {}: {} ports, lcores on cores {:?}{}\n",
            config.name(),
            config.ports().len(),
            config.lcores().iter().map(|l| l.core).collect::<Vec<_>>(),
            match duration {
                Some(d) => format!(", {:.1} s", d.as_secs_f64()),
                None => ", until Ctrl-C".to_string(),
            }
        ));
    }
    let summary = fwd::run(&config, &opts, interrupt)?;
    if args.json {
        say(&(summary.to_json() + "\n"));
    } else {
        say(&summary.render());
    }
    if !summary.no_leak() {
        eprintln!(
            "sluice-fwd: error: buffers not returned to their pools (a bug): see mempools above"
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints to stdout; a closed stdout (`| head`) is not an error worth a panic.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
