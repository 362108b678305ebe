//! The vhost-user backend port (`driver = "vhost-user"`): this process as the virtio-net
//! *device* that a QEMU guest, a DPDK `net_virtio_user` container or Sluice's own
//! `virtio-user` port drives over a unix socket — the virtual-switch side of vhost-user.
//!
//! # Layout
//! - [`control`](self) thread: listens on the socket, serves one frontend at a time with
//!   rust-vmm's `vhost` crate (backend side: `BackendReqHandler` framing and validating every
//!   message, `handler`'s `VhostUserBackendReqHandlerMut` keeping the device state), maps the
//!   frontend's memory table with `vm-memory` (`GuestMemoryMmap`), and sets the rings up.
//! - `ring`, `packed`: the device side of a ring in the frontend's memory (split and packed
//!   layouts), its parts translated once when it is set up; `guest`: the memory table as the
//!   lcores use it (address translation, copies, ring-field loads and stores), the one
//!   module with `unsafe`. Split ring layouts are validated with `virtio-queue`'s `Queue`;
//!   the per-packet walk is this crate's own (see `ring` for why and what it measured).
//! - `datapath`: [`VhostBackendRxQueue`] (the frontend's transmit ring, copied into
//!   [`PktBuf`](sluice_mempool::PktBuf)s) and [`VhostBackendTxQueue`] (packets copied into the
//!   frontend's receive buffers, `MRG_RXBUF`), polled by the lcores.
//! - `vring`: what the control thread and the lcores share, and the hand-over between them
//!   (an lcore `try_lock`s a ring once per burst and never waits).
//!
//! # Why not `vhost-user-backend`'s daemon
//! rust-vmm's `vhost-user-backend` crate runs a device as epoll worker threads that wake on
//! the rings' kick eventfds and call the device per event. Sluice's lcores are pinned
//! poll-mode loops that own their queues and must never block in the kernel: an event loop
//! would put a thread and a wake-up between the ring and the lcore, and kicks (a system call
//! per batch on the guest side) would have to stay enabled. So the port takes the lower
//! layers — the `vhost` crate's message handling, `vm-memory`, `virtio-queue` — and the
//! lcores poll the rings themselves, kicks suppressed. (The in-process test backend of the
//! frontend tests, `vhost_user::backend`, does use the daemon: there, events are the point.)
//!
//! # The frontend is untrusted
//! Ring addresses are translated through the memory table and each part of a ring must lie
//! inside one region; every descriptor's buffer is translated and bounds-checked against the
//! table before it is read or written (an address outside the table or a length past the
//! regions that hold it is refused, never followed; a buffer crossing from one region into
//! the next is copied in two parts); chains are bounded ([`MAX_CHAIN`], and no longer than
//! the ring: a loop), indirect descriptors refused (`INDIRECT_DESC` is not offered), and must
//! point the right way; an available index that jumps by more than the ring size stops the
//! ring. What breaks a chain costs that chain (given back
//! unused) and is counted as a queue error; what breaks a ring stops it until the frontend
//! sets it up again ([`VhostUserBackendPort::take_fault`]); what breaks the protocol closes
//! the connection (counted in [`ControlStats`]). Packet buffers are copies: none of this
//! process's memory is ever handed to the frontend.
//!
//! # Features
//! [`OFFERED_FEATURES`]: `VERSION_1`, `MRG_RXBUF`, `EVENT_IDX`, `MQ`, `RING_PACKED`,
//! `IN_ORDER` (as DPDK's vhost: on a packed ring, a burst of transmitted buffers goes back
//! as one used descriptor; see docs/devices.md), and no offloads (no checksum or
//! segmentation features: packets are whole and checksummed by whoever made them). Protocol
//! features: `MQ`, `REPLY_ACK`.

mod control;
mod datapath;
mod error;
#[allow(unsafe_code)]
mod guest;
mod handler;
mod packed;
mod ring;
mod vring;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_mempool::PktPool;

use crate::net::{LinkStatus, MacAddr, NetPort, PortCounters, PortInfo, Queues};
pub use datapath::{MAX_MERGE, VhostBackendRxQueue, VhostBackendTxQueue};
pub use error::{BackendError, RingFault};
pub use handler::OFFERED_FEATURES;
pub use ring::{ChainFault, MAX_CHAIN, RingAddrs};
pub use vring::{ControlCounters, ControlStats};

/// How a backend port presents itself.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// The port's name (reports, errors, the control thread's name).
    pub name: String,
    /// Written into received packets' `PktMeta::port`.
    pub port_id: u16,
    /// Queue pairs offered (`GET_QUEUE_NUM`); the frontend may use fewer.
    pub queues: u16,
    /// The port's MAC (the frontend has its own; this is the switch side's).
    pub mac: Option<MacAddr>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            name: "vhost0".into(),
            port_id: 0,
            queues: 1,
            mac: None,
        }
    }
}

/// A vhost-user backend port; see the [module docs](self).
pub struct VhostUserBackendPort {
    info: PortInfo,
    path: PathBuf,
    shared: Arc<vring::Shared>,
    queues: Option<Queues<VhostBackendRxQueue, VhostBackendTxQueue>>,
    counters: PortCounters,
    // Dropped first: stops the control thread before the rest goes.
    _control: control::Control,
}

impl std::fmt::Debug for VhostUserBackendPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserBackendPort")
            .field("info", &self.info)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VhostUserBackendPort {
    /// Listens at `path` (a stale socket there is replaced, a live one is an error) and
    /// serves frontends on a control thread; receive buffers come from `pool`.
    ///
    /// # Errors
    /// [`BackendError`]: the path is in use or not a socket, the socket cannot be made, or
    /// the shape is wrong (0 or more than 128 queue pairs).
    pub fn open(
        path: impl AsRef<Path>,
        cfg: &BackendConfig,
        pool: &PktPool,
    ) -> Result<Self, crate::Error> {
        let path = path.as_ref();
        if cfg.queues == 0 || cfg.queues > 128 {
            return Err(BackendError::Config {
                port: cfg.name.clone(),
                what: format!("{} queue pairs: 1 to 128", cfg.queues),
            }
            .into());
        }
        let pairs = usize::from(cfg.queues);
        let shared = Arc::new(vring::Shared::new(2 * pairs));
        let listener = control::listen(path)?;
        let control = control::Control::start(&cfg.name, path, listener, shared.clone())?;
        let counters = PortCounters::new(pairs, pairs);
        let rx = (0..pairs)
            .map(|q| VhostBackendRxQueue {
                shared: shared.clone(),
                ring: 2 * q + 1,
                pool: pool.clone(),
                counters: counters.rx[q].clone(),
                port: cfg.port_id,
                queue: q as u16,
                used: Vec::with_capacity(datapath::USED_BATCH),
            })
            .collect();
        let tx = (0..pairs)
            .map(|q| VhostBackendTxQueue {
                shared: shared.clone(),
                ring: 2 * q,
                counters: counters.tx[q].clone(),
                used: Vec::with_capacity(datapath::USED_BATCH),
            })
            .collect();
        let info = PortInfo {
            name: cfg.name.clone(),
            driver: "vhost-user",
            mac: cfg.mac.unwrap_or(MacAddr::local(u32::from(cfg.port_id))),
            rx_queues: cfg.queues,
            tx_queues: cfg.queues,
            max_frame: pool.buf_len() - pool.headroom(),
        };
        Ok(Self {
            info,
            path: path.to_path_buf(),
            shared,
            queues: Some(Queues { rx, tx }),
            counters,
            _control: control,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a frontend is connected.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Rings started and enabled (of `2 * queues`).
    pub fn live_rings(&self) -> usize {
        (0..self.shared.rings.len())
            .filter(|&i| {
                self.shared
                    .lock(i)
                    .is_some_and(|v| v.enabled && v.live.as_ref().is_some_and(|l| !l.broken))
            })
            .count()
    }

    /// What the control thread has seen.
    pub fn control_stats(&self) -> ControlStats {
        self.shared.counters.snapshot()
    }

    /// The last fault of ring `ring` (`2q`: the frontend's receive ring of pair `q`,
    /// `2q + 1`: its transmit ring), taken.
    pub fn take_fault(&self, ring: usize) -> Option<RingFault> {
        self.shared.lock(ring).and_then(|mut v| v.fault.take())
    }
}

impl VhostUserBackendPort {
    /// The last chain of ring `ring` given back unused (and its packet dropped), taken.
    pub fn take_chain_fault(&self, ring: usize) -> Option<ChainFault> {
        self.shared
            .lock(ring)
            .and_then(|mut v| v.chain_fault.take())
    }
}

impl NetPort for VhostUserBackendPort {
    type Rx = VhostBackendRxQueue;
    type Tx = VhostBackendTxQueue;

    fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Up while a frontend is connected and has started at least one ring.
    fn link(&self) -> LinkStatus {
        if self.connected() && self.live_rings() > 0 {
            LinkStatus::Up { speed_mbps: None }
        } else {
            LinkStatus::Down
        }
    }

    fn take_queues(&mut self) -> Option<Queues<Self::Rx, Self::Tx>> {
        self.queues.take()
    }

    fn counters(&self) -> PortCounters {
        self.counters.clone()
    }
}
