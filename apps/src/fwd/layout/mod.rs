//! From a validated configuration to running lcores: queues taken from the ports and handed
//! to run-to-completion or pipeline lcores, the built-in sink and generator on their cores.
//!
//! [`start`] runs the steps in order, each in a private module of its own: the core checks
//! (`cores`), the queue table (`queues`), then the sink, the forwarding lcores (`rtc` or
//! `pipeline`, with the rewrites of `rules`) and the generator (`builtin`).

mod builtin;
mod cores;
mod pipeline;
mod queues;
mod rtc;
mod rules;
pub mod seed;

use std::sync::Arc;
use std::time::Instant;

use sluice_config::{Config, LcoreRole, TxPolicy};
use sluice_dataplane::{Runtime, RuntimeConfig};
use sluice_pmd::PktPool;
use sluice_pmd::net::any::{AnyPort, AnyRxQueue, AnyTxQueue};

use super::CoreMap;
use crate::capture::{CaptureControl, Direction, Tap, TapRx, TapTx};
use crate::error::AppError;
use crate::traffic::{GenControl, SinkControl};
use queues::QueueTable;

/// How the lcores are started.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Pin lcores to the configuration's cores (off: unpinned, for tests on small machines).
    pub pin: bool,
    /// The transmit stall timeout (see `sluice_dataplane::hold`); `None`: lossless.
    pub stall_timeout: Option<std::time::Duration>,
    /// Frames the generator sends before it stops; `None`: until stopped.
    pub gen_count: Option<u64>,
    /// Bursts of 64-byte frames handed to every rtc lcore's tx queues before the lcores
    /// start (testpmd's `start tx_first N`); 0: none. See [`seed`].
    pub tx_first: u32,
}

/// The started lcores and the controls of the generator and sink.
#[derive(Debug)]
pub struct Started {
    /// The runtime (drop or shut down to stop).
    pub runtime: Runtime,
    /// The generator's control, if the config has one.
    pub generator: Option<Arc<GenControl>>,
    /// The sink's control, if the config has one.
    pub sink: Option<Arc<SinkControl>>,
    /// `"rtc"` or `"pipeline"`.
    pub mode: &'static str,
    /// The burst actually used: the configured `burst` rounded down to a power of two, for
    /// the rtc lcores, the pipeline's rx lcores, the generator and the sink.
    pub burst: usize,
    /// When the first lcore was started (traffic may flow from then on).
    pub at: Instant,
    /// Whether no lcore drops what its outlets refuse (no stall timeout, or every lcore's
    /// `tx_policy = "lossless"`): then every frame sent reaches the sink.
    pub lossless: bool,
}

/// What the steps of [`start`] share: the configuration, the opened ports and pools, the
/// queues not yet handed out, and the runtime the lcores start on.
struct Launch<'a> {
    config: &'a Config,
    ports: &'a [AnyPort],
    pools: &'a [PktPool],
    opts: &'a StartOptions,
    queues: QueueTable,
    rt: Runtime,
    capture: Option<&'a CaptureControl>,
    cores: Option<&'a CoreMap>,
}

/// Starts every lcore of `config` on `ports` (as [`crate::ports::open_ports`] returned them).
/// Cores are checked before any thread starts; on an error, lcores already started are
/// stopped and joined before this returns.
pub fn start(
    config: &Config,
    ports: &mut [AnyPort],
    pools: &[PktPool],
    opts: &StartOptions,
) -> Result<Started, AppError> {
    start_with(config, ports, pools, opts, Attach::default())
}

/// [`start`], with what `attach` brings: the forwarding lcores' queues open to its captures
/// (those already started capture from the first packet on), its CPU map.
pub fn start_with(
    config: &Config,
    ports: &mut [AnyPort],
    pools: &[PktPool],
    opts: &StartOptions,
    attach: Attach<'_>,
) -> Result<Started, AppError> {
    if opts.pin {
        cores::check(config, attach.cores)?;
    }
    let pipeline = config
        .lcores()
        .iter()
        .any(|l| l.role != LcoreRole::RunToCompletion);
    if pipeline && opts.tx_first > 0 {
        return Err(AppError::Usage(
            "--tx-first seeds the tx queues of rtc lcores; this configuration is a pipeline".into(),
        ));
    }
    let queues = QueueTable::take(config, ports)?;
    let at = Instant::now();
    let mut launch = Launch {
        config,
        ports,
        pools,
        opts,
        queues,
        rt: runtime(config, pools, opts),
        capture: attach.capture.map(|c| &**c),
        cores: attach.cores,
    };
    // Sink first, forwarder next, generator last: each consumer runs before its producer. A
    // sink on the generator's core shares the generator's lcore, so it starts with it.
    let shared =
        matches!((config.generator(), config.sink()), (Some(g), Some(s)) if g.core == s.core);
    let sink = if shared { None } else { launch.spawn_sink()? };
    if pipeline {
        launch.spawn_pipeline()?;
    } else {
        launch.spawn_rtc()?;
    }
    let (generator, shared_sink) = launch.spawn_generator(shared)?;
    Ok(Started {
        burst: launch.rt.burst(),
        runtime: launch.rt,
        generator,
        sink: sink.or(shared_sink),
        mode: if pipeline { "pipeline" } else { "rtc" },
        at,
        lossless: opts.stall_timeout.is_none()
            || config
                .lcores()
                .iter()
                .all(|l| l.tx_policy == TxPolicy::Lossless),
    })
}

/// What a run can be given besides its configuration and options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attach<'a> {
    /// Captures to start with and to switch while the run goes (also through the
    /// telemetry socket's `/sluice/capture`).
    pub capture: Option<&'a Arc<CaptureControl>>,
    /// The CPU each configuration core runs on (`--lcores`); `None`: its own number.
    pub cores: Option<&'a CoreMap>,
}

impl Launch<'_> {
    /// The CPU configuration core `core` runs on.
    fn cpu(&self, core: u32) -> u32 {
        // CoreMap's CPUs are at most MAX_CORE (1023).
        self.cores.map_or(core, |m| m.cpu(core) as u32)
    }

    /// The tap point of queue `q` in direction `dir`.
    fn tap(&self, q: sluice_config::QueueRef, dir: Direction) -> Tap {
        match self.capture {
            Some(c) => c.attach(&self.config.port(q.port).name, q.queue, dir),
            None => CaptureControl::off(),
        }
    }

    /// Rx queue `q`, open to capture.
    fn rx_tapped(&mut self, q: sluice_config::QueueRef) -> Result<TapRx<AnyRxQueue>, AppError> {
        let queue = self.queues.rx(self.config, q)?;
        Ok(TapRx::new(queue, self.tap(q, Direction::Rx)))
    }

    /// Tx queue `q`, open to capture.
    fn tx_tapped(&mut self, q: sluice_config::QueueRef) -> Result<TapTx<AnyTxQueue>, AppError> {
        let queue = self.queues.tx(self.config, q)?;
        Ok(TapTx::new(queue, self.tap(q, Direction::Tx)))
    }
}

/// A runtime with the configuration's burst, noting when that burst has to be rounded.
fn runtime(config: &Config, pools: &[PktPool], opts: &StartOptions) -> Runtime {
    let rt = Runtime::new(RuntimeConfig {
        burst: usize::from(config.burst()),
        stall_timeout: opts.stall_timeout,
        pools: pools.to_vec(),
        ..RuntimeConfig::default()
    });
    let burst = rt.burst();
    if burst != usize::from(config.burst()) {
        // Bursts are inline arrays sized at compile time (powers of two).
        eprintln!(
            "sluice: note: burst {} runs as {burst} (the largest power of two not above it)",
            config.burst()
        );
    }
    rt
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vhost_user_tests;
#[cfg(test)]
mod virtio_user_tests;
