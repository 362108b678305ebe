//! The built-in sink and generator: queue 0 of their ports, the generator's addressing, and
//! the configured burst, which their batches (inline arrays) need as a constant.

use std::sync::Arc;

use sluice_config::{Generator, PortDriver, PortId, QueueRef};
use sluice_dataplane::with_burst;
use sluice_pmd::PktPool;
use sluice_pmd::net::NetPort;
use sluice_pmd::net::any::{AnyRxQueue, AnyTxQueue};

use super::Launch;
use super::cores::spec;
use super::rules::mac_of;
use crate::error::AppError;
use crate::traffic::{GenConfig, GenControl, GenTask, SinkControl, SinkTask};

/// What the generator needs besides its burst.
struct GenParts {
    tx: AnyTxQueue,
    pool: PktPool,
    cfg: GenConfig,
    max_frame: usize,
    core: u32,
    /// The sink's queue when the sink shares the generator's lcore.
    sink: Option<AnyRxQueue>,
}

/// The controls of what [`Launch::spawn_generator`] started.
type GenControls = (Option<Arc<GenControl>>, Option<Arc<SinkControl>>);

fn queue0(port: PortId) -> QueueRef {
    QueueRef { port, queue: 0 }
}

impl Launch<'_> {
    /// Starts the sink on an lcore of its own; `None` without a `[sink]`.
    pub(super) fn spawn_sink(&mut self) -> Result<Option<Arc<SinkControl>>, AppError> {
        let Some(s) = self.config.sink() else {
            return Ok(None);
        };
        let rx = self.queues.rx(self.config, queue0(s.port))?;
        let spec = spec("sink".into(), self.cpu(s.core), self.opts.pin);
        with_burst!(self.rt.burst(), N => {
            let (task, ctl) = SinkTask::<AnyRxQueue, N>::new(rx);
            self.rt.spawn(spec, task)?;
            Ok(Some(ctl))
        })
    }

    /// Starts the generator, and the sink on the same lcore when `with_sink`; `(None, None)`
    /// without a `[generator]`.
    pub(super) fn spawn_generator(&mut self, with_sink: bool) -> Result<GenControls, AppError> {
        let Some(g) = self.config.generator() else {
            return Ok((None, None));
        };
        let port = self.config.port(g.port);
        let pool = self
            .pools
            .get(port.mempool.index())
            .cloned()
            .ok_or_else(|| AppError::Usage(format!("port {}: no mempool", port.name)))?;
        let sink = match (with_sink, self.config.sink()) {
            (true, Some(s)) => Some(self.queues.rx(self.config, queue0(s.port))?),
            _ => None,
        };
        let parts = GenParts {
            tx: self.queues.tx(self.config, queue0(g.port))?,
            pool,
            cfg: self.gen_config(g),
            max_frame: self.ports[g.port.index()].info().max_frame,
            core: self.cpu(g.core),
            sink,
        };
        with_burst!(self.rt.burst(), N => self.spawn_generator_with::<N>(parts))
    }

    fn spawn_generator_with<const N: usize>(
        &mut self,
        parts: GenParts,
    ) -> Result<GenControls, AppError> {
        let pin = self.opts.pin;
        let (task, gen_ctl) =
            GenTask::<AnyTxQueue, N>::new(parts.tx, parts.pool, parts.cfg, parts.max_frame)?;
        match parts.sink {
            Some(rx) => {
                let (sink, sink_ctl) = SinkTask::<AnyRxQueue, N>::new(rx);
                let spec = spec("generator+sink".into(), parts.core, pin);
                self.rt.spawn(spec, (task, sink))?;
                Ok((Some(gen_ctl), Some(sink_ctl)))
            }
            None => {
                self.rt
                    .spawn(spec("generator".into(), parts.core, pin), task)?;
                Ok((Some(gen_ctl), None))
            }
        }
    }

    /// What the generator sends. Frames are addressed to where they are meant to end up: a
    /// ring's other end, or on a device port the sink's port (a wire with a MAC-learning
    /// bridge drops frames addressed back to their sender), or the generator's own port when
    /// nothing sinks them.
    fn gen_config(&self, g: &Generator) -> GenConfig {
        let peer = match self.config.port(g.port).driver {
            PortDriver::Ring { peer } => peer,
            _ => self.config.sink().map_or(g.port, |s| s.port),
        };
        GenConfig {
            frame_size: usize::from(g.frame_size),
            rate_pps: g.rate_pps.map(|r| r.get()),
            flows: g.flows,
            count: self.opts.gen_count,
            dst_mac: mac_of(self.config, self.ports, peer).0,
            src_mac: mac_of(self.config, self.ports, g.port).0,
        }
    }
}
