//! The forwarder app behind `sluice-fwd`: open the configuration's pools and ports, start its
//! lcores (and the built-in generator and sink), print stats, stop in order, summarise.
//!
//! Stopping is ordered so that the summary's counts add up: the generator stops first, the
//! run waits until the sink has seen nothing new for a few milliseconds (bounded), then every
//! lcore is stopped and drained. A run with a lossless transmit policy then has
//! `received == sent` exactly.

pub mod coremap;
pub mod layout;
pub mod summary;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_config::Config;
use sluice_dataplane::stats::{Format, Sampler, StatsSources, StatsThread};
use sluice_pmd::net::NetPort;

use crate::error::AppError;
use crate::ports::{open_pools, open_ports};
use crate::telemetry::{Endpoints, Sources, TelemetryOptions};
pub use coremap::CoreMap;
pub use layout::{Attach, StartOptions};
pub use summary::{FwdSummary, PoolCheck};

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this long; `None`: until `interrupt` (or the generator's count is done).
    pub duration: Option<Duration>,
    /// Print stats (each interval of the config) to stdout.
    pub print_stats: bool,
    /// Stats as JSON lines instead of tables.
    pub json: bool,
    /// How lcores start.
    pub start: StartOptions,
    /// The telemetry socket and the Prometheus endpoint (off by default).
    pub telemetry: TelemetryOptions,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            duration: None,
            print_stats: true,
            json: false,
            start: StartOptions {
                pin: true,
                stall_timeout: Some(Duration::from_micros(100)),
                gen_count: None,
                tx_first: 0,
            },
            telemetry: TelemetryOptions::default(),
        }
    }
}

/// How often the run looks at every port's link while it runs.
const LINK_EVERY: Duration = Duration::from_secs(1);

/// Reports links that go down (or come back) during the run, once per change: a port whose
/// device was removed (hot-unplug) goes down for good while the others keep forwarding.
struct LinkWatch {
    down: Vec<bool>,
    last: Instant,
}

impl LinkWatch {
    fn new(ports: &[sluice_pmd::net::any::AnyPort]) -> Self {
        Self {
            down: vec![false; ports.len()],
            last: Instant::now(),
        }
    }

    fn check(&mut self, ports: &[sluice_pmd::net::any::AnyPort]) {
        if self.last.elapsed() < LINK_EVERY {
            return;
        }
        self.last = Instant::now();
        for (p, was_down) in ports.iter().zip(self.down.iter_mut()) {
            let down = p.link() == sluice_pmd::net::LinkStatus::Down;
            if down != *was_down {
                eprintln!(
                    "sluice-fwd: port {} ({}): link {}",
                    p.info().name,
                    p.info().driver,
                    if down { "down" } else { "up again" }
                );
                *was_down = down;
            }
        }
    }
}

/// How long the sink must see nothing new before the rest stops (when drops are possible).
const SETTLE_QUIET: Duration = Duration::from_millis(20);
/// The most the stop waits for frames in flight to reach the sink (lossless: the longest it
/// waits for the next one).
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// Runs the forwarder described by `config` until `opts.duration`, `interrupt` (set by the
/// binary's SIGINT/SIGTERM handler), or the generator's count is delivered.
pub fn run(
    config: &Config,
    opts: &RunOptions,
    interrupt: Arc<AtomicBool>,
) -> Result<FwdSummary, AppError> {
    run_with(config, opts, interrupt, Attach::default())
}

/// [`run`], with what `attach` brings: the forwarding lcores' queues open to its captures
/// (those already started capture from the first packet on, more can start and stop while
/// the run goes; end them with [`crate::capture::CaptureControl::finish`] after this
/// returns), its CPU map (`--lcores`).
pub fn run_with(
    config: &Config,
    opts: &RunOptions,
    interrupt: Arc<AtomicBool>,
    attach: Attach<'_>,
) -> Result<FwdSummary, AppError> {
    // Bound first: an endpoint that cannot be had stops the run before any packet moves.
    let endpoints = Endpoints::bind(&opts.telemetry.with_config(config.prometheus()))?;
    if let Some(d) = endpoints.describe().filter(|_| opts.print_stats) {
        eprintln!("sluice-fwd: {d}");
    }
    if let Some(c) = attach.capture {
        let c = Arc::clone(c);
        endpoints.telemetry().register(
            "/sluice/capture",
            "pcapng captures: list | start,PORT[/qN][:dir],FILE | stop,ID",
            move |p| {
                Some(
                    c.command(p.unwrap_or("list"))
                        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() })),
                )
            },
        )?;
    }
    let pools = open_pools(config)?;
    let mut ports = open_ports(config, &pools)?;
    let started = layout::start_with(config, &mut ports, &pools, &opts.start, attach)?;
    let frame_size = config.generator().map(|g| g.frame_size);
    let what = Run {
        name: config.name(),
        frame_size,
        stats_interval: config.stats_interval(),
    };
    drive_with(&what, pools, ports, started, opts, interrupt, endpoints)
}

/// What [`drive`] reports about.
pub(crate) struct Run<'a> {
    pub(crate) name: &'a str,
    pub(crate) frame_size: Option<u16>,
    pub(crate) stats_interval: Option<Duration>,
}

/// Runs started lcores until the duration, the interrupt or the generator's count; stops
/// them in order; summarises.
#[cfg(test)]
pub(crate) fn drive(
    what: &Run<'_>,
    pools: Vec<sluice_pmd::PktPool>,
    ports: Vec<sluice_pmd::net::any::AnyPort>,
    started: layout::Started,
    opts: &RunOptions,
    interrupt: Arc<AtomicBool>,
) -> Result<FwdSummary, AppError> {
    let none = Endpoints::none();
    drive_with(what, pools, ports, started, opts, interrupt, none)
}

/// [`drive`], with telemetry served over the run's counters on `endpoints`.
pub(crate) fn drive_with(
    what: &Run<'_>,
    pools: Vec<sluice_pmd::PktPool>,
    ports: Vec<sluice_pmd::net::any::AnyPort>,
    started: layout::Started,
    opts: &RunOptions,
    interrupt: Arc<AtomicBool>,
    endpoints: Endpoints,
) -> Result<FwdSummary, AppError> {
    // Traffic may flow as soon as the lcores start: the run's clock starts with them.
    let t0 = started.at;
    let sources = StatsSources {
        ports: ports
            .iter()
            .map(|p| (p.info().name.clone(), p.counters()))
            .collect(),
        rings: started.runtime.rings().to_vec(),
        lcores: started
            .runtime
            .lcores()
            .iter()
            .map(|l| (l.name().to_string(), l.core(), l.counters().clone()))
            .collect(),
    };
    // The counters were created for this run: totals count from zero, including what moved
    // between the lcores' start and this point.
    let sampler = Sampler::from_zero(sources.clone(), t0);
    let live = Sources {
        stats: sources.clone(),
        pools: pools.clone(),
        latency: started.sink.as_ref().map(|s| s.live_latency().clone()),
        ..Sources::default()
    };
    let telemetry = match endpoints.serve(live) {
        Ok(t) => t,
        Err(e) => {
            started.runtime.shutdown()?;
            return Err(e.into());
        }
    };
    // More commands over this run's state register here, on `telemetry.telemetry`.
    let format = if opts.json {
        Format::Json
    } else {
        Format::Text
    };
    let stats = match (opts.print_stats, what.stats_interval) {
        (true, Some(every)) => Some(
            StatsThread::spawn(sources, every, format, Box::new(std::io::stdout())).map_err(
                |source| AppError::Os {
                    what: "starting the stats thread",
                    source,
                },
            )?,
        ),
        _ => None,
    };

    let deadline = opts.duration.map(|d| t0 + d);
    let generator = started.generator.clone();
    let sink = started.sink.clone();
    let mut interrupted = false;
    let mut links = LinkWatch::new(&ports);
    loop {
        std::thread::sleep(Duration::from_millis(5));
        links.check(&ports);
        if interrupt.load(Ordering::Acquire) {
            interrupted = true;
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // A generator with a count is done: end once the sink has it all or, if some were
        // dropped, once the sink has gone quiet (the ordered stop below waits for that).
        if generator.as_ref().is_some_and(|g| g.is_done()) {
            break;
        }
        if started.runtime.lcores().iter().any(|l| l.is_finished()) {
            break; // an lcore ended on its own: a panic, reported by shutdown
        }
    }
    let elapsed = t0.elapsed();

    // Ordered stop: generator, then wait for the sink to have everything, then the rest.
    if let Some(g) = &generator {
        g.stop();
        // Done once its last refused burst went out (bounded: the queue may stay full).
        let until = Instant::now() + SETTLE_MAX;
        while !g.is_done() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let (Some(s), Some(g)) = (&sink, &generator) {
        // Lossless policy: every frame sent arrives, wait for all while they keep coming
        // (bounded: SETTLE_MAX without one ends the wait). Otherwise frames
        // may have been dropped: also stop once the sink has been quiet for a while.
        // Lossless, a slow peer (a loaded machine) only delays them: wait while they move.
        let lossless = started.lossless;
        let until = Instant::now() + SETTLE_MAX;
        let (mut last, mut quiet_since) = (s.received(), Instant::now());
        while s.received() < g.sent()
            && if lossless {
                quiet_since.elapsed() < SETTLE_MAX
            } else {
                Instant::now() < until && quiet_since.elapsed() < SETTLE_QUIET
            }
        {
            std::thread::sleep(Duration::from_millis(1));
            let now = s.received();
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
    }
    let (mode, burst) = (started.mode, started.burst);
    let lcores_total = sampler.total().lcores;
    drop(telemetry);
    started.runtime.shutdown()?;
    if let Some(st) = stats {
        st.finish();
    }
    let totals = sampler.total();
    // A port whose peer went away during the run (a killed vhost-user backend) says so.
    for p in ports
        .iter()
        .filter(|p| p.link() == sluice_pmd::net::LinkStatus::Down)
    {
        eprintln!(
            "sluice-fwd: warning: port {}: link down at the end of the run",
            p.info().name
        );
    }
    drop(ports);
    let pools = pools
        .iter()
        .map(|p| PoolCheck {
            name: p.name().to_string(),
            available: p.available(),
            capacity: p.capacity(),
        })
        .collect();
    let summary = FwdSummary::new(summary::Parts {
        config: what.name,
        frame_size: what.frame_size,
        mode,
        burst,
        elapsed,
        interrupted,
        generator: generator.as_deref(),
        sink: sink.as_ref().and_then(|s| s.report()),
        totals,
        lcores: lcores_total,
        pools,
    });
    let _ = std::io::stdout().flush();
    Ok(summary)
}
