//! The runtime: starts lcores from a layout, shares one stop signal, stops them in bounded
//! time.
//!
//! ```
//! use std::time::Duration;
//! use sluice_dataplane::{LcoreSpec, Rewrite, RtcLayout, RxPath, Runtime, RuntimeConfig};
//! use sluice_pmd::net::NetPort;
//! use sluice_pmd::soft::ring_port::{ring_pair, RingPairConfig};
//!
//! let (_a, mut b) = ring_pair("a", "b", &RingPairConfig::default()).unwrap();
//! let q = b.take_queues().unwrap();
//! let mut rt = Runtime::new(RuntimeConfig::default());
//! rt.spawn_rtc(RtcLayout {
//!     lcore: LcoreSpec::unpinned("lcore fwd"),
//!     rx: q.rx.into_iter().map(|queue| RxPath { queue, rewrite: Rewrite::MacSwap, tx: 0 }).collect(),
//!     tx: q.tx, // reflect back to `a`
//! })?;
//! std::thread::sleep(Duration::from_millis(10));
//! rt.shutdown()?; // stop signal, drain, join (bounded)
//! # Ok::<(), sluice_dataplane::Error>(())
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_mempool::ring::ring;
use sluice_pmd::net::{QueueCounters, RxQueue, TxQueue};
use sluice_pmd::{Batch, PktBuf, PktPool};

use crate::error::Error;
use crate::fwd::Rewrite;
use crate::hold::{Held, RingOutlet};
use crate::lcore::{Lcore, LcoreConfig, StopHandle, Task};
use crate::pipeline::{RingInlet, Route, RxStage, TxStage, WorkerStage};
use crate::rtc::{RtcTask, RxPath};
use crate::tsc;

/// Settings shared by every lcore of a runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Packets per rx burst, 1..=256. Bursts are inline arrays whose size is fixed at compile
    /// time; a value that is not a power of two is rounded down to one.
    pub burst: usize,
    /// How long an outlet may refuse everything before its held packets are dropped
    /// (see [`crate::hold`]); `None`: never drop (lossless back-pressure).
    pub stall_timeout: Option<Duration>,
    /// How long each lcore may drain after the stop signal.
    pub drain_timeout: Duration,
    /// How long [`Runtime::shutdown`] waits for all lcores to end, drain included: a bound
    /// for an lcore that hangs, generous because a busy host can keep a thread off its CPU
    /// for seconds (lcores sharing a CPU by `--lcores` take turns by time slices).
    pub stop_timeout: Duration,
    /// Pools whose per-lcore caches each lcore hands back when it ends.
    pub pools: Vec<PktPool>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            burst: sluice_pmd::DEFAULT_BURST,
            stall_timeout: Some(Duration::from_micros(100)),
            drain_timeout: Duration::from_millis(200),
            stop_timeout: Duration::from_secs(30),
            pools: Vec::new(),
        }
    }
}

/// Name and core of an lcore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcoreSpec {
    /// For messages and stats.
    pub name: String,
    /// The CPU to pin to; `None`: unpinned.
    pub core: Option<usize>,
    /// Never drop what its outlets refuse (lossless back-pressure), whatever the runtime's
    /// [`RuntimeConfig::stall_timeout`].
    pub lossless: bool,
}

impl LcoreSpec {
    /// Pinned to `core`.
    pub fn pinned(name: impl Into<String>, core: usize) -> Self {
        Self {
            name: name.into(),
            core: Some(core),
            lossless: false,
        }
    }

    /// Not pinned (tests on machines with fewer cores than lcores).
    pub fn unpinned(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            core: None,
            lossless: false,
        }
    }

    /// The same lcore with lossless back-pressure on (or off).
    pub fn lossless(mut self, on: bool) -> Self {
        self.lossless = on;
        self
    }
}

/// A run-to-completion lcore: its rx queues, each with a rewrite and a destination among
/// its tx queues.
#[derive(Debug)]
pub struct RtcLayout<R, T> {
    /// Where it runs.
    pub lcore: LcoreSpec,
    /// The rx queues it polls.
    pub rx: Vec<RxPath<R>>,
    /// The tx queues it owns.
    pub tx: Vec<T>,
}

/// A three-stage pipeline. Port ids are the caller's (indices into its port list); they
/// travel in `PktMeta::port` between stages.
#[derive(Debug)]
pub struct PipelineLayout<R, T> {
    /// Rx lcores, each with its rx queues and their port ids.
    pub rx: Vec<(LcoreSpec, Vec<(R, u16)>)>,
    /// Worker lcores.
    pub workers: Vec<LcoreSpec>,
    /// Tx lcores, each with its tx queues and their port ids.
    pub tx: Vec<(LcoreSpec, Vec<(T, u16)>)>,
    /// Forwarding rules: ingress port id, egress port id, rewrite.
    pub rules: Vec<(u16, u16, Rewrite)>,
    /// Slots per ring between two stages (a power of two).
    pub ring_size: usize,
    /// Packets per ring pop, 1..=256.
    pub burst: usize,
}

/// Capacity of the batches of the worker and tx stages: the largest pipeline burst.
const PIPE_MAX: usize = 256;

/// A running set of lcores sharing one stop signal. Dropping it stops and joins them (bounded);
/// [`Runtime::shutdown`] does the same and reports an lcore that hung.
#[derive(Debug)]
pub struct Runtime {
    cfg: RuntimeConfig,
    stop: StopHandle,
    lcores: Vec<Lcore>,
    rings: Vec<(String, Arc<QueueCounters>)>,
}

/// Evaluates `$body` with `$n`, a `const usize`, set to `$burst` rounded down to a power of
/// two in `1..=256`: the burst sizes lcore tasks are built for ([`Runtime::burst`] returns
/// the one a runtime uses). For callers that spawn their own tasks with the runtime's burst.
///
/// ```
/// let n = sluice_dataplane::with_burst!(48usize, N => N);
/// assert_eq!(n, 32);
/// ```
#[macro_export]
macro_rules! with_burst {
    ($burst:expr, $n:ident => $body:expr) => {
        match $burst {
            0..=1 => {
                const $n: usize = 1;
                $body
            }
            2..=3 => {
                const $n: usize = 2;
                $body
            }
            4..=7 => {
                const $n: usize = 4;
                $body
            }
            8..=15 => {
                const $n: usize = 8;
                $body
            }
            16..=31 => {
                const $n: usize = 16;
                $body
            }
            32..=63 => {
                const $n: usize = 32;
                $body
            }
            64..=127 => {
                const $n: usize = 64;
                $body
            }
            128..=255 => {
                const $n: usize = 128;
                $body
            }
            _ => {
                const $n: usize = 256;
                $body
            }
        }
    };
}

impl Runtime {
    /// A runtime with no lcores yet.
    pub fn new(cfg: RuntimeConfig) -> Self {
        Self {
            cfg,
            stop: StopHandle::new(),
            lcores: Vec::new(),
            rings: Vec::new(),
        }
    }

    /// The stop signal of every lcore (hand it to a signal handler or a timer).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The lcores started so far.
    pub fn lcores(&self) -> &[Lcore] {
        &self.lcores
    }

    /// Counters of the pipeline's rings, named `lcore A -> lcore B`.
    pub fn rings(&self) -> &[(String, Arc<QueueCounters>)] {
        &self.rings
    }

    /// The burst size actually used (see [`RuntimeConfig::burst`]).
    pub fn burst(&self) -> usize {
        with_burst!(self.cfg.burst, N => N)
    }

    /// The drop timeout of `spec`'s outlets in TSC ticks (`u64::MAX`: never drop).
    fn stall_ticks(&self, spec: &LcoreSpec) -> u64 {
        match self.cfg.stall_timeout {
            Some(d) if !spec.lossless => tsc::Clock::calibrate().ticks(d),
            _ => u64::MAX,
        }
    }

    /// Starts an lcore running `task` (the generator and sink use this).
    pub fn spawn<T: Task>(&mut self, spec: LcoreSpec, task: T) -> Result<(), Error> {
        let cfg = LcoreConfig {
            name: spec.name,
            core: spec.core,
            pools: self.cfg.pools.clone(),
            drain_timeout: self.cfg.drain_timeout,
        };
        let lcore = Lcore::spawn(cfg, task, self.stop.clone())?;
        self.lcores.push(lcore);
        Ok(())
    }

    /// Starts a run-to-completion lcore.
    pub fn spawn_rtc<R, T>(&mut self, layout: RtcLayout<R, T>) -> Result<(), Error>
    where
        R: RxQueue + 'static,
        T: TxQueue + 'static,
    {
        if let Some(p) = layout.rx.iter().find(|p| p.tx >= layout.tx.len()) {
            return Err(Error::Layout(format!(
                "{}: rx path to tx queue {} of {}",
                layout.lcore.name,
                p.tx,
                layout.tx.len()
            )));
        }
        let stall = self.stall_ticks(&layout.lcore);
        with_burst!(self.cfg.burst, N => {
            let task = RtcTask::<R, T, N>::new(layout.rx, layout.tx, stall);
            self.spawn(layout.lcore, task)
        })
    }

    /// Starts the lcores of a pipeline: tx stages first, then workers, then rx stages, so
    /// that every stage's consumer runs before packets reach it.
    pub fn spawn_pipeline<R, T>(&mut self, layout: PipelineLayout<R, T>) -> Result<(), Error>
    where
        R: RxQueue + 'static,
        T: TxQueue + 'static,
    {
        let PipelineLayout {
            rx,
            workers,
            tx,
            rules,
            ring_size,
            burst,
        } = layout;
        if rx.is_empty() || workers.is_empty() || tx.is_empty() {
            return Err(Error::Layout(
                "a pipeline needs rx, worker and tx lcores".into(),
            ));
        }
        let burst = burst.clamp(1, PIPE_MAX);
        let ports = 1 + rules
            .iter()
            .map(|r| usize::from(r.0.max(r.1)))
            .chain(tx.iter().flat_map(|t| t.1.iter().map(|q| usize::from(q.1))))
            .max()
            .unwrap_or(0);

        // Routes: the egress port's tx stage is the first tx lcore with a queue on it.
        let mut routes = vec![None; ports];
        for &(from, to, rewrite) in &rules {
            let tx_stage = tx
                .iter()
                .position(|(_, qs)| qs.iter().any(|q| q.1 == to))
                .ok_or_else(|| Error::Layout(format!("no tx lcore has a queue on port {to}")))?;
            routes[usize::from(from)] = Some(Route {
                rewrite,
                egress: to,
                tx_stage,
            });
        }

        let mut ring_of = |from: &str, to: &str| -> Result<(RingOutlet, RingInlet), Error> {
            let (p, c) = ring::<PktBuf>(ring_size)
                .map_err(|e| Error::Layout(format!("pipeline ring_size: {e}")))?;
            let counters = Arc::new(QueueCounters::default());
            self.rings
                .push((format!("{from} -> {to}"), counters.clone()));
            Ok((
                RingOutlet {
                    ring: p,
                    counters: counters.clone(),
                },
                RingInlet { ring: c, counters },
            ))
        };

        // rx[i] -> worker[j] and worker[j] -> tx[k] rings.
        let mut rx_out: Vec<Vec<RingOutlet>> = rx.iter().map(|_| Vec::new()).collect();
        let mut w_in: Vec<Vec<RingInlet>> = workers.iter().map(|_| Vec::new()).collect();
        let mut w_out: Vec<Vec<RingOutlet>> = workers.iter().map(|_| Vec::new()).collect();
        let mut tx_in: Vec<Vec<RingInlet>> = tx.iter().map(|_| Vec::new()).collect();
        for (i, (r, _)) in rx.iter().enumerate() {
            for (j, w) in workers.iter().enumerate() {
                let (o, inl) = ring_of(&r.name, &w.name)?;
                rx_out[i].push(o);
                w_in[j].push(inl);
            }
        }
        for (j, w) in workers.iter().enumerate() {
            for (k, (t, _)) in tx.iter().enumerate() {
                let (o, inl) = ring_of(&w.name, &t.name)?;
                w_out[j].push(o);
                tx_in[k].push(inl);
            }
        }

        for ((spec, queues), inlets) in tx.into_iter().zip(tx_in) {
            let stall = self.stall_ticks(&spec);
            let mut by_port = vec![None; ports];
            let mut outs = Vec::new();
            for (i, (q, port)) in queues.into_iter().enumerate() {
                let slot = &mut by_port[usize::from(port)];
                if slot.is_none() {
                    *slot = Some(i);
                }
                outs.push(Held::new(crate::hold::TxOutlet(q), stall));
            }
            let stage = TxStage::<T, PIPE_MAX> {
                inlets,
                by_port,
                tx: outs,
                burst,
                work: Batch::new(),
            };
            self.spawn(spec, stage)?;
        }
        for ((spec, inlets), outs) in workers.into_iter().zip(w_in).zip(w_out) {
            let stall = self.stall_ticks(&spec);
            let stage = WorkerStage::<PIPE_MAX> {
                inlets,
                routes: routes.clone(),
                out: outs.into_iter().map(|o| Held::new(o, stall)).collect(),
                burst,
                work: Batch::new(),
            };
            self.spawn(spec, stage)?;
        }
        let n_workers = workers_fed(&rx_out);
        // Numbered across all rx lcores, so that one queue per rx lcore still spreads.
        let mut next_queue = 0usize;
        for ((spec, queues), outs) in rx.into_iter().zip(rx_out) {
            let stall = self.stall_ticks(&spec);
            let rx_queues = queues
                .into_iter()
                .map(|(q, port)| {
                    next_queue += 1;
                    (q, port, (next_queue - 1) % n_workers)
                })
                .collect();
            with_burst!(self.cfg.burst, N => {
                let stage = RxStage::<R, N> {
                    rx: rx_queues,
                    out: outs.into_iter().map(|o| Held::new(o, stall)).collect(),
                };
                self.spawn(spec, stage)?;
            });
        }
        Ok(())
    }

    /// Fires the stop signal, waits (up to the stop timeout) for every lcore to drain and end,
    /// and joins them. The first lcore that hung or panicked is the error.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), Error> {
        self.stop.stop();
        let deadline = Instant::now() + self.cfg.stop_timeout;
        while !self.lcores.iter().all(Lcore::is_finished) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut first = None;
        for mut l in self.lcores.drain(..) {
            let r = if l.is_finished() {
                l.join_now()
            } else {
                // Left running: it cannot be killed, only abandoned; the app exits.
                Err(Error::Hung {
                    lcore: l.name().to_string(),
                    waited: self.cfg.stop_timeout,
                })
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// How many workers the rx outlets point at (every rx lcore has one outlet per worker).
fn workers_fed(rx_out: &[Vec<RingOutlet>]) -> usize {
    rx_out.first().map_or(1, Vec::len).max(1)
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.lcores.is_empty() {
            let _ = self.stop_and_join();
        }
    }
}
