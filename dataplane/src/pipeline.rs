//! Pipeline mode: rx lcores → SPSC rings → worker lcores → SPSC rings → tx lcores.
//!
//! - An **rx** stage polls its rx queues, tags each packet with its ingress port
//!   (`PktMeta::port`) and pushes the burst to one worker: each rx queue always feeds the
//!   same worker (its position among all rx queues of the pipeline, modulo workers), so that
//!   the frames of one queue — of one flow, under RSS — stay in order. Round-robin over
//!   workers would balance better and reorder flows.
//! - A **worker** pops bursts, looks up the rule of each packet's ingress port, rewrites the
//!   frame, replaces `PktMeta::port` with the egress port and pushes it to the tx stage that
//!   owns a tx queue on that port. A packet from a port without a rule is dropped and
//!   counted as an error on the worker's input ring.
//! - A **tx** stage pops bursts, sorts packets by egress port into per-queue batches and sends.
//!   It sends on its first tx queue of each port: a tx lcore given two queues of one port uses
//!   one (spreading would need a flow hash; no config here needs it yet).
//!
//! Every hand-off follows the transmit policy of [`crate::hold`]: hold what was refused, stop
//! taking input until it is gone, drop after the stall timeout. On stop, each stage drains:
//! rx stages push what they hold and end (which closes their rings); a worker or tx stage
//! keeps going until every ring feeding it is closed and empty, so nothing in flight is lost.

use std::sync::Arc;

use sluice_mempool::ring::Consumer;
use sluice_pmd::net::{QueueCounters, RxQueue, TxQueue};
use sluice_pmd::{Batch, PktBuf};

use crate::fwd::Rewrite;
use crate::hold::{Held, Outlet, RingOutlet, TxOutlet};
use crate::lcore::Task;

/// Where a worker sends the packets of one ingress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The frame rewrite.
    pub rewrite: Rewrite,
    /// The egress port id.
    pub egress: u16,
    /// Index of the tx stage that owns a tx queue on the egress port.
    pub tx_stage: usize,
}

/// An rx stage: rx queues (with their port ids and worker index) and a ring per worker.
#[derive(Debug)]
pub struct RxStage<R: RxQueue, const N: usize> {
    pub(crate) rx: Vec<(R, u16, usize)>,
    pub(crate) out: Vec<Held<RingOutlet, N>>,
}

impl<R: RxQueue + 'static, const N: usize> Task for RxStage<R, N> {
    #[inline]
    fn poll(&mut self) -> usize {
        let mut moved = 0;
        for (queue, port, worker) in &mut self.rx {
            let Some(out) = self.out.get_mut(*worker) else {
                continue;
            };
            if !out.ready() {
                continue;
            }
            let n = queue.rx_burst(&mut out.batch);
            if n > 0 {
                for p in out.batch.iter_mut() {
                    p.meta_mut().port = *port;
                }
                out.flush();
                moved += n;
            }
        }
        moved
    }

    fn drain(&mut self) -> bool {
        all_ready(&mut self.out)
    }
}

/// The consumer end of a ring, with the ring's counters.
///
/// The counters keep one writer per field: the producer writes `packets`, `bytes`, `full` and
/// `drops` (its stall drops), the consumer only `errors` (packets it dropped because no rule
/// or tx queue takes their port), so neither loses the other's increments.
#[derive(Debug)]
pub struct RingInlet {
    pub(crate) ring: Consumer<PktBuf>,
    pub(crate) counters: Arc<QueueCounters>,
}

/// Whether every inlet is closed (its producer gone) and empty. Closed is read before empty:
/// once closed, nothing more arrives.
fn inlets_done(inlets: &mut [RingInlet]) -> bool {
    inlets
        .iter_mut()
        .all(|i| i.ring.is_abandoned() && i.ring.is_empty())
}

/// A worker stage.
#[derive(Debug)]
pub struct WorkerStage<const N: usize> {
    pub(crate) inlets: Vec<RingInlet>,
    /// Indexed by ingress port id.
    pub(crate) routes: Vec<Option<Route>>,
    pub(crate) out: Vec<Held<RingOutlet, N>>,
    pub(crate) burst: usize,
    pub(crate) work: Batch<PktBuf, N>,
}

/// Whether every outlet can take a whole burst (each gets its chance to flush: no early exit).
#[inline]
fn all_ready<O: Outlet, const N: usize>(outs: &mut [Held<O, N>]) -> bool {
    outs.iter_mut().fold(true, |ready, o| o.ready() & ready)
}

impl<const N: usize> Task for WorkerStage<N> {
    #[inline]
    fn poll(&mut self) -> usize {
        let mut moved = 0;
        for inlet in &mut self.inlets {
            // Take input only when every outlet can take a whole burst.
            if !all_ready(&mut self.out) {
                break;
            }
            let n = inlet.ring.pop_burst(&mut self.work, self.burst);
            if n == 0 {
                continue;
            }
            moved += n;
            for mut p in self.work.drain() {
                let port = usize::from(p.meta().port);
                match self.routes.get(port).copied().flatten() {
                    Some(route) => {
                        route.rewrite.apply(core::slice::from_mut(&mut p));
                        p.meta_mut().port = route.egress;
                        if let Some(out) = self.out.get_mut(route.tx_stage) {
                            // Every outlet was empty and a burst holds at most N: it fits.
                            if let Err(p) = out.batch.push(p) {
                                inlet.counters.add_errors(1);
                                drop(p);
                            }
                        }
                    }
                    None => {
                        inlet.counters.add_errors(1);
                        drop(p);
                    }
                }
            }
            for out in &mut self.out {
                out.flush();
            }
        }
        moved
    }

    fn drain(&mut self) -> bool {
        self.poll();
        // Closed-and-empty is checked after the poll, and the outlets after that.
        inlets_done(&mut self.inlets) && all_ready(&mut self.out)
    }
}

/// A tx stage.
#[derive(Debug)]
pub struct TxStage<T: TxQueue, const N: usize> {
    pub(crate) inlets: Vec<RingInlet>,
    /// Indexed by egress port id: index into `tx`.
    pub(crate) by_port: Vec<Option<usize>>,
    pub(crate) tx: Vec<Held<TxOutlet<T>, N>>,
    pub(crate) burst: usize,
    pub(crate) work: Batch<PktBuf, N>,
}

impl<T: TxQueue + 'static, const N: usize> Task for TxStage<T, N> {
    #[inline]
    fn poll(&mut self) -> usize {
        let mut moved = 0;
        for inlet in &mut self.inlets {
            if !all_ready(&mut self.tx) {
                break;
            }
            let n = inlet.ring.pop_burst(&mut self.work, self.burst);
            if n == 0 {
                continue;
            }
            moved += n;
            for p in self.work.drain() {
                let port = usize::from(p.meta().port);
                let out = self
                    .by_port
                    .get(port)
                    .copied()
                    .flatten()
                    .and_then(|i| self.tx.get_mut(i));
                match out {
                    Some(out) => {
                        if let Err(p) = out.batch.push(p) {
                            inlet.counters.add_errors(1);
                            drop(p);
                        }
                    }
                    None => {
                        inlet.counters.add_errors(1);
                        drop(p);
                    }
                }
            }
            for out in &mut self.tx {
                out.flush();
            }
        }
        moved
    }

    fn drain(&mut self) -> bool {
        self.poll();
        inlets_done(&mut self.inlets) && all_ready(&mut self.tx)
    }
}
