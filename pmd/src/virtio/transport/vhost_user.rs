//! The vhost-user transport: the virtio-net driver as the frontend of a backend in another
//! process on the host (DPDK's `net_vhost`, any vhost-user net backend), over a unix socket,
//! as DPDK's `net_virtio_user` is. The messages are [`VhostUserDevice`]'s (the vhost-user
//! specification in QEMU's `docs/interop/vhost-user.rst`).
//!
//! What the backend does not do, this transport does locally, as `net_virtio_user` does:
//! - the status byte (a vhost-user backend has none without the `STATUS` protocol feature);
//! - `MAC`: the address comes from the configuration; `STATUS`: the link is up while the
//!   backend is connected;
//! - `CTRL_VQ`: there is no control ring at the backend
//!   ([`device_control_queue`](Transport::device_control_queue) is `false`); a queue-pair
//!   change becomes `SET_VRING_ENABLE` on the rings.
//!
//! Memory: the packet pool must be shareable (a memfd, `PktPool::new_shareable`), and every
//! ring of the port is in one shareable region; the memory table (pool and rings, 2 of the 8
//! entries a `SET_MEM_TABLE` may carry) is sent once, before the first ring. IOVA = VA.
//!
//! Poll mode: the call eventfds are never waited on; a ring's [`VhostUserDoorbell`] writes its
//! kick eventfd only when the ring says the backend asked for it (`NO_NOTIFY`, event index).
//!
//! # When the backend has stopped
//! [`reset`](Transport::reset) stops every ring (`SET_VRING_ENABLE` off, `GET_VRING_BASE`):
//! once the backend answers it no longer touches the ring or the buffers posted on it, and
//! the port's [`DeviceHold`](crate::quiesce::DeviceHold) is confirmed. A backend whose
//! connection has ended (killed, or it closed the socket) counts as stopped too: a killed
//! process's memory mappings are released before its files are closed (Linux `do_exit`:
//! `exit_mm` before `exit_files`), so its end of the socket closes only after it can no
//! longer reach our memfd; a child that inherited the mapping inherited the socket too and
//! keeps the connection open; DPDK's vhost library unmaps the memory table when a
//! connection closes. A backend that is connected but does not answer within
//! [`REPLY_TIMEOUT`](crate::virtio::vhost_user::REPLY_TIMEOUT), or refuses, is not confirmed:
//! the hold leaks what it keeps (rings, posted buffers, the pool) with a warning.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use sluice_mempool::{DmaRegion, PktPool};

use super::{Doorbell, RingAddrs, Transport};
use crate::error::Error;
use crate::virtio::ctrl::CtrlCommand;
use crate::virtio::ring::MAX_QUEUE_SIZE;
use crate::virtio::vhost_user::{self, VhostUserDevice, VhostUserError, VringSetup};
use crate::virtio::{CtrlFailure, RingKind, VirtioError, feature};

/// Features this transport provides itself, whatever the backend offers; never sent to it.
pub const LOCAL_FEATURES: u64 = feature::MAC | feature::STATUS | feature::CTRL_VQ;

/// Features of the backend's own control queue, which is not used: receive-mode filtering
/// (DPDK's vhost offers CTRL_RX) is not offered to the driver, nor sent to the backend.
pub const HIDDEN_FEATURES: u64 = feature::CTRL_RX;

/// A ring's doorbell: one `write(2)` to its kick eventfd.
#[derive(Debug)]
pub struct VhostUserDoorbell(vhost_user::Doorbell);

impl Doorbell for VhostUserDoorbell {
    /// One eventfd write, which never blocks; a full counter means kicks are pending already.
    /// A backend that has gone away leaves the eventfd writable: nothing fails here.
    #[inline]
    fn notify(&self) -> Result<(), Error> {
        self.0.kick().map_err(|e| VirtioError::from(e).into())
    }
}

/// The vhost-user transport of one port; see the [module docs](self).
pub struct VhostUserTransport {
    device: String,
    dev: Mutex<VhostUserDevice>,
    /// The status byte, kept here (virtio 1.2 §2.1).
    status: AtomicU8,
    mac: [u8; 6],
    /// Queue pairs the backend has (`GET_QUEUE_NUM`, 1 without MQ).
    max_pairs: u16,
    /// The receive buffers' pool, announced in the memory table; kept until the transport
    /// goes, after the reset.
    pool: PktPool,
    /// Whether the backend was last seen connected.
    connected: AtomicBool,
    /// How many times the link went down (the backend went away).
    link_downs: AtomicU64,
}

impl core::fmt::Debug for VhostUserTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VhostUserTransport")
            .field("device", &self.device)
            .field("max_pairs", &self.max_pairs)
            .finish_non_exhaustive()
    }
}

impl VhostUserTransport {
    /// Connects to the backend listening at `path` (`SET_OWNER`, features, protocol
    /// features) for a port whose receive buffers come from `pool` and whose MAC is `mac`.
    ///
    /// # Errors
    /// [`VirtioError::PoolNotShareable`] naming the pool when it is not memfd-backed;
    /// [`VirtioError::VhostUser`]: [`VhostUserError::NoBackend`] (nothing listens at the
    /// path: start the backend first), a missing protocol feature, a protocol error.
    pub fn connect(
        path: impl AsRef<std::path::Path>,
        pool: &PktPool,
        mac: [u8; 6],
    ) -> Result<Self, Error> {
        let device = path.as_ref().display().to_string();
        if pool.region().fd_region().is_none() {
            return Err(VirtioError::PoolNotShareable {
                device,
                pool: pool.name().to_string(),
            }
            .into());
        }
        let dev = VhostUserDevice::connect(path).map_err(VirtioError::from)?;
        // DPDK's vhost library answers GET_QUEUE_NUM in queue pairs, rust-vmm's backends in
        // rings: taken as pairs, a ring beyond the backend's fails at SET_VRING_NUM, named.
        let max_pairs = dev
            .queue_num()
            .map_or(1, |n| n.clamp(1, u64::from(MAX_QUEUE_SIZE)) as u16);
        Ok(Self {
            device,
            dev: Mutex::new(dev),
            status: AtomicU8::new(0),
            mac,
            max_pairs,
            pool: pool.clone(),
            connected: AtomicBool::new(true),
            link_downs: AtomicU64::new(0),
        })
    }

    fn dev(&self) -> MutexGuard<'_, VhostUserDevice> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many times the link went down: the backend was found gone by
    /// [`link_up`](Transport::link_up) or by a message.
    pub fn link_downs(&self) -> u64 {
        self.link_downs.load(Ordering::Relaxed)
    }

    /// Notes the backend gone, counting the link going down once.
    fn gone(&self) {
        if self.connected.swap(false, Ordering::Relaxed) {
            self.link_downs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Turns a frontend error into the crate's, noting a backend that went away.
    fn fail(&self, e: VhostUserError) -> Error {
        if e.is_disconnect() {
            self.gone();
        }
        VirtioError::from(e).into()
    }

    /// The virtio features the backend and this transport offer together.
    fn offered(&self) -> u64 {
        (self.dev().device_features() & !HIDDEN_FEATURES) | LOCAL_FEATURES
    }
}

impl Transport for VhostUserTransport {
    type Doorbell = VhostUserDoorbell;

    fn device(&self) -> &str {
        &self.device
    }

    /// Stops every ring that is set up (`GET_VRING_BASE`) and forgets the status; a backend
    /// that has gone away counts as stopped (see the [module docs](self)).
    ///
    /// # Errors
    /// A backend that is connected but does not answer or refuses: the port's memory is then
    /// leaked rather than reused.
    fn reset(&self) -> Result<(), Error> {
        self.status.store(0, Ordering::Relaxed);
        match self.dev().stop_all() {
            Ok(_) => Ok(()),
            Err(e) if e.is_disconnect() => {
                self.gone();
                Ok(())
            }
            Err(e) => Err(VirtioError::from(e).into()),
        }
    }

    fn status(&self) -> Result<u8, Error> {
        Ok(self.status.load(Ordering::Relaxed))
    }

    fn set_status(&self, status: u8) -> Result<(), Error> {
        self.status.store(status, Ordering::Relaxed);
        Ok(())
    }

    fn device_features(&self) -> Result<u64, Error> {
        Ok(self.offered())
    }

    /// `SET_FEATURES` with what the backend offered of `features`; the local ones stay here.
    fn set_driver_features(&self, features: u64) -> Result<(), Error> {
        let mut dev = self.dev();
        let r = dev.negotiate(0, features & !(LOCAL_FEATURES | HIDDEN_FEATURES));
        drop(dev);
        r.map(drop).map_err(|e| self.fail(e))
    }

    /// Any size up to 32768 for the rings of the backend's queue pairs (it refuses a size it
    /// cannot take at `SET_VRING_NUM`); 0 beyond them.
    fn max_queue_size(&self, queue: u16) -> Result<u16, Error> {
        Ok(if queue < 2 * self.max_pairs {
            MAX_QUEUE_SIZE
        } else {
            0
        })
    }

    fn rings_in_one_region(&self) -> bool {
        true
    }

    /// The memory table, sent once: the pool's region and the rings' region.
    fn share_rings(&self, region: &DmaRegion) -> Result<(), Error> {
        let mut dev = self.dev();
        let r = dev.set_memory(&[self.pool.region(), region]);
        drop(dev);
        r.map_err(|e| self.fail(e))
    }

    /// Size, fresh base, addresses (IOVA = VA), call and kick eventfds, enable.
    fn setup_queue(
        &self,
        queue: u16,
        size: u16,
        rings: RingAddrs,
    ) -> Result<Self::Doorbell, Error> {
        let mut dev = self.dev();
        let kind = if dev.features() & feature::RING_PACKED != 0 {
            RingKind::Packed
        } else {
            RingKind::Split
        };
        let setup = VringSetup {
            kind,
            size,
            desc: rings.desc.as_u64(),
            driver: rings.driver.as_u64(),
            device: rings.device.as_u64(),
        };
        let r = dev.setup_vring(queue, &setup);
        drop(dev);
        r.map(VhostUserDoorbell).map_err(|e| self.fail(e))
    }

    fn mac(&self) -> Result<[u8; 6], Error> {
        Ok(self.mac)
    }

    /// Up while the backend is connected: one non-waiting check of the socket.
    fn link_up(&self) -> Result<bool, Error> {
        if self.connected.load(Ordering::Relaxed) && !self.dev().is_connected() {
            self.gone();
        }
        Ok(self.connected.load(Ordering::Relaxed))
    }

    fn max_queue_pairs(&self) -> Result<u16, Error> {
        Ok(self.max_pairs)
    }

    fn device_control_queue(&self) -> bool {
        false
    }

    /// `QueuePairs(n)`: the rings of the first `n` pairs enabled, the others disabled
    /// (`SET_VRING_ENABLE`). Receive-mode commands are not offered (no `CTRL_RX`).
    fn control(&self, command: CtrlCommand) -> Result<(), Error> {
        let CtrlCommand::QueuePairs(pairs) = command else {
            return Err(command.failed(self.device(), CtrlFailure::Unsupported));
        };
        if pairs == 0 || pairs > self.max_pairs {
            return Err(command.failed(self.device(), CtrlFailure::Refused(1)));
        }
        let mut dev = self.dev();
        for ring in 0..2 * self.max_pairs {
            if dev.is_set_up(ring)
                && let Err(e) = dev.enable_vring(ring, ring < 2 * pairs)
            {
                drop(dev);
                return Err(self.fail(e));
            }
        }
        Ok(())
    }
}

impl crate::virtio::VirtioPort<VhostUserTransport> {
    /// Opens a virtio-net port on the vhost-user backend listening at `path` (the backend
    /// must be started first: this side is the client). `pool` must be shareable
    /// (`PktPool::new_shareable`); the rings go in one shareable region of `cfg`'s page size
    /// (4 KiB pages when hugepages are missing and `cfg.huge_pages` allows it). The MAC is
    /// `cfg.mac`, or a locally administered one from `cfg.port_id`.
    ///
    /// # Errors
    /// As [`VhostUserTransport::connect`], then as
    /// [`with_transport`](crate::virtio::VirtioPort::with_transport).
    pub fn open_vhost_user(
        path: impl AsRef<std::path::Path>,
        cfg: &crate::virtio::VirtioConfig,
        pool: &PktPool,
    ) -> Result<Self, Error> {
        let mac = cfg
            .mac
            .unwrap_or(crate::net::MacAddr::local(u32::from(cfg.port_id)));
        let transport = VhostUserTransport::connect(path, pool, mac.0)?;
        Self::with_transport(
            transport,
            cfg,
            pool,
            std::sync::Arc::new(sluice_mempool::MemfdMapper),
        )
    }

    /// How many times this port's link went down (its backend went away).
    pub fn link_downs(&self) -> u64 {
        self.shared().transport().link_downs()
    }
}
