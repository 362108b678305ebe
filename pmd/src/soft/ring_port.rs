//! An in-memory port pair: each queue of one port is wired to the same queue of the other
//! by two SPSC rings, one each way. Transmitting moves the `PktBuf` itself into the ring;
//! the peer receives that very buffer (zero copy, as DPDK's `net_ring`).
//!
//! A full ring is back-pressure: `tx_burst` takes what fits, leaves the rest in the batch
//! and counts the burst as `full`. Buffers still in a ring when both ends are gone go back
//! to their pools.

use std::sync::Arc;

use sluice_mempool::ring::{Consumer, Producer, ring};
use sluice_mempool::{Batch, PktBuf};

use crate::error::Error;
use crate::net::{
    LinkStatus, MacAddr, NetPort, PortCounters, PortInfo, QueueCounters, Queues, RxQueue, TxQueue,
    bytes_of,
};

/// How a ring pair is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPairConfig {
    /// Queue pairs per port (each with its own rings).
    pub queues: u16,
    /// Slots per ring (a power of two).
    pub ring_size: usize,
    /// Port ids written into received packets' metadata (`PktMeta::port`), one per side.
    pub port_ids: (u16, u16),
}

impl Default for RingPairConfig {
    fn default() -> Self {
        Self {
            queues: 1,
            ring_size: 1024,
            port_ids: (0, 1),
        }
    }
}

/// One end of a ring pair.
#[derive(Debug)]
pub struct RingPort {
    info: PortInfo,
    queues: Option<Queues<RingRxQueue, RingTxQueue>>,
    counters: PortCounters,
}

/// Creates two ports, `a` and `b`, wired back to back.
pub fn ring_pair(a: &str, b: &str, cfg: &RingPairConfig) -> Result<(RingPort, RingPort), Error> {
    if cfg.queues == 0 {
        return Err(Error::InvalidConfig {
            port: a.to_string(),
            what: "queues",
            value: "0".into(),
        });
    }
    let bad_size = || Error::InvalidConfig {
        port: a.to_string(),
        what: "ring size (a power of two)",
        value: cfg.ring_size.to_string(),
    };
    let (ca, cb) = (
        PortCounters::new(cfg.queues.into(), cfg.queues.into()),
        PortCounters::new(cfg.queues.into(), cfg.queues.into()),
    );
    let (mut a_rx, mut a_tx, mut b_rx, mut b_tx) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for q in 0..cfg.queues {
        let qi = usize::from(q);
        let (a_to_b, b_from_a) = ring::<PktBuf>(cfg.ring_size).map_err(|_| bad_size())?;
        let (b_to_a, a_from_b) = ring::<PktBuf>(cfg.ring_size).map_err(|_| bad_size())?;
        a_tx.push(RingTxQueue {
            ring: a_to_b,
            counters: ca.tx[qi].clone(),
        });
        b_rx.push(RingRxQueue {
            ring: b_from_a,
            counters: cb.rx[qi].clone(),
            port: cfg.port_ids.1,
            queue: q,
        });
        b_tx.push(RingTxQueue {
            ring: b_to_a,
            counters: cb.tx[qi].clone(),
        });
        a_rx.push(RingRxQueue {
            ring: a_from_b,
            counters: ca.rx[qi].clone(),
            port: cfg.port_ids.0,
            queue: q,
        });
    }
    let info = |name: &str, id: u16| PortInfo {
        name: name.to_string(),
        driver: "ring",
        mac: MacAddr::local(u32::from(id)),
        rx_queues: cfg.queues,
        tx_queues: cfg.queues,
        max_frame: usize::from(u16::MAX),
    };
    Ok((
        RingPort {
            info: info(a, cfg.port_ids.0),
            queues: Some(Queues { rx: a_rx, tx: a_tx }),
            counters: ca,
        },
        RingPort {
            info: info(b, cfg.port_ids.1),
            queues: Some(Queues { rx: b_rx, tx: b_tx }),
            counters: cb,
        },
    ))
}

impl NetPort for RingPort {
    type Rx = RingRxQueue;
    type Tx = RingTxQueue;

    fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Always up: the wire is memory.
    fn link(&self) -> LinkStatus {
        LinkStatus::Up { speed_mbps: None }
    }

    fn take_queues(&mut self) -> Option<Queues<RingRxQueue, RingTxQueue>> {
        self.queues.take()
    }

    fn counters(&self) -> PortCounters {
        self.counters.clone()
    }
}

/// Receive queue of a [`RingPort`].
#[derive(Debug)]
pub struct RingRxQueue {
    ring: Consumer<PktBuf>,
    counters: Arc<QueueCounters>,
    port: u16,
    queue: u16,
}

impl RxQueue for RingRxQueue {
    #[inline]
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        let start = out.len();
        let n = self.ring.pop_burst(out, N);
        if n > 0 {
            let got = &mut out[start..];
            for pkt in got.iter_mut() {
                let meta = pkt.meta_mut();
                meta.port = self.port;
                meta.queue = self.queue;
            }
            self.counters.add_packets(n as u64, bytes_of(got));
        }
        n
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}

/// Transmit queue of a [`RingPort`].
#[derive(Debug)]
pub struct RingTxQueue {
    ring: Producer<PktBuf>,
    counters: Arc<QueueCounters>,
}

impl TxQueue for RingTxQueue {
    #[inline]
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let offered = bytes_of(pkts);
        let n = self.ring.push_burst(pkts);
        // What stayed behind is the unsent suffix.
        let sent_bytes = offered - bytes_of(pkts);
        if !pkts.is_empty() {
            self.counters.add_full(1);
        }
        if n > 0 {
            self.counters.add_packets(n as u64, sent_bytes);
        }
        n
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}

#[cfg(test)]
mod tests;
