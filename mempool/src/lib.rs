//! Sluice memory: DMA-able hugepage memory and its device addresses (object pools, packet
//! buffers and the SPSC ring are being added).
//!
//! # Model
//!
//! * [`HugeMem`] is an anonymous mapping of 2 MiB or 1 GiB hugepages (or 4 KiB pages, by policy
//!   or as a warned fallback), prefaulted, zero-filled and locked. It hands out raw pointers,
//!   never slices: a device may write any of it at any time.
//! * An [`IovaMapper`] says at which device addresses ([`Iova`]) such memory is reachable:
//!   [`IdentityMapper`] (IOVA = VA: software devices, and VFIO type1 after the container has
//!   registered the region with the IOMMU), [`PagemapMapper`] (IOVA = physical address, VFIO
//!   no-IOMMU mode), or a VFIO container in `sluice-pmd` implementing the trait itself.
//! * [`DmaRegion`] ties the two together: memory plus an [`IovaMap`], unmapped from the device
//!   before the memory is freed. Everything a device touches lives in one.
//!
//! Addresses are typed: [`Iova`] and [`PhysAddr`] are distinct newtypes and virtual addresses
//! are pointers, so a driver cannot hand a device a virtual address by mistake.
#![deny(unsafe_code)]

pub mod addr;
pub mod dma;
pub mod error;
pub mod iova;
pub mod mem;

// Unused until the ring and the pool import from it.
#[allow(unused_imports)]
#[allow(dead_code)]
mod sync;

pub use addr::{Iova, PhysAddr};
pub use dma::DmaRegion;
pub use error::Error;
pub use iova::{IdentityMapper, IovaMap, IovaMapper, PagemapMapper};
pub use mem::{HugeMem, HugePagePolicy, PageSize};
