//! The control messages of one connection (the vhost-user specification, "Front-end message
//! types"), as rust-vmm's `vhost` crate's `VhostUserBackendReqHandlerMut`: the crate reads,
//! frames and validates each message (sizes, file descriptor counts: a message with fds it
//! should not carry is refused and its fds closed); this handler keeps the device's state
//! and the rings in [`Shared`].
//!
//! Ring addresses arrive in the frontend's own address space and are translated through the
//! memory table to guest-physical addresses, as descriptors carry them. A ring starts when it
//! has a size, addresses, a kick and the memory it lies in, and is enabled; `GET_VRING_BASE`
//! stops it. A new memory table while rings run (QEMU hot-plugging memory) re-binds every
//! started ring to it under the ring's lock: the lcore never sees the change half made, and
//! the old mappings go when the last ring lets go of them.

use std::fs::File;
use std::io;
use std::sync::Arc;

use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserShMemConfig, VhostUserSharedMsg,
    VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{
    Error as ProtocolError, GpuBackend, Result, VhostUserBackendReqHandlerMut,
    VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap};

use super::error::RingFault;
use super::guest::{GuestMap, Mem};
use super::ring::{GuestRing, RingAddrs};
use super::vring::{ControlCounters, Live, Shared, Vring};
use crate::virtio::feature;

/// Virtio features offered: no offloads (this port neither computes nor checks
/// checksums, nor segments), no indirect descriptors; `IN_ORDER` (buffers are always used in
/// the order they were made available; a packed ring's batch of buffers read goes back as
/// one used descriptor).
pub const OFFERED_FEATURES: u64 = feature::VERSION_1
    | feature::MRG_RXBUF
    | feature::EVENT_IDX
    | feature::MQ
    | feature::RING_PACKED
    | feature::IN_ORDER
    | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();

/// Largest ring accepted (the split-ring maximum).
const MAX_RING: u32 = 32768;

/// One region of the memory table: the frontend's address for it and its guest-physical one.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    user: u64,
    size: u64,
    gpa: u64,
}

/// The device as one connection sees it.
pub(crate) struct Device {
    shared: Arc<Shared>,
    features: u64,
    /// A `SET_VRING_ENABLE` was accepted since `SET_FEATURES`: from then on the frontend's
    /// requests alone enable rings (see [`Device::set_vring_kick`]).
    enables_heard: bool,
    protocol: u64,
    mem: Option<Arc<Mem>>,
    maps: Vec<Mapping>,
}

/// A request refused: answered with a failure (`REPLY_ACK`), the connection kept. Counted
/// here, before the answer goes out.
fn refuse_counted(counters: &ControlCounters, what: impl Into<String>) -> ProtocolError {
    ControlCounters::bump(&counters.refused);
    refuse(what)
}

fn refuse(what: impl Into<String>) -> ProtocolError {
    ProtocolError::ReqHandlerError(io::Error::new(io::ErrorKind::InvalidInput, what.into()))
}

impl Device {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            features: 0,
            enables_heard: false,
            protocol: 0,
            mem: None,
            maps: Vec::new(),
        }
    }

    fn counters(&self) -> &ControlCounters {
        &self.shared.counters
    }

    fn ring(&self, index: u32) -> Result<std::sync::MutexGuard<'_, Vring>> {
        self.shared
            .lock(index as usize)
            .ok_or_else(|| refuse_counted(self.counters(), format!("ring {index} does not exist")))
    }

    fn translate(&self, user: u64) -> std::result::Result<u64, RingFault> {
        self.maps
            .iter()
            .find(|m| user >= m.user && user - m.user < m.size)
            .map(|m| user - m.user + m.gpa)
            .ok_or(RingFault::Untranslated { addr: user })
    }

    /// Builds the live ring of `v` on the current memory, if it has all it needs.
    fn bind(&self, v: &mut Vring) -> std::result::Result<(), RingFault> {
        let (Some(mem), Some(a)) = (&self.mem, v.addrs) else {
            return Ok(());
        };
        if !v.kicked || v.size == 0 {
            return Ok(());
        }
        let addrs = RingAddrs {
            desc: self.translate(a.desc)?,
            driver: self.translate(a.driver)?,
            device: self.translate(a.device)?,
        };
        let base = match &v.live {
            Some(l) => l.ring.base(),
            None => v.base,
        };
        let map = GuestMap::new(mem.clone());
        let ring = if self.features & feature::RING_PACKED != 0 {
            let in_order = self.features & feature::IN_ORDER != 0;
            GuestRing::packed(&map, v.size, addrs, base, in_order)?
        } else {
            GuestRing::split(
                &map,
                v.size,
                addrs,
                base,
                self.features & feature::EVENT_IDX != 0,
            )?
        };
        v.live = Some(Live {
            ring,
            map,
            mrg_rxbuf: self.features & feature::MRG_RXBUF != 0,
            broken: false,
        });
        Ok(())
    }

    /// [`bind`](Self::bind), a fault stopping the ring and refusing the request.
    fn start(&self, v: &mut Vring) -> Result<()> {
        self.bind(v).map_err(|f| {
            v.live = None;
            v.fault = Some(f);
            refuse_counted(self.counters(), f.to_string())
        })
    }

    fn map_table(
        regions: &[VhostUserMemoryRegion],
        files: Vec<File>,
    ) -> Result<(Mem, Vec<Mapping>)> {
        let mut mapped = Vec::with_capacity(regions.len());
        let mut maps = Vec::with_capacity(regions.len());
        for (r, file) in regions.iter().zip(files) {
            // A region past the end of its file would map, then fault (SIGBUS) when touched.
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let (size, offset) = (r.memory_size, r.mmap_offset);
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(refuse(format!(
                    "memory region of {size:#x} bytes at offset {offset:#x} of a file of \
                     {len:#x} bytes"
                )));
            }
            let region = r.mmap_region::<()>(file)?;
            let region = GuestRegionMmap::new(region, GuestAddress(r.guest_phys_addr))
                .ok_or_else(|| refuse("memory region wraps around the address space"))?;
            mapped.push(region);
            maps.push(Mapping {
                user: r.user_addr,
                size: r.memory_size,
                gpa: r.guest_phys_addr,
            });
        }
        // vm-memory wants them in address order; a frontend need not send them so.
        mapped.sort_by_key(|r| r.start_addr());
        let mem = GuestMemoryMmap::from_regions(mapped)
            .map_err(|e| refuse(format!("memory table: {e}")))?;
        Ok((mem, maps))
    }
}

fn unsupported<T>(what: &'static str) -> Result<T> {
    Err(ProtocolError::InvalidOperation(what))
}

impl VhostUserBackendReqHandlerMut for Device {
    fn set_owner(&mut self) -> Result<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        self.shared.reset_all();
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.shared.reset_all();
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(OFFERED_FEATURES)
    }

    fn set_features(&mut self, features: u64) -> Result<()> {
        if features & !OFFERED_FEATURES != 0 {
            return Err(refuse_counted(
                self.counters(),
                format!(
                    "features {:#x} were not offered",
                    features & !OFFERED_FEATURES
                ),
            ));
        }
        self.features = features;
        self.enables_heard = false;
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        regions: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy: Option<bool>,
    ) -> Result<Option<Vec<VhostUserMemoryRegionBase>>> {
        let (mem, maps) = Self::map_table(regions, files).inspect_err(|_| {
            ControlCounters::bump(&self.counters().refused);
        })?;
        self.mem = Some(Arc::new(mem));
        self.maps = maps;
        ControlCounters::bump(&self.counters().mem_tables);
        // Started rings move to the new table (or stop, if it no longer holds them); rings
        // kicked before there was one start.
        for i in 0..self.shared.rings.len() {
            let Some(mut v) = self.shared.lock(i) else {
                continue;
            };
            if (v.live.is_some() || v.kicked)
                && let Err(f) = self.bind(&mut v)
            {
                v.live = None;
                v.fault = Some(f);
            }
        }
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        let mut v = self.ring(index)?;
        if num == 0 || num > MAX_RING || !num.is_power_of_two() {
            return Err(refuse(format!(
                "ring size {num}: not a power of two up to 32768"
            )));
        }
        v.size = num as u16;
        Ok(())
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        let mut v = self.ring(index)?;
        v.addrs = Some(RingAddrs {
            desc: descriptor,
            driver: available,
            device: used,
        });
        if v.live.is_some() {
            return self.start(&mut v);
        }
        Ok(())
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let mut v = self.ring(index)?;
        v.base = base as u16;
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        let mut v = self.ring(index)?;
        let base = match v.live.take() {
            Some(l) => l.ring.base(),
            None => v.base,
        };
        v.base = base;
        v.kicked = false;
        Ok(VhostUserVringState::new(index, u32::from(base)))
    }

    fn set_vring_kick(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        let mut v = self.ring(index.into())?;
        v.kicked = true;
        // Without PROTOCOL_FEATURES a ring starts enabled (vhost-user spec, "Ring states").
        // With it, it waits for SET_VRING_ENABLE; but QEMU 7.2's virtio-net sends its
        // enables before SET_FEATURES, which rust-vmm's handler refuses before they reach
        // this device ("inactive feature"), and none after: the rings would never start. So
        // until an enable is heard after SET_FEATURES, a kicked ring starts enabled, as it
        // does with DPDK's vhost library, which takes those early enables.
        if self.features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() == 0
            || !self.enables_heard
        {
            v.enabled = true;
        }
        self.start(&mut v)
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        self.ring(index.into())?.call = fd;
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        self.ring(index.into()).map(|_| ())
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        Ok(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK)
    }

    fn set_protocol_features(&mut self, features: u64) -> Result<()> {
        self.protocol = features;
        Ok(())
    }

    /// In rings, as rust-vmm's frontend counts (it refuses ring indices at or above the
    /// answer); a frontend that counts queue pairs (DPDK) sees room for more than it gets
    /// and is held to the rings that exist by [`ring`](Self::ring).
    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(self.shared.rings.len() as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        self.enables_heard = true;
        self.ring(index)?.enabled = enable;
        Ok(())
    }

    fn get_config(&mut self, _: u32, _: u32, _: VhostUserConfigFlags) -> Result<Vec<u8>> {
        unsupported("GET_CONFIG")
    }

    fn set_config(&mut self, _: u32, _: &[u8], _: VhostUserConfigFlags) -> Result<()> {
        unsupported("SET_CONFIG")
    }

    fn set_gpu_socket(&mut self, _: GpuBackend) -> Result<()> {
        unsupported("GPU_SET_SOCKET")
    }

    fn get_shared_object(&mut self, _: VhostUserSharedMsg) -> Result<File> {
        unsupported("GET_SHARED_OBJECT")
    }

    fn get_inflight_fd(&mut self, _: &VhostUserInflight) -> Result<(VhostUserInflight, File)> {
        unsupported("GET_INFLIGHT_FD")
    }

    fn set_inflight_fd(&mut self, _: &VhostUserInflight, _: File) -> Result<()> {
        unsupported("SET_INFLIGHT_FD")
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        unsupported("GET_MAX_MEM_SLOTS")
    }

    fn add_mem_region(
        &mut self,
        _: &VhostUserSingleMemoryRegion,
        _: File,
        _: Option<bool>,
    ) -> Result<Option<VhostUserMemoryRegionBase>> {
        unsupported("ADD_MEM_REG")
    }

    fn remove_mem_region(&mut self, _: &VhostUserSingleMemoryRegion) -> Result<()> {
        unsupported("REM_MEM_REG")
    }

    fn set_device_state_fd(
        &mut self,
        _: VhostTransferStateDirection,
        _: VhostTransferStatePhase,
        _: File,
    ) -> Result<Option<File>> {
        unsupported("SET_DEVICE_STATE_FD")
    }

    fn check_device_state(&mut self) -> Result<()> {
        unsupported("CHECK_DEVICE_STATE")
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        unsupported("GET_SHMEM_CONFIG")
    }

    fn set_log_base(&mut self, _: &VhostUserLog, _: File) -> Result<()> {
        unsupported("SET_LOG_BASE")
    }
}
