//! `sluice-fwd`'s command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::capture::{CaptureRequest, CaptureSettings};
use crate::fwd::{CoreMap, RunOptions};
use crate::telemetry::TelemetryArgs;

/// Examples at the end of `sluice-fwd --help`.
const FWD_EXAMPLES: &str = "\
Examples:
  sluice-fwd --duration 5
      the built-in loopback configuration: generator -> forwarder -> sink on in-memory ports,
      no device, no hugepages, no privileges
  sluice-fwd --count 10000 --capture fwd0/q0:rx=/tmp/fwd0.pcapng && tcpdump -r /tmp/fwd0.pcapng
      the same, 10000 frames, with what fwd0 received in a pcapng file
  sluice-fwd --config config/examples/pipeline.toml --lcores '(1-3)@1' --count 100000
      a three-lcore pipeline on one CPU (for a small machine; slower than one core each)";

/// Sluice forwarder: forwards between the ports of a configuration on pinned, busy-polling
/// lcores.
#[derive(Debug, Parser)]
#[command(name = "sluice-fwd", version, before_help = super::SUITE, after_help = FWD_EXAMPLES)]
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
    /// Capture a port's frames into a pcapng file (Wireshark, tshark, tcpdump -r): one queue
    /// (`/q0`) or all, received (`:rx`), sent (`:tx`) or both (the default). Repeatable.
    /// The port's queue must be polled by a forwarding lcore.
    #[arg(long, value_name = "PORT[/qN][:rx|tx|both]=FILE", value_parser = parse_capture)]
    pub capture: Vec<CaptureRequest>,
    /// Bytes kept of each captured frame.
    #[arg(long, value_name = "BYTES", default_value_t = 65535,
          value_parser = clap::value_parser!(u32).range(1..=262_144))]
    pub capture_snaplen: u32,
    /// Each capture stops after this many frames.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub capture_count: Option<u64>,
    /// MiB of side ring per captured queue and direction: what the writer has not yet
    /// written when the ring is full is not captured (and counted as such).
    #[arg(long, value_name = "MIB", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub capture_ring: u32,
    /// The CPU the capture writer threads run on (default: left to the scheduler). A core
    /// of their own keeps them off the lcores' cores.
    #[arg(long, value_name = "CPU", value_parser = super::parse_core)]
    pub capture_core: Option<usize>,
    /// Run the configuration's cores on other CPUs, in DPDK's notation: `(1-3)@1` runs the
    /// lcores of cores 1, 2 and 3 all on CPU 1 (they then share it by time slices, with a
    /// warning), `2@0` core 2 on CPU 0. Cores not named keep their CPU.
    #[arg(long, value_name = "MAP", value_parser = CoreMap::parse)]
    pub lcores: Option<CoreMap>,
    /// Telemetry socket and Prometheus endpoint.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

fn parse_capture(s: &str) -> Result<CaptureRequest, String> {
    CaptureRequest::parse(s).map_err(|e| e.to_string())
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

    /// How captures are taken, as the flags say.
    pub fn capture_settings(&self) -> CaptureSettings {
        CaptureSettings {
            snaplen: self.capture_snaplen,
            count: self.capture_count,
            ring_bytes: (self.capture_ring as usize) << 20,
            writer_core: self.capture_core,
        }
    }
}
