//! `sluice-fwd`'s command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::fwd::RunOptions;
use crate::telemetry::TelemetryArgs;

/// Sluice forwarder: forwards between the ports of a configuration on pinned, busy-polling
/// lcores.
#[derive(Debug, Parser)]
#[command(name = "sluice-fwd", version)]
pub struct FwdArgs {
    /// Configuration file (TOML); default: the built-in loopback configuration.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Stop after this many seconds, up to 365 days (default: until SIGINT/SIGTERM).
    #[arg(long, short, value_name = "SECONDS", value_parser = super::parse_seconds)]
    pub duration: Option<Duration>,
    /// Stats and summary as JSON, one object per line.
    #[arg(long)]
    pub json: bool,
    /// The built-in generator stops after this many frames, at least 1 (the run ends when
    /// they arrive).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Before forwarding starts, send N bursts of 32 64-byte frames on every tx queue of the
    /// rtc lcores (testpmd's `start tx_first N`): traffic for a loop with no generator.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub tx_first: u32,
    /// Telemetry socket and Prometheus endpoint.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl FwdArgs {
    /// How the run goes, as the flags say.
    pub fn run_options(&self) -> RunOptions {
        let mut opts = RunOptions {
            duration: self.duration,
            json: self.json,
            ..RunOptions::default()
        };
        opts.start.gen_count = self.count;
        opts.start.tx_first = self.tx_first;
        opts.telemetry = self.telemetry.options(None);
        opts
    }
}
