//! [`VhostUserDevice`]: the frontend side of one vhost-user connection, on rust-vmm's
//! `vhost` crate (the vhost-user specification, "Front-end message types"), and
//! [`Doorbell`], a ring's kick.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_mempool::{DmaRegion, FdRegion};
use vhost::vhost_user::message::{VHOST_USER_MAX_VRINGS, VhostUserHeaderFlag};
use vhost::vhost_user::{
    Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::error::{RingFault, VhostUserError, is_disconnect, is_timeout};
use crate::virtio::RingKind;
use crate::virtio::ring::MAX_QUEUE_SIZE;

/// Regions a `SET_MEM_TABLE` may carry (the specification's `VHOST_MEMORY_BASELINE_NREGIONS`);
/// more need `CONFIGURE_MEM_SLOTS` and `ADD_MEM_REG`.
pub const MEM_TABLE_REGIONS: usize = 8;

/// How long a reply may take before the backend counts as hung: bring-up and teardown
/// messages only, never the datapath.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The vhost-user feature bit that announces protocol features (`VHOST_USER_F_PROTOCOL_FEATURES`,
/// bit 30): transport business, never passed on as a virtio feature.
const PROTOCOL_FEATURES: u64 = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();

/// Protocol features this frontend accepts when offered; `REPLY_ACK` is also required.
fn wanted_protocol_features() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
}

/// Where a ring lives, as addresses in this process (the backend translates them through
/// the memory table, vhost-user `SET_VRING_ADDR`), and its format and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VringSetup {
    /// Split or packed.
    pub kind: RingKind,
    /// Entries (descriptors).
    pub size: u16,
    /// The descriptor table (split) or descriptor ring (packed).
    pub desc: u64,
    /// The driver area: the available ring (split) or the driver event suppression (packed).
    pub driver: u64,
    /// The device area: the used ring (split) or the device event suppression (packed).
    pub device: u64,
}

impl VringSetup {
    /// The `SET_VRING_BASE` value of a fresh ring: index 0; a packed ring starts with both
    /// wrap counters at 1 (virtio 1.2 §2.8.1), which vhost-user carries in bit 15.
    fn fresh_base(&self) -> u16 {
        match self.kind {
            RingKind::Split => 0,
            RingKind::Packed => 1 << 15,
        }
    }
}

/// A ring's kick: one write to its eventfd, which the backend polls (vhost-user
/// `SET_VRING_KICK`). The ring decides when a kick is needed (`NO_NOTIFY`, event index);
/// this only delivers it.
#[derive(Clone)]
pub struct Doorbell {
    kick: Arc<EventFd>,
    ring: u16,
}

impl Doorbell {
    /// Tells the backend ring `ring` has new buffers: one `write(2)`, which never blocks.
    ///
    /// # Errors
    /// [`VhostUserError::Kick`] only if the eventfd itself fails (closed descriptor). A full
    /// counter (`EAGAIN`) means the backend has kicks pending already: success.
    #[inline]
    pub fn kick(&self) -> Result<(), VhostUserError> {
        match self.kick.write(1) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(VhostUserError::Kick {
                ring: self.ring,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The ring this doorbell kicks.
    pub fn ring(&self) -> u16 {
        self.ring
    }
}

impl core::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Doorbell")
            .field("ring", &self.ring)
            .field("fd", &self.kick.as_raw_fd())
            .finish()
    }
}

/// The eventfds of a ring that is set up.
struct RingFds {
    kick: Arc<EventFd>,
    /// Given to the backend for completions; never read (poll mode), kept open so that its
    /// writes do not fail.
    _call: EventFd,
}

/// One connection to a vhost-user backend, from this side: the virtio device behind it is the
/// backend, and this process is the driver.
///
/// Bring-up order (as QEMU and DPDK's virtio-user send it): [`connect`](Self::connect)
/// (`SET_OWNER`, `GET_FEATURES`, protocol features), [`negotiate`](Self::negotiate)
/// (`SET_FEATURES`), [`set_mem_table`](Self::set_mem_table), then per ring
/// [`setup_vring`](Self::setup_vring) (size, base, addresses, call and kick eventfds,
/// enable). Teardown: [`stop_vring`](Self::stop_vring) or [`stop_all`](Self::stop_all)
/// (`GET_VRING_BASE`, after which the backend no longer touches the ring), then drop.
///
/// Not used on the datapath: rings are polled, and a kick goes through a [`Doorbell`].
pub struct VhostUserDevice {
    path: PathBuf,
    frontend: Frontend,
    offered: u64,
    acked: u64,
    offered_protocol: VhostUserProtocolFeatures,
    protocol: VhostUserProtocolFeatures,
    /// `GET_QUEUE_NUM` when `MQ` was negotiated.
    queue_num: Option<u64>,
    rings: Vec<Option<RingFds>>,
    /// Watches the socket for the backend's end (hang-up), without reading it.
    hangup: Epoll,
}

impl VhostUserDevice {
    /// Connects to the backend listening at `path`, claims it (`SET_OWNER`), reads its
    /// features and negotiates protocol features: `REPLY_ACK` is required (every message is
    /// then acknowledged, so a refusal surfaces at the message that caused it), `MQ` and
    /// `CONFIGURE_MEM_SLOTS` are taken when offered.
    ///
    /// # Errors
    /// [`VhostUserError::NoBackend`] when nothing listens at `path`;
    /// [`VhostUserError::ProtocolFeatureMissing`] without `PROTOCOL_FEATURES` or `REPLY_ACK`;
    /// a protocol error as [`VhostUserError::Request`] or
    /// [`Disconnected`](VhostUserError::Disconnected).
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, VhostUserError> {
        let path = path.as_ref().to_path_buf();
        let sock = UnixStream::connect(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                VhostUserError::NoBackend {
                    path: path.clone(),
                    source,
                }
            }
            _ => VhostUserError::Connect {
                path: path.clone(),
                source,
            },
        })?;
        // A backend that stops answering fails bring-up or teardown instead of hanging it.
        sock.set_read_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| sock.set_write_timeout(Some(REPLY_TIMEOUT)))
            .map_err(|source| VhostUserError::Connect {
                path: path.clone(),
                source,
            })?;
        let hangup = Epoll::new()
            .and_then(|e| {
                let watch = EpollEvent::new(
                    EventSet::READ_HANG_UP | EventSet::HANG_UP | EventSet::ERROR,
                    0,
                );
                e.ctl(ControlOperation::Add, sock.as_raw_fd(), watch)
                    .map(|()| e)
            })
            .map_err(|source| VhostUserError::Connect {
                path: path.clone(),
                source,
            })?;
        let mut dev = VhostUserDevice {
            path,
            hangup,
            // Ring indices are checked here against GET_QUEUE_NUM, not by the crate: for a
            // net device DPDK answers in queue pairs, rust-vmm backends in rings.
            frontend: Frontend::from_stream(sock, VHOST_USER_MAX_VRINGS),
            offered: 0,
            acked: 0,
            offered_protocol: VhostUserProtocolFeatures::empty(),
            protocol: VhostUserProtocolFeatures::empty(),
            queue_num: None,
            rings: Vec::new(),
        };
        dev.call("SET_OWNER", |f| f.set_owner())?;
        dev.offered = dev.call("GET_FEATURES", |f| f.get_features())?;
        dev.negotiate_protocol()?;
        Ok(dev)
    }

    fn negotiate_protocol(&mut self) -> Result<(), VhostUserError> {
        let path = self.path.clone();
        let missing = |feature| VhostUserError::ProtocolFeatureMissing {
            path: path.clone(),
            feature,
        };
        if self.offered & PROTOCOL_FEATURES == 0 {
            return Err(missing("PROTOCOL_FEATURES (feature bit 30)"));
        }
        let offered = self.call("GET_PROTOCOL_FEATURES", |f| f.get_protocol_features())?;
        self.offered_protocol = offered;
        if !offered.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            return Err(missing("REPLY_ACK"));
        }
        let accepted = offered & wanted_protocol_features();
        self.call("SET_PROTOCOL_FEATURES", |f| {
            f.set_protocol_features(accepted)
        })?;
        self.protocol = accepted;
        self.frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        if accepted.contains(VhostUserProtocolFeatures::MQ) {
            self.queue_num = Some(self.call("GET_QUEUE_NUM", |f| f.get_queue_num())?);
        }
        Ok(())
    }

    /// Sends one message through the crate, naming it in the error.
    fn call<T>(
        &mut self,
        request: &'static str,
        f: impl FnOnce(&mut Frontend) -> vhost::Result<T>,
    ) -> Result<T, VhostUserError> {
        f(&mut self.frontend).map_err(|source| {
            let path = self.path.clone();
            if is_timeout(&source) {
                VhostUserError::NoReply { path, request }
            } else if is_disconnect(&source) {
                VhostUserError::Disconnected {
                    path,
                    request,
                    source,
                }
            } else {
                VhostUserError::Request {
                    path,
                    request,
                    source,
                }
            }
        })
    }

    /// Whether the backend is still there: its end of the socket is open. One `epoll_wait`
    /// that does not wait (control path; the socket is not read).
    pub fn is_connected(&self) -> bool {
        let mut events = [EpollEvent::default()];
        !matches!(self.hangup.wait(0, &mut events), Ok(n) if n > 0)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The virtio features the backend offers (bit 30, `PROTOCOL_FEATURES`, cleared: it is
    /// not a device feature).
    pub fn device_features(&self) -> u64 {
        self.offered & !PROTOCOL_FEATURES
    }

    /// The virtio features accepted by [`negotiate`](Self::negotiate) (0 before).
    pub fn features(&self) -> u64 {
        self.acked & !PROTOCOL_FEATURES
    }

    /// The protocol features the backend offers (those the `vhost` crate knows).
    pub fn device_protocol_features(&self) -> VhostUserProtocolFeatures {
        self.offered_protocol
    }

    /// The protocol features in use.
    pub fn protocol_features(&self) -> VhostUserProtocolFeatures {
        self.protocol
    }

    /// The backend's `GET_QUEUE_NUM` answer when it offered `MQ`. Its unit is the backend's:
    /// DPDK's vhost library counts queue pairs, rust-vmm's `vhost-user-backend` rings.
    pub fn queue_num(&self) -> Option<u64> {
        self.queue_num
    }

    /// Accepts `required` and whatever of `optional` the backend offers (`SET_FEATURES`) and
    /// returns the virtio features now in force.
    ///
    /// # Errors
    /// [`VhostUserError::FeaturesRefused`] naming every required feature the backend does not
    /// offer; [`VhostUserError::Request`] if it rejects the set.
    pub fn negotiate(&mut self, required: u64, optional: u64) -> Result<u64, VhostUserError> {
        let missing = required & !self.offered;
        if missing != 0 {
            return Err(VhostUserError::FeaturesRefused {
                path: self.path.clone(),
                missing,
                offered: self.device_features(),
            });
        }
        // Bit 30 stays on: with it, rings start disabled and are enabled by SET_VRING_ENABLE
        // (vhost-user "Ring states"), which is how queue pairs are switched on and off.
        let accepted = (self.offered & (required | optional)) | PROTOCOL_FEATURES;
        self.call("SET_FEATURES", |f| f.set_features(accepted))?;
        self.acked = accepted;
        Ok(self.features())
    }

    /// Tells the backend where this process's shareable memory is (`SET_MEM_TABLE`, or one
    /// `ADD_MEM_REG` per region beyond 8 with `CONFIGURE_MEM_SLOTS`): each region's fd, offset,
    /// length, address here (the user address, which ring addresses are given in) and IOVA
    /// (the guest address, which descriptors carry; the same with the memfd mapper).
    ///
    /// # Errors
    /// [`VhostUserError::TooManyRegions`] over the backend's limit, and the protocol errors.
    pub fn set_mem_table(&mut self, regions: &[FdRegion<'_>]) -> Result<(), VhostUserError> {
        let mut table: Vec<VhostUserMemoryRegionInfo> = regions
            .iter()
            .map(|r| VhostUserMemoryRegionInfo {
                guest_phys_addr: r.iova.as_u64(),
                memory_size: r.len,
                userspace_addr: r.va,
                mmap_offset: r.offset,
                mmap_handle: r.fd.as_raw_fd(),
            })
            .collect();
        // In guest-address order: rust-vmm's backends (vm-memory) refuse an unsorted table.
        table.sort_by_key(|r| r.guest_phys_addr);
        if table.len() <= MEM_TABLE_REGIONS && !table.is_empty() {
            return self.call("SET_MEM_TABLE", |f| f.set_mem_table(&table).map(drop));
        }
        let max = if self
            .protocol
            .contains(VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS)
        {
            self.call("GET_MAX_MEM_SLOTS", |f| f.get_max_mem_slots())?
        } else {
            MEM_TABLE_REGIONS as u64
        };
        if table.is_empty() || table.len() as u64 > max {
            return Err(VhostUserError::TooManyRegions {
                path: self.path.clone(),
                count: table.len(),
                max,
            });
        }
        for region in &table {
            self.call("ADD_MEM_REG", |f| f.add_mem_region(region).map(drop))?;
        }
        Ok(())
    }

    /// [`set_mem_table`](Self::set_mem_table) for regions as allocated: each must be
    /// shareable ([`DmaRegion::fd_region`]).
    ///
    /// # Errors
    /// [`VhostUserError::NotShareable`] naming the first region that is not; then as
    /// [`set_mem_table`](Self::set_mem_table).
    pub fn set_memory(&mut self, regions: &[&DmaRegion]) -> Result<(), VhostUserError> {
        let table = regions
            .iter()
            .enumerate()
            .map(|(index, r)| {
                r.fd_region().ok_or_else(|| VhostUserError::NotShareable {
                    path: self.path.clone(),
                    index,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.set_mem_table(&table)
    }

    fn ring_error(&self, ring: u16, why: RingFault) -> VhostUserError {
        VhostUserError::Ring {
            path: self.path.clone(),
            ring,
            why,
        }
    }

    /// Sets ring `ring` up and enables it: size, a fresh base, addresses, call and kick
    /// eventfds (`SET_VRING_NUM`, `_BASE`, `_ADDR`, `_CALL`, `_KICK`, `_ENABLE`). The returned
    /// doorbell kicks it.
    ///
    /// # Errors
    /// [`VhostUserError::Ring`] for an index beyond the backend's rings, a bad size or a ring
    /// already set up; [`VhostUserError::EventFd`]; the protocol errors.
    pub fn setup_vring(
        &mut self,
        ring: u16,
        setup: &VringSetup,
    ) -> Result<Doorbell, VhostUserError> {
        if let Some(queue_num) = self.queue_num {
            // Counted in rings or in queue pairs, the backend has at most twice as many rings.
            if u64::from(ring) >= queue_num.saturating_mul(2) {
                return Err(self.ring_error(ring, RingFault::OutOfRange { queue_num }));
            }
        }
        if self.acked == 0 {
            return Err(self.ring_error(ring, RingFault::BeforeFeatures));
        }
        if setup.size == 0 || setup.size > MAX_QUEUE_SIZE {
            return Err(self.ring_error(ring, RingFault::BadSize { size: setup.size }));
        }
        let i = usize::from(ring);
        if self.rings.get(i).is_some_and(Option::is_some) {
            return Err(self.ring_error(ring, RingFault::AlreadySetUp));
        }
        let eventfd = || {
            EventFd::new(EFD_NONBLOCK).map_err(|source| VhostUserError::EventFd {
                path: self.path.clone(),
                ring,
                source,
            })
        };
        let (kick, call) = (eventfd()?, eventfd()?);
        let addrs = VringConfigData {
            queue_max_size: setup.size,
            queue_size: setup.size,
            flags: 0,
            desc_table_addr: setup.desc,
            used_ring_addr: setup.device,
            avail_ring_addr: setup.driver,
            log_addr: None,
        };
        self.call("SET_VRING_NUM", |f| f.set_vring_num(i, setup.size))?;
        self.call("SET_VRING_BASE", |f| {
            f.set_vring_base(i, setup.fresh_base())
        })?;
        self.call("SET_VRING_ADDR", |f| f.set_vring_addr(i, &addrs))?;
        self.call("SET_VRING_CALL", |f| f.set_vring_call(i, &call))?;
        self.call("SET_VRING_KICK", |f| f.set_vring_kick(i, &kick))?;
        self.call("SET_VRING_ENABLE", |f| f.set_vring_enable(i, true))?;
        let kick = Arc::new(kick);
        if self.rings.len() <= i {
            self.rings.resize_with(i + 1, || None);
        }
        self.rings[i] = Some(RingFds {
            kick: kick.clone(),
            _call: call,
        });
        Ok(Doorbell { kick, ring })
    }

    /// Enables or disables a ring that is set up (`SET_VRING_ENABLE`): how queue pairs are
    /// switched on and off without a control queue at the backend.
    ///
    /// # Errors
    /// [`VhostUserError::Ring`] for a ring not set up; the protocol errors.
    pub fn enable_vring(&mut self, ring: u16, enable: bool) -> Result<(), VhostUserError> {
        if !self.is_set_up(ring) {
            return Err(self.ring_error(ring, RingFault::NotSetUp));
        }
        let i = usize::from(ring);
        self.call("SET_VRING_ENABLE", |f| f.set_vring_enable(i, enable))
    }

    /// Another doorbell of a ring that is set up.
    pub fn doorbell(&self, ring: u16) -> Option<Doorbell> {
        let fds = self.rings.get(usize::from(ring))?.as_ref()?;
        Some(Doorbell {
            kick: fds.kick.clone(),
            ring,
        })
    }

    /// Whether ring `ring` is set up (and not stopped).
    pub fn is_set_up(&self, ring: u16) -> bool {
        self.rings
            .get(usize::from(ring))
            .is_some_and(Option::is_some)
    }

    /// Stops ring `ring` (`SET_VRING_ENABLE` off, then `GET_VRING_BASE`) and returns the
    /// backend's base: its next available index, for a packed ring with the wrap counter in
    /// bit 15. Once it answers, the backend no longer touches the ring. The ring counts as
    /// stopped here even when the backend has gone away.
    ///
    /// # Errors
    /// [`VhostUserError::Ring`] for a ring not set up; the protocol errors.
    pub fn stop_vring(&mut self, ring: u16) -> Result<u32, VhostUserError> {
        let i = usize::from(ring);
        let Some(fds) = self.rings.get_mut(i).and_then(Option::take) else {
            return Err(self.ring_error(ring, RingFault::NotSetUp));
        };
        let stopped = self
            .call("SET_VRING_ENABLE", |f| f.set_vring_enable(i, false))
            .and_then(|()| self.call("GET_VRING_BASE", |f| f.get_vring_base(i)));
        drop(fds);
        stopped
    }

    /// Stops every ring that is set up, in index order, and returns `(ring, base)` for each.
    ///
    /// # Errors
    /// The first ring's error; the rings after it are still marked stopped here (their
    /// eventfds closed) but the backend was not asked.
    pub fn stop_all(&mut self) -> Result<Vec<(u16, u32)>, VhostUserError> {
        let set_up: Vec<u16> = (0..self.rings.len() as u16)
            .filter(|&r| self.is_set_up(r))
            .collect();
        let mut bases = Vec::with_capacity(set_up.len());
        for (n, &ring) in set_up.iter().enumerate() {
            match self.stop_vring(ring) {
                Ok(base) => bases.push((ring, base)),
                Err(e) => {
                    for &rest in &set_up[n + 1..] {
                        self.rings[usize::from(rest)] = None;
                    }
                    return Err(e);
                }
            }
        }
        Ok(bases)
    }
}

impl core::fmt::Debug for VhostUserDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VhostUserDevice")
            .field("path", &self.path)
            .field("features", &format_args!("{:#x}", self.features()))
            .field("protocol", &self.protocol)
            .field("queue_num", &self.queue_num)
            .finish()
    }
}
