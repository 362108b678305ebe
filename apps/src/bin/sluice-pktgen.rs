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
//! transmits on `gen0` and the sink receives on its in-memory peer `fwd0`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sluice_apps::AppError;
use sluice_apps::cli::{self, say};
use sluice_apps::fwd::RunOptions;
use sluice_apps::pktgen::{self, PktgenOptions};
use sluice_apps::traffic::frame;

/// Sluice packet generator and sink.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file whose ports to use; default: the built-in loopback configuration.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Port to transmit on (queue 0).
    #[arg(long)]
    tx_port: Option<String>,
    /// Port to receive and check on (queue 0).
    #[arg(long)]
    rx_port: Option<String>,
    /// Frame size in bytes with FCS: 64..=1518, or up to 9000 where port and mempool allow.
    #[arg(long, default_value_t = 64)]
    frame_size: u16,
    /// Frames per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Distinct flows (UDP source ports), 1..=65536.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    flows: u32,
    /// Stop after sending this many frames.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM or --count).
    #[arg(long, short)]
    duration: Option<f64>,
    /// Core of the generator (and of the sink unless --rx-core).
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Core of the sink, when it should not share the generator's.
    #[arg(long)]
    rx_core: Option<usize>,
    /// Stats and summary as JSON, one object per line.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice-pktgen: error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, AppError> {
    let config = cli::load_config(args.config.as_deref())?;
    let size = usize::from(args.frame_size);
    if !(frame::MIN_FRAME..=frame::MAX_FRAME).contains(&size) && size != frame::JUMBO_FRAME {
        return Err(AppError::Usage(format!(
            "--frame-size {size}: use 64..=1518, or 9000 on a port that carries jumbo frames"
        )));
    }
    let duration = cli::duration(args.duration)?;
    let (tx_port, rx_port) = match (&args.tx_port, &args.rx_port, &args.config) {
        (None, None, None) => (Some("gen0".to_string()), Some("fwd0".to_string())),
        (t, r, _) => (t.clone(), r.clone()),
    };
    let interrupt = cli::stop_on_signals()?;
    let mut run = RunOptions {
        duration,
        json: args.json,
        ..RunOptions::default()
    };
    run.start.gen_count = args.count;
    let opts = PktgenOptions {
        tx_port,
        rx_port,
        frame_size: args.frame_size,
        rate_pps: (args.rate > 0).then_some(args.rate),
        flows: args.flows,
        core: args.core,
        rx_core: args.rx_core,
        run,
    };
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
