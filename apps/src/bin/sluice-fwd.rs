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
            config.lcores().iter().map(|l| l.core).collect::<Vec<_>>(),
            match opts.duration {
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
