//! The packet generator and sink behind `sluice-pktgen`: the generator on queue 0 of one port,
//! the sink on queue 0 of another (or the same), with the ports opened from a configuration
//! exactly as the forwarder opens them. No forwarding lcores run.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sluice_config::{Config, PortId};
use sluice_dataplane::{LcoreSpec, Runtime, RuntimeConfig, lcore};
use sluice_pmd::net::NetPort;
use sluice_pmd::net::any::{AnyRxQueue, AnyTxQueue};

use crate::error::AppError;
use crate::fwd::layout::Started;
use crate::fwd::{FwdSummary, Run, RunOptions, drive_with};
use crate::ports::{open_pools, open_ports};
use crate::telemetry::Endpoints;
use crate::traffic::{GenConfig, GenTask, SinkTask};

/// What `sluice-pktgen` does.
#[derive(Debug, Clone)]
pub struct PktgenOptions {
    /// Port to transmit on (queue 0); `None`: receive only.
    pub tx_port: Option<String>,
    /// Port to receive on (queue 0); `None`: transmit only.
    pub rx_port: Option<String>,
    /// Frame size with FCS.
    pub frame_size: u16,
    /// Frames per second; `None`: as fast as possible.
    pub rate_pps: Option<u64>,
    /// Flows (UDP source ports).
    pub flows: u32,
    /// Core of the generator (and of the sink, unless `rx_core` says otherwise).
    pub core: usize,
    /// Core of the sink when it should not share the generator's.
    pub rx_core: Option<usize>,
    /// Back-pressure: at most this many frames sent and not yet received by the sink
    /// (`--max-in-flight`; needs `rx_port`).
    pub max_in_flight: Option<u64>,
    /// Duration, count, stats format, pinning.
    pub run: RunOptions,
}

fn port_id(config: &Config, name: &str, flag: &str) -> Result<PortId, AppError> {
    config.port_id(name).ok_or_else(|| {
        let names: Vec<&str> = config.ports().iter().map(|p| p.name.as_str()).collect();
        AppError::Usage(format!(
            "{flag} {name}: no such port in {} (ports: {})",
            config.name(),
            names.join(", ")
        ))
    })
}

/// Runs the generator and/or sink on the configuration's ports.
pub fn run(
    config: &Config,
    opts: &PktgenOptions,
    interrupt: Arc<AtomicBool>,
) -> Result<FwdSummary, AppError> {
    let tx_id = opts
        .tx_port
        .as_deref()
        .map(|n| port_id(config, n, "--tx-port"))
        .transpose()?;
    let rx_id = opts
        .rx_port
        .as_deref()
        .map(|n| port_id(config, n, "--rx-port"))
        .transpose()?;
    if tx_id.is_none() && rx_id.is_none() {
        return Err(AppError::Usage(
            "nothing to do: give --tx-port, --rx-port or both".into(),
        ));
    }
    if opts.max_in_flight.is_some() && (rx_id.is_none() || tx_id.is_none()) {
        return Err(AppError::Usage(
            "--max-in-flight counts frames from the generator to the sink: give both \
             --tx-port and --rx-port"
                .into(),
        ));
    }
    let rx_core = opts.rx_core.unwrap_or(opts.core);
    if opts.run.start.pin {
        if tx_id.is_some() {
            lcore::check_core("generator", opts.core)?;
        }
        if rx_id.is_some() {
            lcore::check_core("sink", rx_core)?;
        }
    }
    let endpoints = Endpoints::bind(&opts.run.telemetry.with_config(config.prometheus()))?;
    if let Some(d) = endpoints.describe().filter(|_| opts.run.print_stats) {
        eprintln!("sluice-pktgen: {d}");
    }
    let pools = open_pools(config)?;
    let mut ports = open_ports(config, &pools)?;
    let spec = |name: &str, core: usize| {
        if opts.run.start.pin {
            LcoreSpec::pinned(name, core)
        } else {
            LcoreSpec::unpinned(name)
        }
    };

    let at = std::time::Instant::now();
    let mut rt = Runtime::new(RuntimeConfig {
        pools: pools.clone(),
        ..RuntimeConfig::default()
    });
    let burst = rt.burst();
    // A port's queues come out together; those this app does not use are dropped, which
    // closes them (a peer transmitting there finds a full, abandoned ring).
    let taken = |ports: &mut [sluice_pmd::net::any::AnyPort], id: PortId| {
        ports[id.index()].take_queues().ok_or_else(|| {
            AppError::Usage(format!(
                "port {}: queues already taken",
                config.port(id).name
            ))
        })
    };
    let (mut rx_q, mut tx_q): (Option<AnyRxQueue>, Option<AnyTxQueue>) = (None, None);
    if let Some(id) = rx_id {
        let q = taken(&mut ports, id)?;
        rx_q = q.rx.into_iter().next();
        if tx_id == Some(id) {
            tx_q = q.tx.into_iter().next();
        }
    }
    if let Some(id) = tx_id
        && tx_q.is_none()
    {
        tx_q = taken(&mut ports, id)?.tx.into_iter().next();
    }
    let mut sink = None;
    let mut sink_ctl = None;
    if let Some(rx) = rx_q {
        let (task, ctl) = SinkTask::<AnyRxQueue, 32>::new(rx);
        sink = Some(task);
        sink_ctl = Some(ctl);
    }
    let shared = tx_id.is_some() && rx_core == opts.core;
    if !shared && let Some(task) = sink.take() {
        rt.spawn(spec("sink", rx_core), task)?;
    }
    let mut gen_ctl = None;
    if let (Some(id), Some(tx)) = (tx_id, tx_q) {
        let port = config.port(id);
        let pool = pools[port.mempool.index()].clone();
        let info = ports[id.index()].info().clone();
        let dst = rx_id.map_or(info.mac, |r| ports[r.index()].info().mac);
        let cfg = GenConfig {
            frame_size: usize::from(opts.frame_size),
            rate_pps: opts.rate_pps,
            flows: opts.flows,
            count: opts.run.start.gen_count,
            dst_mac: dst.0,
            src_mac: info.mac.0,
        };
        let (mut task, ctl) = GenTask::<AnyTxQueue, 32>::new(tx, pool, cfg, info.max_frame)?;
        if let (Some(max), Some(sink)) = (opts.max_in_flight, &sink_ctl) {
            task = task.with_window(sink.clone(), max);
        }
        gen_ctl = Some(ctl);
        match sink.take() {
            Some(s) => rt.spawn(spec("gen+sink", opts.core), (task, s))?,
            None => rt.spawn(spec("generator", opts.core), task)?,
        }
    }
    let started = Started {
        runtime: rt,
        generator: gen_ctl,
        sink: sink_ctl,
        mode: "generator",
        burst,
        at,
        // No forwarding lcores: the generator never drops what its queue refuses.
        lossless: opts.run.start.stall_timeout.is_none(),
    };
    let what = Run {
        name: config.name(),
        frame_size: tx_id.map(|_| opts.frame_size),
        stats_interval: config.stats_interval(),
    };
    drive_with(
        &what, pools, ports, started, &opts.run, interrupt, endpoints,
    )
}
