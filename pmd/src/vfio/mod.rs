//! VFIO: user-space ownership of PCI devices.
//!
//! # The model
//!
//! VFIO (`Documentation/driver-api/vfio.rst`) hands a device to user space in three layers:
//!
//! - A **container** ([`Container`], `/dev/vfio/vfio`) is one IOMMU address space. DMA
//!   memory is mapped into it once and every device in it can reach that memory. Sluice
//!   maps mempool regions with IOVA = virtual address, so a buffer's IOVA is its pointer;
//!   the container is the mempool's [`IovaMapper`](sluice_mempool::IovaMapper) for that.
//! - A **group** (`/dev/vfio/N`) is the smallest set of devices the IOMMU can isolate from
//!   each other. A group joins a container whole, and only when it is *viable*: all its
//!   devices are bound to vfio-pci (or to nothing). Groups are handled inside the container.
//! - A **device** ([`Device`]) gives access to config space, to its BARs by `mmap` (as an
//!   [`MmioRegion`](crate::mmio::MmioRegion)), to bus mastering and to reset.
//!
//! Several devices share one container: open each with the same `Arc<Container>`.
//!
//! In **no-IOMMU mode** ([`IommuMode::NoIommu`]) groups are `noiommu-N`, nothing protects
//! memory from the device, and DMA addresses are physical ones from `/proc/self/pagemap`.
//!
//! Every ioctl lives in the private `sys` module (those of the removal watch in `sys_req`), one small function each; the layers above build typed errors
//! naming the ioctl, the device and the errno, with what to do about it.

mod container;
mod device;
mod error;
mod group;
mod info;
mod removal;
#[allow(unsafe_code)]
pub(crate) mod sys;
#[allow(unsafe_code)]
pub(crate) mod sys_req;

pub use container::{Container, IommuMode};
pub use device::{CONFIG_REGION, Device, VfioConfig};
pub use error::{BarProblem, Target, VfioError};
pub use info::{IommuInfo, IovaRange, RegionInfo, parse_iommu_info, parse_region_info};
