//! What the control thread and the lcores share: per ring, a [`Vring`] behind a mutex.
//!
//! The hand-over: the control thread locks a ring (it may wait: a burst is short) to set it
//! up, change its memory or stop it; an lcore only ever `try_lock`s it, once per burst, and
//! skips the burst when the control thread holds it. An lcore never waits, and a ring being
//! reconfigured is never walked.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::error::RingFault;
use super::guest::GuestMap;
use super::ring::{ChainFault, GuestRing, RingAddrs};

/// A ring as the frontend has described it so far, and, once started, the live ring.
#[derive(Default)]
pub(crate) struct Vring {
    /// `SET_VRING_NUM`.
    pub size: u16,
    /// `SET_VRING_ADDR`, in the frontend's own addresses.
    pub addrs: Option<RingAddrs>,
    /// `SET_VRING_BASE`.
    pub base: u16,
    /// `SET_VRING_CALL`: the eventfd the device signals.
    pub call: Option<File>,
    /// `SET_VRING_KICK` came (the fd itself is closed: the lcores poll).
    pub kicked: bool,
    /// `SET_VRING_ENABLE` (or started enabled without `PROTOCOL_FEATURES`).
    pub enabled: bool,
    /// Started: the ring and the memory it is in.
    pub live: Option<Live>,
    /// The last fault, until taken.
    pub fault: Option<RingFault>,
    /// The last chain given back unused, until taken.
    pub chain_fault: Option<ChainFault>,
}

/// A started ring.
pub(crate) struct Live {
    pub ring: GuestRing,
    /// The memory table the ring was translated with (its mappings live as long as this).
    pub map: GuestMap,
    /// `MRG_RXBUF` was negotiated: a packet may take several receive buffers.
    pub mrg_rxbuf: bool,
    /// Stopped by a fault: skipped until the frontend sets the ring up again.
    pub broken: bool,
}

impl Vring {
    /// The ring to walk, when it is started, enabled and not broken.
    pub(crate) fn walkable(&mut self) -> Option<(&mut GuestRing, &GuestMap, &mut Option<File>)> {
        if !self.enabled {
            return None;
        }
        match &mut self.live {
            Some(l) if !l.broken => Some((&mut l.ring, &l.map, &mut self.call)),
            _ => None,
        }
    }

    /// Stops the ring for `fault` (the lcore's side).
    pub(crate) fn fail(&mut self, fault: RingFault) {
        if let Some(l) = &mut self.live {
            l.broken = true;
        }
        self.fault = Some(fault);
    }
}

/// Signals a call eventfd (8 bytes, value 1); a full or closed one is the frontend's matter.
pub(crate) fn signal(call: &mut Option<File>) {
    if let Some(f) = call {
        let _ = f.write(&1u64.to_ne_bytes());
    }
}

/// What the control thread has seen, for reports and tests.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// Frontends that connected.
    pub connections: AtomicU64,
    /// Connections that ended (the frontend closed it, or it was dropped for a bad message).
    pub disconnects: AtomicU64,
    /// Messages that broke the protocol (malformed, truncated, oversized, unknown, wrong
    /// file descriptors): the connection was closed.
    pub bad_messages: AtomicU64,
    /// Well-formed requests refused (a ring index out of range, addresses outside the memory
    /// table): answered with a failure, the connection kept.
    pub refused: AtomicU64,
    /// Memory tables mapped.
    pub mem_tables: AtomicU64,
}

/// A snapshot of [`ControlCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Frontends that connected.
    pub connections: u64,
    /// Connections that ended.
    pub disconnects: u64,
    /// Protocol-breaking messages (connection closed).
    pub bad_messages: u64,
    /// Refused requests (connection kept).
    pub refused: u64,
    /// Memory tables mapped.
    pub mem_tables: u64,
}

impl ControlCounters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> ControlStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ControlStats {
            connections: r(&self.connections),
            disconnects: r(&self.disconnects),
            bad_messages: r(&self.bad_messages),
            refused: r(&self.refused),
            mem_tables: r(&self.mem_tables),
        }
    }
}

/// The port's state shared by its control thread and its queues.
pub(crate) struct Shared {
    /// Rings `2q` (the frontend's receive ring: this port transmits into it) and `2q + 1`
    /// (its transmit ring: this port receives from it).
    pub rings: Vec<Mutex<Vring>>,
    /// A frontend is connected.
    pub connected: AtomicBool,
    pub counters: ControlCounters,
}

impl Shared {
    pub(crate) fn new(rings: usize) -> Self {
        Self {
            rings: (0..rings).map(|_| Mutex::default()).collect(),
            connected: AtomicBool::new(false),
            counters: ControlCounters::default(),
        }
    }

    /// Ring `i`, for the control thread (waits for a burst in progress).
    pub(crate) fn lock(&self, i: usize) -> Option<MutexGuard<'_, Vring>> {
        self.rings
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets every ring: what a disconnect or a device reset does. The mappings go with
    /// the last ring that holds them.
    pub(crate) fn reset_all(&self) {
        for i in 0..self.rings.len() {
            if let Some(mut v) = self.lock(i) {
                *v = Vring::default();
            }
        }
    }
}
