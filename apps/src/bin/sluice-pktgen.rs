//! `sluice-pktgen`: generator and sink on any port of a configuration.
//!
//! ```text
//! sluice-pktgen [--config FILE] [--tx-port NAME] [--rx-port NAME] [--frame-size BYTES]
//!               [--rate PPS] [--flows N] [--count N] [--duration SECONDS]
//!               [--core N] [--rx-core N] [--json]
//! ```
//!
//! Frames are UDP/IPv4 with a sequence number, a TSC stamp and a checked fill pattern; the
//! sink reports loss, reordering, corruption and latency percentiles. With no `--config` the
//! built-in loopback configuration's ports are used and, with no port named, the generator
//! transmits on `gen0` and the sink receives on its in-memory peer `fwd0`. SIGINT or SIGTERM
//! stops it with the summary, as `sluice-fwd`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sluice_apps::AppError;
use sluice_apps::cli::pktgen::PktgenArgs;
use sluice_apps::cli::{self, say};
use sluice_apps::pktgen;

fn main() -> ExitCode {
    let args = PktgenArgs::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-pktgen: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

fn run(args: &PktgenArgs) -> Result<ExitCode, AppError> {
    let config = cli::load_config(args.config.as_deref())?;
    let opts = args.options()?;
    let interrupt = cli::stop_on_signals("sluice-pktgen")?;
    if !args.json {
        let port = |p: &Option<String>| p.as_deref().unwrap_or("-").to_string();
        say(&format!(
            "sluice-pktgen: {}: tx {}, rx {}, {} B frames{}\n",
            config.name(),
            port(&opts.tx_port),
            port(&opts.rx_port),
            opts.frame_size,
            match (opts.run.duration, opts.run.start.gen_count) {
                (Some(d), _) => format!(", {:.1} s", d.as_secs_f64()),
                (None, Some(n)) => format!(", {n} frames"),
                (None, None) => ", until Ctrl-C".to_string(),
            }
        ));
    }
    let summary = pktgen::run(&config, &opts, interrupt)?;
    if args.json {
        say(&(summary.to_json() + "\n"));
    } else {
        say(&summary.render());
    }
    Ok(if summary.no_leak() {
        ExitCode::SUCCESS
    } else {
        eprintln!("sluice-pktgen: error: buffers not returned to their pools (a bug)");
        ExitCode::from(2)
    })
}
