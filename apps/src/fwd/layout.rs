//! From a validated configuration to running lcores: queues taken from the ports and handed
//! to run-to-completion or pipeline lcores, the built-in sink and generator on their cores.

use std::sync::Arc;

use sluice_config::{Config, ForwardMode, LcoreRole, PortId, QueueRef};
use sluice_dataplane::{
    LcoreSpec, PipelineLayout, Rewrite, RtcLayout, Runtime, RuntimeConfig, RxPath, lcore,
};
use sluice_pmd::PktPool;
use sluice_pmd::net::any::{AnyPort, AnyRxQueue, AnyTxQueue};
use sluice_pmd::net::{MacAddr, NetPort};

use crate::error::AppError;
use crate::traffic::{GenConfig, GenControl, GenTask, SinkControl, SinkTask};

/// How the lcores are started.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Pin lcores to the configuration's cores (off: unpinned, for tests on small machines).
    pub pin: bool,
    /// The transmit stall timeout (see `sluice_dataplane::hold`); `None`: lossless.
    pub stall_timeout: Option<std::time::Duration>,
    /// Frames the generator sends before it stops; `None`: until stopped.
    pub gen_count: Option<u64>,
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
    /// The burst actually used.
    pub burst: usize,
    /// When the first lcore was started (traffic may flow from then on).
    pub at: std::time::Instant,
}

/// Queue handles by port and queue index, taken one by one.
struct QueueTable {
    rx: Vec<Vec<Option<AnyRxQueue>>>,
    tx: Vec<Vec<Option<AnyTxQueue>>>,
}

impl QueueTable {
    fn take(config: &Config, ports: &mut [AnyPort]) -> Result<Self, AppError> {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for (i, p) in ports.iter_mut().enumerate() {
            let q = p.take_queues().ok_or_else(|| {
                AppError::Usage(format!(
                    "port {}: queues already taken",
                    config.ports()[i].name
                ))
            })?;
            rx.push(q.rx.into_iter().map(Some).collect());
            tx.push(q.tx.into_iter().map(Some).collect());
        }
        Ok(Self { rx, tx })
    }

    fn rx(&mut self, config: &Config, q: QueueRef) -> Result<AnyRxQueue, AppError> {
        self.rx[q.port.index()]
            .get_mut(usize::from(q.queue))
            .and_then(Option::take)
            .ok_or_else(|| AppError::Usage(format!("rx queue {} is missing", config.queue_name(q))))
    }

    fn tx(&mut self, config: &Config, q: QueueRef) -> Result<AnyTxQueue, AppError> {
        self.tx[q.port.index()]
            .get_mut(usize::from(q.queue))
            .and_then(Option::take)
            .ok_or_else(|| AppError::Usage(format!("tx queue {} is missing", config.queue_name(q))))
    }
}

fn mac_of(config: &Config, ports: &[AnyPort], id: PortId) -> MacAddr {
    config
        .port(id)
        .mac
        .map_or(ports[id.index()].info().mac, |m| MacAddr(m.0))
}

fn rewrite(config: &Config, ports: &[AnyPort], from: PortId) -> Option<(PortId, Rewrite)> {
    let rule = config.forward_from(from)?;
    let rw = match rule.mode {
        ForwardMode::Io => Rewrite::Io,
        ForwardMode::MacSwap => Rewrite::MacSwap,
        ForwardMode::L2 { dst, src } => Rewrite::L2 {
            dst: MacAddr(dst.0),
            src: src.map_or_else(|| mac_of(config, ports, rule.to), |m| MacAddr(m.0)),
        },
    };
    Some((rule.to, rw))
}

fn role_name(role: LcoreRole) -> &'static str {
    match role {
        LcoreRole::RunToCompletion => "rtc",
        LcoreRole::Rx => "rx",
        LcoreRole::Worker => "worker",
        LcoreRole::Tx => "tx",
    }
}

fn spec(name: String, core: u32, pin: bool) -> LcoreSpec {
    if pin {
        LcoreSpec::pinned(name, core as usize)
    } else {
        LcoreSpec::unpinned(name)
    }
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
    if opts.pin {
        let named = config
            .lcores()
            .iter()
            .map(|l| (format!("lcore {} ({})", l.core, role_name(l.role)), l.core))
            .chain(
                config
                    .generator()
                    .map(|g| ("generator".to_string(), g.core)),
            )
            .chain(config.sink().map(|s| ("sink".to_string(), s.core)));
        for (name, core) in named {
            lcore::check_core(&name, core as usize)?;
        }
    }
    let mut queues = QueueTable::take(config, ports)?;
    let at = std::time::Instant::now();
    let mut rt = Runtime::new(RuntimeConfig {
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

    // Sink first, forwarder next, generator last: each consumer runs before its producer.
    let mut sink_task = None;
    let mut sink_ctl = None;
    if let Some(s) = config.sink() {
        let rx = queues.rx(
            config,
            QueueRef {
                port: s.port,
                queue: 0,
            },
        )?;
        let (task, ctl) = SinkTask::<AnyRxQueue, 32>::new(rx);
        sink_ctl = Some(ctl);
        sink_task = Some(task);
    }
    let shared_core =
        matches!((config.generator(), config.sink()), (Some(g), Some(s)) if g.core == s.core);
    if !shared_core && let (Some(task), Some(s)) = (sink_task.take(), config.sink()) {
        rt.spawn(spec("sink".into(), s.core, opts.pin), task)?;
    }

    let pipeline = config
        .lcores()
        .iter()
        .any(|l| l.role != LcoreRole::RunToCompletion);
    if pipeline {
        start_pipeline(config, ports, &mut queues, &mut rt, opts.pin)?;
    } else {
        for l in config.lcores() {
            let name = format!("lcore {} (rtc)", l.core);
            let tx_refs = &l.tx;
            let mut rx = Vec::new();
            for &q in &l.rx {
                let (to, rw) = rewrite(config, ports, q.port).ok_or_else(|| {
                    AppError::Usage(format!(
                        "{name}: no forwarding rule for {}",
                        config.queue_name(q)
                    ))
                })?;
                let tx = tx_refs
                    .iter()
                    .position(|t| t.port == to && t.queue == q.queue)
                    .or_else(|| tx_refs.iter().position(|t| t.port == to))
                    .ok_or_else(|| {
                        AppError::Usage(format!("{name}: no tx queue on {}", config.port(to).name))
                    })?;
                rx.push(RxPath {
                    queue: queues.rx(config, q)?,
                    rewrite: rw,
                    tx,
                });
            }
            let tx = tx_refs
                .iter()
                .map(|&t| queues.tx(config, t))
                .collect::<Result<Vec<_>, _>>()?;
            rt.spawn_rtc(RtcLayout {
                lcore: spec(name, l.core, opts.pin),
                rx,
                tx,
            })?;
        }
    }

    let mut gen_ctl = None;
    if let Some(g) = config.generator() {
        let tx = queues.tx(
            config,
            QueueRef {
                port: g.port,
                queue: 0,
            },
        )?;
        let port = config.port(g.port);
        let pool = pools
            .get(port.mempool.index())
            .cloned()
            .ok_or_else(|| AppError::Usage(format!("port {}: no mempool", port.name)))?;
        // Frames are addressed to where they are meant to end up: a ring's other end, or on a
        // device port the sink's port (a wire with a MAC-learning bridge drops frames addressed
        // back to their sender), or the generator's own port when nothing sinks them.
        let peer = match port.driver {
            sluice_config::PortDriver::Ring { peer } => peer,
            _ => config.sink().map_or(g.port, |s| s.port),
        };
        let cfg = GenConfig {
            frame_size: usize::from(g.frame_size),
            rate_pps: g.rate_pps.map(|r| r.get()),
            flows: g.flows,
            count: opts.gen_count,
            dst_mac: mac_of(config, ports, peer).0,
            src_mac: mac_of(config, ports, g.port).0,
        };
        let max_frame = ports[g.port.index()].info().max_frame;
        let (task, ctl) = GenTask::<AnyTxQueue, 32>::new(tx, pool, cfg, max_frame)?;
        gen_ctl = Some(ctl);
        match sink_task.take() {
            Some(sink) => rt.spawn(
                spec("generator+sink".into(), g.core, opts.pin),
                (task, sink),
            )?,
            None => rt.spawn(spec("generator".into(), g.core, opts.pin), task)?,
        }
    }
    Ok(Started {
        runtime: rt,
        generator: gen_ctl,
        sink: sink_ctl,
        mode: if pipeline { "pipeline" } else { "rtc" },
        burst,
        at,
    })
}

fn start_pipeline(
    config: &Config,
    ports: &[AnyPort],
    queues: &mut QueueTable,
    rt: &mut Runtime,
    pin: bool,
) -> Result<(), AppError> {
    let p = config
        .pipeline()
        .ok_or_else(|| AppError::Usage("pipeline lcores without [pipeline]".into()))?;
    let mut layout = PipelineLayout {
        rx: Vec::new(),
        workers: Vec::new(),
        tx: Vec::new(),
        rules: Vec::new(),
        ring_size: p.ring_size as usize,
        burst: usize::from(p.burst),
    };
    for l in config.lcores() {
        let name = format!("lcore {} ({})", l.core, role_name(l.role));
        match l.role {
            LcoreRole::Rx => {
                let qs =
                    l.rx.iter()
                        .map(|&q| Ok((queues.rx(config, q)?, q.port.index() as u16)))
                        .collect::<Result<Vec<_>, AppError>>()?;
                layout.rx.push((spec(name, l.core, pin), qs));
            }
            LcoreRole::Worker => layout.workers.push(spec(name, l.core, pin)),
            LcoreRole::Tx => {
                let qs =
                    l.tx.iter()
                        .map(|&q| Ok((queues.tx(config, q)?, q.port.index() as u16)))
                        .collect::<Result<Vec<_>, AppError>>()?;
                layout.tx.push((spec(name, l.core, pin), qs));
            }
            LcoreRole::RunToCompletion => {
                return Err(AppError::Usage(format!(
                    "{name}: rtc lcores cannot be mixed with a pipeline"
                )));
            }
        }
    }
    for r in config.forward() {
        if let Some((to, rw)) = rewrite(config, ports, r.from) {
            layout
                .rules
                .push((r.from.index() as u16, to.index() as u16, rw));
        }
    }
    rt.spawn_pipeline(layout)?;
    Ok(())
}
