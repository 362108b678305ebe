//! `sluice-pktgen`'s command line.

use crate::telemetry::TelemetryArgs;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::AppError;
use crate::fwd::RunOptions;
use crate::pktgen::PktgenOptions;
use crate::traffic::frame;

/// The highest `--rate`: 10^9 frames per second, above the 595 Mpps of 64-byte frames at
/// 400 Gb/s.
pub const MAX_RATE_PPS: u64 = 1_000_000_000;

/// Examples at the end of `sluice-pktgen --help`.
const PKTGEN_EXAMPLES: &str = "\
Examples:
  sluice-pktgen --count 1000000
      one million 64-byte frames over the built-in loopback configuration's in-memory ports,
      checked byte by byte and timed at the sink
  sluice-pktgen --config config/examples/afxdp-veth.toml --rate 100000 --duration 10";

/// Sluice packet generator and sink: sends UDP frames with a sequence number and a
/// timestamp on one port and checks and times what arrives on another (loss, order,
/// corruption, latency percentiles).
#[derive(Debug, Parser)]
#[command(name = "sluice-pktgen", version, before_help = super::SUITE, after_help = PKTGEN_EXAMPLES)]
pub struct PktgenArgs {
    /// Configuration file whose ports to use; default: the built-in loopback configuration.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Port to transmit on (queue 0).
    #[arg(long)]
    pub tx_port: Option<String>,
    /// Port to receive and check on (queue 0).
    #[arg(long)]
    pub rx_port: Option<String>,
    /// Frame size in bytes with FCS: 64..=1518, or up to 9000 where port and mempool allow.
    #[arg(long, default_value_t = 64)]
    pub frame_size: u16,
    /// Frames per second, up to 10^9 (0: as fast as possible).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=MAX_RATE_PPS))]
    pub rate: u64,
    /// Distinct flows (UDP source ports), 1..=65536.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub flows: u32,
    /// Stop after sending this many frames (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stop after this many seconds, up to 365 days (default: until SIGINT/SIGTERM or
    /// --count).
    #[arg(long, short, value_name = "SECONDS", value_parser = super::parse_seconds)]
    pub duration: Option<Duration>,
    /// Core of the generator (and of the sink unless --rx-core), 0..=1023.
    #[arg(long, default_value_t = 0, value_parser = super::parse_core)]
    pub core: usize,
    /// Core of the sink, when it should not share the generator's, 0..=1023.
    #[arg(long, value_parser = super::parse_core)]
    pub rx_core: Option<usize>,
    /// Stats and summary as JSON, one object per line.
    #[arg(long)]
    pub json: bool,
    /// Back-pressure: at most N frames sent and not yet received by the sink (needs
    /// --tx-port and --rx-port). Below the rx ring of the sink's port, a forwarder that drops
    /// only when that ring is full then delivers every frame whatever the load; the end of
    /// the run waits for them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: Option<u64>,
    /// Telemetry socket and Prometheus endpoint.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl PktgenArgs {
    /// What to run, as the flags say; the ports are checked against the configuration when
    /// it runs.
    ///
    /// # Errors
    /// A frame size no port can carry.
    pub fn options(&self) -> Result<PktgenOptions, AppError> {
        let size = usize::from(self.frame_size);
        if !(frame::MIN_FRAME..=frame::MAX_FRAME).contains(&size) && size != frame::JUMBO_FRAME {
            return Err(AppError::Usage(format!(
                "--frame-size {size}: use 64..=1518, or 9000 on a port that carries jumbo frames"
            )));
        }
        // With neither a configuration nor a port named: the built-in loopback's generator
        // port and its in-memory peer.
        let (tx_port, rx_port) = match (&self.tx_port, &self.rx_port, &self.config) {
            (None, None, None) => (Some("gen0".to_string()), Some("fwd0".to_string())),
            (t, r, _) => (t.clone(), r.clone()),
        };
        let mut run = RunOptions {
            duration: self.duration,
            json: self.json,
            ..RunOptions::default()
        };
        run.start.gen_count = self.count;
        run.telemetry = self.telemetry.options(None);
        if self.max_in_flight.is_some() {
            // Lossless: the stop waits for every frame sent to arrive (bounded).
            run.start.stall_timeout = None;
        }
        Ok(PktgenOptions {
            tx_port,
            rx_port,
            frame_size: self.frame_size,
            rate_pps: (self.rate > 0).then_some(self.rate),
            flows: self.flows,
            core: self.core,
            rx_core: self.rx_core,
            max_in_flight: self.max_in_flight,
            run,
        })
    }
}
