//! The net-port API: what every packet driver implements and every app programs against.
//!
//! A port splits into per-queue handles ([`RxQueue`], [`TxQueue`]), each `Send` and owned by
//! exactly one lcore, which polls it with `&mut` — no locks. Packets move by value in
//! [`Batch`]es (32 by default, inline, no heap):
//!
//! - [`RxQueue::rx_burst`] appends what arrived to a batch and returns how many;
//! - [`TxQueue::tx_burst`] takes a prefix of a batch — what the device accepted — and leaves
//!   the rest in it, for the caller to retry or drop (DPDK's `rte_eth_tx_burst` contract).
//!
//! Calls are static: a driver's queue types are concrete, and the app picks one through an
//! enum where the configuration chooses the driver ([`any`]).
//!
//! ```
//! use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
//! use sluice_pmd::soft::ring_port::{ring_pair, RingPairConfig};
//! use sluice_pmd::{Batch, IdentityMapper, PktPool, PktPoolConfig};
//! use std::sync::Arc;
//!
//! let pool = PktPool::new(&PktPoolConfig::new("pkt", 1024), Arc::new(IdentityMapper))?;
//! let (mut a, mut b) = ring_pair("a", "b", &RingPairConfig::default()).unwrap();
//! let mut a_tx = a.take_queues().unwrap().tx;
//! let mut b_rx = b.take_queues().unwrap().rx;
//!
//! let mut out: Batch<_> = Batch::new();
//! pool.alloc_bulk(&mut out, 8);
//! assert_eq!(a_tx[0].tx_burst(&mut out), 8);
//! let mut got: Batch<_> = Batch::new();
//! assert_eq!(b_rx[0].rx_burst(&mut got), 8);
//! assert_eq!(b_rx[0].counters().snapshot().packets, 8);
//! # Ok::<(), sluice_pmd::mempool::Error>(())
//! ```

pub mod any;
pub mod stats;

use core::fmt;
use std::sync::Arc;

use sluice_mempool::{Batch, PktBuf};

pub use stats::{QueueCounters, QueueStats};

/// Receive side of one queue, owned by one lcore.
pub trait RxQueue: Send {
    /// Appends up to `out.remaining()` received packets to `out`; returns how many.
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize;

    /// This queue's counters (shared with whoever reports them).
    fn counters(&self) -> &Arc<QueueCounters>;
}

/// Transmit side of one queue, owned by one lcore.
pub trait TxQueue: Send {
    /// Hands a prefix of `pkts` to the device: removes what it accepted from the front of
    /// the batch and returns how many; the rest stays in `pkts`.
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize;

    /// This queue's counters.
    fn counters(&self) -> &Arc<QueueCounters>;
}

/// A port: its identity and link, and its queues until an lcore takes them.
pub trait NetPort: Send {
    /// Its receive queue handle.
    type Rx: RxQueue;
    /// Its transmit queue handle.
    type Tx: TxQueue;

    /// Name, driver, MAC and queue counts.
    fn info(&self) -> &PortInfo;

    /// The link as the device reports it now.
    fn link(&self) -> LinkStatus;

    /// The queue handles, indexed by queue id; `None` once taken.
    fn take_queues(&mut self) -> Option<Queues<Self::Rx, Self::Tx>>;

    /// Every queue's counters, also after the queues were taken (for the stats thread).
    fn counters(&self) -> PortCounters;
}

/// A port's queue handles, indexed by queue id, for the lcores to take.
#[derive(Debug)]
pub struct Queues<R, T> {
    /// Receive queues.
    pub rx: Vec<R>,
    /// Transmit queues.
    pub tx: Vec<T>,
}

/// A port's queue counters, by queue id.
#[derive(Debug, Clone, Default)]
pub struct PortCounters {
    /// Receive queues.
    pub rx: Vec<Arc<QueueCounters>>,
    /// Transmit queues.
    pub tx: Vec<Arc<QueueCounters>>,
}

impl PortCounters {
    /// `n` fresh counters each way.
    pub fn new(rx: usize, tx: usize) -> Self {
        Self {
            rx: (0..rx).map(|_| Arc::default()).collect(),
            tx: (0..tx).map(|_| Arc::default()).collect(),
        }
    }

    /// Sum over the receive queues.
    pub fn rx_total(&self) -> QueueStats {
        self.rx
            .iter()
            .fold(QueueStats::default(), |acc, c| acc.plus(&c.snapshot()))
    }

    /// Sum over the transmit queues.
    pub fn tx_total(&self) -> QueueStats {
        self.tx
            .iter()
            .fold(QueueStats::default(), |acc, c| acc.plus(&c.snapshot()))
    }
}

/// What a port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Its name (from the configuration).
    pub name: String,
    /// The driver: "ring", "af_xdp", "virtio", ...
    pub driver: &'static str,
    /// Its MAC address.
    pub mac: MacAddr,
    /// Receive queues.
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// The largest frame it carries, in bytes, without the FCS.
    pub max_frame: usize,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Up, at a speed if the device says.
    Up {
        /// Megabits per second, when known.
        speed_mbps: Option<u32>,
    },
    /// Down.
    Down,
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Up {
                speed_mbps: Some(s),
            } => write!(f, "up, {s} Mbit/s"),
            Self::Up { speed_mbps: None } => f.write_str("up"),
            Self::Down => f.write_str("down"),
        }
    }
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered unicast address ending in `n` (for software ports).
    pub const fn local(n: u32) -> Self {
        let b = n.to_be_bytes();
        Self([0x02, 0x51, b[0], b[1], b[2], b[3]])
    }

    /// The broadcast address.
    pub const BROADCAST: Self = Self([0xff; 6]);
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Sum of the data lengths of `pkts` (for byte counters).
#[inline]
pub fn bytes_of(pkts: &[PktBuf]) -> u64 {
    pkts.iter().map(|p| p.len() as u64).sum()
}
