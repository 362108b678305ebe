//! The transmit policy, shared by every place a batch leaves an lcore (a device tx queue or
//! a pipeline ring).
//!
//! **Policy: send each burst at once, hold what was refused, back-pressure, drop on stall.**
//! A burst is handed to the outlet as soon as it is processed (testpmd io-forward: no
//! coalescing timer, so no added latency). What the outlet refuses stays in a [`Held`]
//! batch, at most one burst, and the lcore stops polling the inputs that feed it until the
//! batch is gone: a full tx ring pushes back to the rx ring, where the device (or the
//! upstream stage) sees it. If the outlet takes nothing for `stall_timeout` (default
//! 100 µs, the period of l2fwd's `BURST_TX_DRAIN_US` drain timer), the held packets are
//! dropped and counted in the outlet's `drops` counter, so that a dead link or a stuck
//! consumer costs packets, not an ever-growing delay (ixy-fwd's "drop rather than
//! accumulate"). With no timeout the policy is lossless back-pressure, which the exact-count
//! tests use.
//!
//! Why not l2fwd's or ixy's policy as is: l2fwd coalesces partial bursts for up to 100 µs and
//! drops whatever `rte_eth_tx_burst` refuses at once; ixy-fwd also drops at once. Both lose
//! frames on every transient full ring (a consumer preempted for a moment); holding one
//! burst turns those into back-pressure, and the stall timeout keeps the latency bound.
//!
//! The timestamp counter is read only on the slow path (when something is held).

use std::sync::Arc;

use sluice_mempool::ring::Producer;
use sluice_pmd::net::{QueueCounters, TxQueue, bytes_of};
use sluice_pmd::{Batch, PktBuf};

use crate::tsc;

/// Where a batch goes: a device transmit queue or a ring to the next stage.
pub trait Outlet: Send {
    /// Takes a prefix of `pkts`, leaves the rest; returns how many it took.
    fn send<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize;
    /// The counters drops are charged to.
    fn counters(&self) -> &QueueCounters;
    /// Whether nobody will ever take from it again (a ring whose consumer is gone).
    fn is_closed(&self) -> bool {
        false
    }
}

/// A device transmit queue as an outlet.
#[derive(Debug)]
pub struct TxOutlet<T>(pub T);

impl<T: TxQueue> Outlet for TxOutlet<T> {
    #[inline]
    fn send<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        self.0.tx_burst(pkts)
    }
    fn counters(&self) -> &QueueCounters {
        self.0.counters()
    }
}

/// The producer end of a stage-to-stage ring as an outlet, with its own counters (`packets`,
/// `bytes`, `full` bursts and `drops`).
#[derive(Debug)]
pub struct RingOutlet {
    /// The ring.
    pub ring: Producer<PktBuf>,
    /// Its counters.
    pub counters: Arc<QueueCounters>,
}

impl Outlet for RingOutlet {
    #[inline]
    fn send<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        let offered = bytes_of(pkts);
        let n = self.ring.push_burst(pkts);
        if !pkts.is_empty() {
            self.counters.add_full(1);
        }
        if n > 0 {
            self.counters
                .add_packets(n as u64, offered - bytes_of(pkts));
        }
        n
    }
    fn counters(&self) -> &QueueCounters {
        &self.counters
    }
    fn is_closed(&self) -> bool {
        self.ring.is_abandoned()
    }
}

/// An outlet with its one-burst hold (see the module docs for the policy).
#[derive(Debug)]
pub struct Held<O: Outlet, const N: usize> {
    /// The outlet.
    pub outlet: O,
    /// Packets to send; between polls, what the outlet refused.
    pub batch: Batch<PktBuf, N>,
    stall_ticks: u64,
    held_since: u64,
}

impl<O: Outlet, const N: usize> Held<O, N> {
    /// `outlet` with an empty hold; `stall_ticks` is the drop timeout in TSC ticks
    /// (`u64::MAX`: never drop).
    pub fn new(outlet: O, stall_ticks: u64) -> Self {
        Self {
            outlet,
            batch: Batch::new(),
            stall_ticks,
            held_since: 0,
        }
    }

    /// Sends the batch; starts the stall clock when something stays behind.
    #[inline]
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.outlet.send(&mut self.batch);
        if !self.batch.is_empty() {
            self.held_since = tsc::now();
        }
    }

    /// Whether the hold is empty, after retrying what it held and dropping it on a stall.
    /// An lcore polls the inputs feeding this outlet only when this says yes.
    #[inline]
    pub fn ready(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let before = self.batch.len();
        self.outlet.send(&mut self.batch);
        if self.batch.is_empty() {
            return true;
        }
        let now = tsc::now();
        if self.batch.len() < before {
            // Progress: the consumer is alive, restart the clock.
            self.held_since = now;
            return false;
        }
        if now.wrapping_sub(self.held_since) >= self.stall_ticks || self.outlet.is_closed() {
            self.drop_held();
            return true;
        }
        false
    }

    /// Drops what is held, counting it.
    pub fn drop_held(&mut self) {
        let n = self.batch.len();
        if n > 0 {
            self.outlet.counters().add_drops(n as u64);
            PktBuf::free_bulk(&mut self.batch);
        }
    }
}

impl<O: Outlet, const N: usize> Drop for Held<O, N> {
    fn drop(&mut self) {
        // Whatever a stopped lcore could not deliver is a counted drop, and the buffers go
        // back to their pool here.
        self.drop_held();
    }
}
