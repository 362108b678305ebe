//! The VFIO container: one IOMMU context (`/dev/vfio/vfio`) shared by the groups in it, and
//! the [`IovaMapper`] through which mempool regions become reachable by their devices.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use sluice_mempool::{HugeMem, Iova, IovaMap, IovaMapper, PagemapMapper};

use crate::error::Error;
use crate::pci::{IommuGroup, PciAddr, Sysfs};
use crate::vfio::group::Group;
use crate::vfio::info::{IommuInfo, parse_iommu_info};
use crate::vfio::sys;
use crate::vfio::{Target, VfioError};

/// `VFIO_API_VERSION`.
const API_VERSION: i32 = 0;
/// `VFIO_TYPE1v2_IOMMU`.
const TYPE1V2: u32 = 3;
/// `VFIO_NOIOMMU_IOMMU`.
const NOIOMMU: u32 = 8;

/// How the container's devices reach memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuMode {
    /// An IOMMU translates device addresses (`VFIO_TYPE1v2_IOMMU`); regions are mapped with
    /// IOVA = virtual address.
    Type1v2,
    /// No IOMMU (`VFIO_NOIOMMU_IOMMU`, groups `noiommu-N`): devices see physical addresses,
    /// which come from `/proc/self/pagemap`. Unsafe for the machine: a device can reach any
    /// memory. Needs `CAP_SYS_RAWIO` and hugepage-backed DMA memory.
    NoIommu,
}

impl IommuMode {
    fn name(self) -> &'static str {
        match self {
            IommuMode::Type1v2 => "type1v2 (IOMMU)",
            IommuMode::NoIommu => "no-IOMMU",
        }
    }
}

/// A VFIO container.
///
/// Create one per process (or per set of devices that share memory), open devices with
/// [`Device::open`](crate::vfio::Device::open), and allocate their DMA memory with the
/// container as the mapper:
///
/// ```no_run
/// use std::sync::Arc;
/// use sluice_mempool::{DmaRegion, HugePagePolicy, PageSize};
/// use sluice_pmd::{pci::Sysfs, vfio::{Container, Device, IommuMode}};
///
/// let container = Container::new(IommuMode::Type1v2)?;
/// let nvme = Device::open(&container, &Sysfs::system(), "00:03.0".parse()?)?;
/// let region = DmaRegion::allocate(2 << 20, PageSize::Size2M, HugePagePolicy::Require,
///                                  container.clone())?;
/// // region.iova_at(0) is what goes into the device's registers.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Drop order
///
/// Resources go device, then group, then container. Each [`Device`](crate::vfio::Device)
/// and each [`DmaRegion`](sluice_mempool::DmaRegion) mapped here holds an `Arc` of the
/// container, and the container owns its groups, so:
/// - a device's descriptor is closed before its group (the kernel refuses to detach a group
///   from its container while device descriptors are open);
/// - groups stay attached, and so the IOMMU domain and its mappings stay alive, until the last
///   device and the last DMA region are gone: a region is always unmapped from a live
///   IOMMU, never left to an IOMMU that was torn down underneath it;
/// - the container descriptor closes last (field order below).
#[derive(Debug)]
pub struct Container {
    // Declared before `fd` so that the groups (and their descriptors) drop first.
    state: Mutex<State>,
    fd: OwnedFd,
    mode: IommuMode,
}

#[derive(Debug, Default)]
struct State {
    groups: Vec<Group>,
    /// What the type1 IOMMU reported when it was set (after the first group).
    info: Option<IommuInfo>,
    /// Live DMA mappings, IOVA -> length, so that unmap undoes exactly what map did.
    mappings: BTreeMap<u64, u64>,
}

impl Container {
    /// Opens `/dev/vfio/vfio` and checks the API version and that `mode` is supported.
    ///
    /// # Errors
    ///
    /// [`VfioError::Open`] (no vfio module, no permission), [`VfioError::ApiVersion`],
    /// [`VfioError::NoExtension`] (type1 module missing, or no-IOMMU mode not enabled).
    pub fn new(mode: IommuMode) -> Result<Arc<Container>, Error> {
        let path = "/dev/vfio/vfio";
        let fd: OwnedFd = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| VfioError::Open {
                path: path.into(),
                source,
            })?
            .into();
        let version = sys::get_api_version(fd.as_fd()).map_err(ioctl("VFIO_GET_API_VERSION"))?;
        if version != API_VERSION {
            return Err(VfioError::ApiVersion {
                found: version,
                expected: API_VERSION,
            }
            .into());
        }
        let (ext, what) = match mode {
            IommuMode::Type1v2 => (TYPE1V2, "VFIO_TYPE1v2_IOMMU"),
            IommuMode::NoIommu => (NOIOMMU, "VFIO_NOIOMMU_IOMMU"),
        };
        if !sys::check_extension(fd.as_fd(), ext).map_err(ioctl("VFIO_CHECK_EXTENSION"))? {
            return Err(VfioError::NoExtension { ext, what }.into());
        }
        Ok(Arc::new(Container {
            state: Mutex::new(State::default()),
            fd,
            mode,
        }))
    }

    /// The container's IOMMU mode.
    pub fn mode(&self) -> IommuMode {
        self.mode
    }

    /// What the IOMMU reported (type1 only, once a device is open).
    pub fn iommu_info(&self) -> Option<IommuInfo> {
        self.lock().info.clone()
    }

    /// Live DMA mappings as `(iova, len)`, in IOVA order.
    pub fn mappings(&self) -> Vec<(u64, u64)> {
        self.lock().mappings.iter().map(|(&i, &l)| (i, l)).collect()
    }

    /// Runs `f` with the descriptor of `group`, opening it and adding it to the container
    /// first if this is its first device.
    ///
    /// The first group also sets the IOMMU model (the kernel needs a group before
    /// `VFIO_SET_IOMMU`) and, for type1, reads the IOMMU's page sizes and IOVA ranges.
    pub(crate) fn with_group<T>(
        &self,
        sysfs: &Sysfs,
        addr: PciAddr,
        group: &IommuGroup,
        f: impl FnOnce(&Group) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if group.noiommu != (self.mode == IommuMode::NoIommu) {
            return Err(VfioError::GroupMode {
                addr,
                group: group.node_name(),
                mode: self.mode.name(),
            }
            .into());
        }
        let mut state = self.lock();
        if let Some(g) = state.groups.iter().find(|g| g.iommu_group() == group) {
            return f(g);
        }
        let g = Group::open(sysfs, addr, group)?;
        sys::group_set_container(g.fd(), self.fd.as_fd()).map_err(|source| VfioError::Ioctl {
            target: g.target(),
            ioctl: "VFIO_GROUP_SET_CONTAINER",
            source,
        })?;
        if state.groups.is_empty() {
            let model = match self.mode {
                IommuMode::Type1v2 => TYPE1V2,
                IommuMode::NoIommu => NOIOMMU,
            };
            // If this fails, dropping `g` closes the group, which detaches it again.
            sys::set_iommu(self.fd.as_fd(), model).map_err(ioctl("VFIO_SET_IOMMU"))?;
            if self.mode == IommuMode::Type1v2 {
                let bytes =
                    sys::iommu_get_info(self.fd.as_fd()).map_err(ioctl("VFIO_IOMMU_GET_INFO"))?;
                state.info = Some(parse_iommu_info(&bytes)?);
            }
        }
        let result = f(&g);
        state.groups.push(g);
        result
    }

    /// Maps `mem` for DMA at IOVA = its virtual address (type1).
    fn map_type1(&self, mem: &HugeMem) -> Result<IovaMap, VfioError> {
        let vaddr = mem.as_ptr().as_ptr() as usize as u64;
        let len = mem.len() as u64;
        let mut state = self.lock();
        if state.groups.is_empty() {
            return Err(VfioError::NoGroupYet);
        }
        if let Some(info) = &state.info {
            let page = info.min_page();
            if !vaddr.is_multiple_of(page) || !len.is_multiple_of(page) {
                return Err(VfioError::DmaAlignment {
                    iova: vaddr,
                    len,
                    page,
                });
            }
            if !info.allows(vaddr, len) {
                return Err(VfioError::IovaOutOfRange {
                    iova: vaddr,
                    len,
                    ranges: info.ranges.clone(),
                });
            }
        }
        sys::iommu_map_dma(self.fd.as_fd(), vaddr, vaddr, len)
            .map_err(ioctl("VFIO_IOMMU_MAP_DMA"))?;
        state.mappings.insert(vaddr, len);
        Ok(IovaMap::Contiguous { base: Iova(vaddr) })
    }

    /// Unmaps exactly the mapping made for `mem` (type1v2 refuses partial unmaps).
    fn unmap_type1(&self, mem: &HugeMem) -> Result<(), VfioError> {
        let iova = mem.as_ptr().as_ptr() as usize as u64;
        let mut state = self.lock();
        let Some(len) = state.mappings.remove(&iova) else {
            return Ok(()); // never mapped here (map failed): nothing to undo
        };
        let done = sys::iommu_unmap_dma(self.fd.as_fd(), iova, len)
            .map_err(ioctl("VFIO_IOMMU_UNMAP_DMA"))?;
        if done != len {
            return Err(VfioError::PartialUnmap {
                iova,
                len,
                unmapped: done,
            });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every update is one
        // insert or remove after the ioctl succeeded), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IovaMapper for Container {
    /// Type1: `VFIO_IOMMU_MAP_DMA` with IOVA = VA, as one contiguous range. No-IOMMU: physical
    /// addresses from `/proc/self/pagemap` (hugepages only).
    fn map(&self, mem: &HugeMem) -> Result<IovaMap, sluice_mempool::Error> {
        match self.mode {
            IommuMode::Type1v2 => self
                .map_type1(mem)
                .map_err(|e| sluice_mempool::Error::Mapper {
                    mapper: self.name(),
                    source: io::Error::other(e),
                }),
            IommuMode::NoIommu => PagemapMapper.map(mem),
        }
    }

    fn unmap(&self, mem: &HugeMem, _map: &IovaMap) {
        if self.mode == IommuMode::Type1v2
            && let Err(e) = self.unmap_type1(mem)
        {
            // The trait's contract: report, don't panic. The pages stay pinned until the
            // container closes.
            eprintln!("sluice: warning: {e}");
        }
    }

    fn name(&self) -> &'static str {
        match self.mode {
            IommuMode::Type1v2 => "vfio-type1",
            IommuMode::NoIommu => "vfio-noiommu",
        }
    }
}

/// Wraps an errno from a container ioctl.
fn ioctl(name: &'static str) -> impl FnOnce(io::Error) -> VfioError {
    move |source| VfioError::Ioctl {
        target: Target::Container,
        ioctl: name,
        source,
    }
}
