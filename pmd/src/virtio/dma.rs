//! [`RingMemory`]: the driver's view of a virtqueue's memory (descriptor table, available
//! and used rings), shared with the device.
//!
//! This is the virtio driver's only unsafe module besides [`mmio`](crate::mmio). Shared
//! memory is never a Rust reference: every word is read and written through an atomic of
//! its width (virtio-drivers keeps `UsedRing.idx` as an `AtomicU16` for the same reason),
//! so the device's DMA writes race with nothing in the Rust memory model. Offsets come from
//! the driver's own layout and masked ring positions, never from the device; each access
//! checks its bounds anyway and panics on a driver bug rather than touch memory outside
//! the region.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use sluice_mempool::{DmaRegion, Iova};

/// A [`DmaRegion`] accessed only through atomics, little-endian.
#[derive(Debug)]
pub struct RingMemory {
    region: DmaRegion,
}

impl RingMemory {
    /// Wraps `region` and zeroes it (a fresh ring has every index at 0).
    pub fn new(region: DmaRegion) -> Self {
        let m = RingMemory { region };
        for o in (0..m.region.len()).step_by(8) {
            m.atomic::<AtomicU64>(o).store(0, Ordering::Relaxed);
        }
        m
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the region is empty (never).
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// The IOVA of byte `offset`.
    #[inline]
    pub fn iova(&self, offset: usize) -> Iova {
        self.region.iova_at(offset)
    }

    /// Whether `len` bytes from `offset` are one IOVA range.
    pub fn is_contiguous(&self, offset: usize, len: usize) -> bool {
        self.region.is_iova_contiguous(offset, len)
    }

    #[inline]
    fn atomic<A>(&self, offset: usize) -> &A {
        let size = core::mem::size_of::<A>();
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.region.len(),
            "ring memory access of {size} bytes at {offset:#x} outside {:#x} bytes",
            self.region.len()
        );
        let p = self
            .region
            .as_ptr()
            .as_ptr()
            .wrapping_add(offset)
            .cast::<A>();
        // SAFETY: in bounds and aligned to the atomic's size (checked above; the region is
        // page-aligned); the memory lives as long as `self`. `A` is only ever one of the
        // atomic integer types below, which have the size and alignment of their integer.
        // Every CPU access to this memory goes through atomics, and the device's DMA is
        // outside the Rust memory model, so a shared atomic view is sound.
        unsafe { &*p }
    }

    /// Loads the little-endian `u16` at `offset`.
    #[inline]
    pub fn load_u16(&self, offset: usize, order: Ordering) -> u16 {
        u16::from_le(self.atomic::<AtomicU16>(offset).load(order))
    }

    /// Stores a little-endian `u16` at `offset`.
    #[inline]
    pub fn store_u16(&self, offset: usize, value: u16, order: Ordering) {
        self.atomic::<AtomicU16>(offset).store(value.to_le(), order);
    }

    /// Loads the little-endian `u32` at `offset`.
    #[inline]
    pub fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        u32::from_le(self.atomic::<AtomicU32>(offset).load(order))
    }

    /// Stores a little-endian `u32` at `offset`.
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.atomic::<AtomicU32>(offset).store(value.to_le(), order);
    }

    /// Loads the little-endian `u64` at `offset`.
    #[inline]
    pub fn load_u64(&self, offset: usize, order: Ordering) -> u64 {
        u64::from_le(self.atomic::<AtomicU64>(offset).load(order))
    }

    /// Stores a little-endian `u64` at `offset`.
    #[inline]
    pub fn store_u64(&self, offset: usize, value: u64, order: Ordering) {
        self.atomic::<AtomicU64>(offset).store(value.to_le(), order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mempool::{HugePagePolicy, PageSize};

    #[test]
    fn words_round_trip_little_endian() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        let m = RingMemory::new(r);
        m.store_u64(16, 0x1122_3344_5566_7788, Ordering::Relaxed);
        assert_eq!(m.load_u32(16, Ordering::Relaxed), 0x5566_7788);
        assert_eq!(m.load_u16(22, Ordering::Relaxed), 0x1122);
        m.store_u16(2, 7, Ordering::Release);
        assert_eq!(m.load_u32(0, Ordering::Acquire), 7 << 16);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_is_a_driver_bug() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        RingMemory::new(r).load_u16(4096, Ordering::Relaxed);
    }
}
