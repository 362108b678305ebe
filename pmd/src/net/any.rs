//! The one place where the driver is chosen at run time: an enum over every driver's port
//! and queue types, for apps that read the driver from a configuration file.
//!
//! Each call is one `match` on a small enum — the branch predicts perfectly for a queue that
//! never changes driver — and inside each arm the driver's burst functions are called
//! statically. Code that knows its driver at compile time uses the driver's types directly.

use std::sync::Arc;

use sluice_mempool::{Batch, PktBuf};

use super::{LinkStatus, NetPort, PortCounters, PortInfo, QueueCounters, Queues, RxQueue, TxQueue};
use crate::soft::af_xdp::{AfXdpPort, AfXdpRxQueue, AfXdpTxQueue};
use crate::soft::ring_port::{RingPort, RingRxQueue, RingTxQueue};
use crate::virtio::backend::{VhostBackendRxQueue, VhostBackendTxQueue, VhostUserBackendPort};
use crate::virtio::{VhostUserTransport, VirtioPort, VirtioRxQueue, VirtioTxQueue};

/// A port of any driver.
// Queue handles live one per lcore for the run, so size does not matter and boxing would
// add a pointer chase to every burst.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyPort {
    /// An in-memory ring port.
    Ring(RingPort),
    /// An AF_XDP port.
    AfXdp(AfXdpPort),
    /// A virtio-net port over VFIO.
    Virtio(VirtioPort),
    /// A virtio-net port over vhost-user (a backend process on the host).
    VirtioUser(VirtioPort<VhostUserTransport>),
    /// A vhost-user backend port (the device of a VM or a virtio-user container).
    VhostUser(VhostUserBackendPort),
}

/// A receive queue of any driver.
// Queue handles live one per lcore for the run, so size does not matter and boxing would
// add a pointer chase to every burst.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyRxQueue {
    /// Of an in-memory ring port.
    Ring(RingRxQueue),
    /// Of an AF_XDP port.
    AfXdp(AfXdpRxQueue),
    /// Of a virtio-net port.
    Virtio(VirtioRxQueue),
    /// Of a virtio-net port over vhost-user.
    VirtioUser(VirtioRxQueue<VhostUserTransport>),
    /// Of a vhost-user backend port.
    VhostUser(VhostBackendRxQueue),
}

/// A transmit queue of any driver.
// Queue handles live one per lcore for the run, so size does not matter and boxing would
// add a pointer chase to every burst.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyTxQueue {
    /// Of an in-memory ring port.
    Ring(RingTxQueue),
    /// Of an AF_XDP port.
    AfXdp(AfXdpTxQueue),
    /// Of a virtio-net port.
    Virtio(VirtioTxQueue),
    /// Of a virtio-net port over vhost-user.
    VirtioUser(VirtioTxQueue<VhostUserTransport>),
    /// Of a vhost-user backend port.
    VhostUser(VhostBackendTxQueue),
}

impl From<RingPort> for AnyPort {
    fn from(p: RingPort) -> Self {
        Self::Ring(p)
    }
}

impl From<AfXdpPort> for AnyPort {
    fn from(p: AfXdpPort) -> Self {
        Self::AfXdp(p)
    }
}

impl From<VirtioPort> for AnyPort {
    fn from(p: VirtioPort) -> Self {
        Self::Virtio(p)
    }
}

impl From<VirtioPort<VhostUserTransport>> for AnyPort {
    fn from(p: VirtioPort<VhostUserTransport>) -> Self {
        Self::VirtioUser(p)
    }
}

impl From<VhostUserBackendPort> for AnyPort {
    fn from(p: VhostUserBackendPort) -> Self {
        Self::VhostUser(p)
    }
}

impl NetPort for AnyPort {
    type Rx = AnyRxQueue;
    type Tx = AnyTxQueue;

    fn info(&self) -> &PortInfo {
        match self {
            Self::Ring(p) => p.info(),
            Self::AfXdp(p) => p.info(),
            Self::Virtio(p) => p.info(),
            Self::VirtioUser(p) => p.info(),
            Self::VhostUser(p) => p.info(),
        }
    }

    fn link(&self) -> LinkStatus {
        match self {
            Self::Ring(p) => p.link(),
            Self::AfXdp(p) => p.link(),
            Self::Virtio(p) => p.link(),
            Self::VirtioUser(p) => p.link(),
            Self::VhostUser(p) => p.link(),
        }
    }

    fn take_queues(&mut self) -> Option<Queues<AnyRxQueue, AnyTxQueue>> {
        match self {
            Self::Ring(p) => p.take_queues().map(|q| Queues {
                rx: q.rx.into_iter().map(AnyRxQueue::Ring).collect(),
                tx: q.tx.into_iter().map(AnyTxQueue::Ring).collect(),
            }),
            Self::AfXdp(p) => p.take_queues().map(|q| Queues {
                rx: q.rx.into_iter().map(AnyRxQueue::AfXdp).collect(),
                tx: q.tx.into_iter().map(AnyTxQueue::AfXdp).collect(),
            }),
            Self::Virtio(p) => p.take_queues().map(|q| Queues {
                rx: q.rx.into_iter().map(AnyRxQueue::Virtio).collect(),
                tx: q.tx.into_iter().map(AnyTxQueue::Virtio).collect(),
            }),
            Self::VirtioUser(p) => p.take_queues().map(|q| Queues {
                rx: q.rx.into_iter().map(AnyRxQueue::VirtioUser).collect(),
                tx: q.tx.into_iter().map(AnyTxQueue::VirtioUser).collect(),
            }),
            Self::VhostUser(p) => p.take_queues().map(|q| Queues {
                rx: q.rx.into_iter().map(AnyRxQueue::VhostUser).collect(),
                tx: q.tx.into_iter().map(AnyTxQueue::VhostUser).collect(),
            }),
        }
    }

    fn counters(&self) -> PortCounters {
        match self {
            Self::Ring(p) => p.counters(),
            Self::AfXdp(p) => p.counters(),
            Self::Virtio(p) => p.counters(),
            Self::VirtioUser(p) => p.counters(),
            Self::VhostUser(p) => p.counters(),
        }
    }
}

impl RxQueue for AnyRxQueue {
    #[inline]
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        match self {
            Self::Ring(q) => q.rx_burst(out),
            Self::AfXdp(q) => q.rx_burst(out),
            Self::Virtio(q) => q.rx_burst(out),
            Self::VirtioUser(q) => q.rx_burst(out),
            Self::VhostUser(q) => q.rx_burst(out),
        }
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        match self {
            Self::Ring(q) => q.counters(),
            Self::AfXdp(q) => q.counters(),
            Self::Virtio(q) => q.counters(),
            Self::VirtioUser(q) => q.counters(),
            Self::VhostUser(q) => q.counters(),
        }
    }
}

impl TxQueue for AnyTxQueue {
    #[inline]
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        match self {
            Self::Ring(q) => q.tx_burst(pkts),
            Self::AfXdp(q) => q.tx_burst(pkts),
            Self::Virtio(q) => q.tx_burst(pkts),
            Self::VirtioUser(q) => q.tx_burst(pkts),
            Self::VhostUser(q) => q.tx_burst(pkts),
        }
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        match self {
            Self::Ring(q) => q.counters(),
            Self::AfXdp(q) => q.counters(),
            Self::Virtio(q) => q.counters(),
            Self::VirtioUser(q) => q.counters(),
            Self::VhostUser(q) => q.counters(),
        }
    }
}
