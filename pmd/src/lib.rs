//! Sluice poll-mode drivers: the device layer (PCI, VFIO, MMIO), the drivers (virtio-net,
//! NVMe, and software ports that need no device), and the net-port and block-queue APIs
//! that applications and embedding services program against.
//!
//! Buffers come from `sluice-mempool`: [`PktBuf`]s from a [`PktPool`] for packets, moved
//! through queues in [`Batch`]es of [`DEFAULT_BURST`]. Together with that crate this is the
//! embeddable unit: nothing here starts threads, reads global configuration or installs
//! signal handlers.
//!
//! # The device layer
//!
//! - [`pci`]: addresses, sysfs enumeration and binding, config space, capability lists.
//! - [`vfio`]: containers, groups and devices; DMA mapping of mempool regions.
//! - [`regs`]: [`Registers`](regs::Registers), the one trait drivers reach registers through.
//! - [`mmio`]: [`MmioRegion`], the one type through which registers are read and written.
//! - [`shared_mem`]: [`SharedMemory`], the one type through which memory shared with a
//!   device (queues, rings) is read and written.
//! - [`quiesce`]: [`DeviceHold`](quiesce::DeviceHold), which keeps what a device may still
//!   touch until its owner confirms the device stopped (every driver's teardown rule).
//!
//! # Ports
//!
//! - [`net`]: the net-port API (per-queue [`net::RxQueue`]/[`net::TxQueue`] handles, burst
//!   calls over [`Batch`]es, per-queue counters) and [`net::any`], the run-time driver choice.
//! - [`soft`]: drivers that need no device (the in-memory port pair, AF_XDP sockets).
//! - [`virtio`]: the virtio-net poll-mode driver (split and packed virtqueues, modern PCI
//!   over VFIO), and a vhost-user frontend.
//!
//! # Storage
//!
//! - [`nvme`]: the NVMe poll-mode driver (controller bring-up, admin and I/O queue pairs,
//!   PRPs, shadow doorbells).
//! - [`block`]: the block queue-pair API, implemented by [`nvme::IoQpair`] and by
//!   [`block::RamDisk`].
//!
//! # Features
//! - `test-utils`: `pci::fake::FakeSysfs`, a sysfs tree in a temporary directory, and
//!   `nvme::model::SoftNvme`, a software NVMe controller, and `virtio::model::SoftVirtioNet`,
//!   a software virtio-net device; `soft::af_xdp::fake_kernel::FakeKernel`, AF_XDP queues on
//!   rings whose kernel side the caller plays. The fuzz targets (`fuzz/`) use them.
#![deny(unsafe_code)]

pub mod block;
pub mod error;
#[allow(unsafe_code)]
pub mod mmio;
pub mod net;
pub mod nvme;
pub mod pci;
pub mod quiesce;
pub mod regs;
#[allow(unsafe_code)]
pub mod shared_mem;
pub mod soft;
pub mod vfio;
pub mod virtio;

pub use error::Error;
pub use mmio::MmioRegion;
pub use shared_mem::SharedMemory;
pub use sluice_mempool as mempool;
pub use sluice_mempool::{
    Batch, DEFAULT_BURST, IdentityMapper, Iova, PktBuf, PktMeta, PktPool, PktPoolConfig,
};
pub use vfio::Target;
