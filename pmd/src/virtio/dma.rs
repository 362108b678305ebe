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
        // SAFETY: `span` checked `size` bytes at `offset`, aligned to `size`.
        unsafe { &*self.span(offset, size, size).cast::<A>() }
    }

    /// A pointer to `len` bytes at `offset`, which must be aligned to `align` and inside the
    /// region: one check for a whole ring entry, however many words it has.
    ///
    /// # Panics
    /// Out of bounds or misaligned: a driver bug (offsets never come from the device).
    #[inline]
    fn span(&self, offset: usize, len: usize, align: usize) -> *mut u8 {
        assert!(
            offset.is_multiple_of(align) && offset + len <= self.region.len(),
            "ring memory access of {len} bytes at {offset:#x} outside {:#x} bytes",
            self.region.len()
        );
        // In bounds (checked above; the region is page-aligned, so the offset's alignment is
        // the address's). Only the atomic integer types below are ever made from it, each
        // with the size and alignment of its integer; every CPU access to this memory goes
        // through atomics, and the device's DMA is outside the Rust memory model, so a
        // shared atomic view is sound as long as the memory lives, which is as long as `self`.
        self.region.as_ptr().as_ptr().wrapping_add(offset)
    }

    /// Writes a 16-byte split-ring descriptor at `offset` (16-aligned): the address, then
    /// length, flags and next as one 8-byte little-endian word — two stores and one bounds
    /// check instead of four of each (virtio 1.2 §2.7.5 layout: `addr` u64, `len` u32,
    /// `flags` u16, `next` u16).
    #[inline]
    pub fn store_desc(&self, offset: usize, addr: u64, len: u32, flags: u16, next: u16) {
        let tail = u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48;
        self.store_desc_words(offset, addr, tail);
    }

    /// Writes a 16-byte descriptor at `offset` (16-aligned) as its two little-endian 8-byte
    /// words, the address and the rest, with one bounds check; both stores are `Relaxed`
    /// (the ring's publish orders them).
    #[inline]
    pub fn store_desc_words(&self, offset: usize, addr: u64, tail: u64) {
        let p = self.span(offset, 16, 16);
        // SAFETY: `span` checked 16 bytes at a 16-aligned offset: two aligned 8-byte words.
        let (a, b) = unsafe {
            (
                &*p.cast::<AtomicU64>(),
                &*p.wrapping_add(8).cast::<AtomicU64>(),
            )
        };
        a.store(addr.to_le(), Ordering::Relaxed);
        b.store(tail.to_le(), Ordering::Relaxed);
    }

    /// Reads an 8-byte used-ring element `{id: u32, len: u32}` at `offset` (4-aligned, as
    /// used elements are) with one bounds check.
    #[inline]
    pub fn load_used_elem(&self, offset: usize) -> (u32, u32) {
        // Used elements sit 4 bytes past the ring's start: 8 bytes, 4-aligned.
        let p = self.span(offset, 8, 4);
        // SAFETY: `span` checked 8 bytes at a 4-aligned offset: two aligned 4-byte words.
        let (id, len) = unsafe {
            (
                &*p.cast::<AtomicU32>(),
                &*p.wrapping_add(4).cast::<AtomicU32>(),
            )
        };
        (
            u32::from_le(id.load(Ordering::Relaxed)),
            u32::from_le(len.load(Ordering::Relaxed)),
        )
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
    fn descriptors_and_used_elements_have_the_spec_layout() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        let m = RingMemory::new(r);
        m.store_desc(32, 0x1122_3344_5566_7788, 0x99aa_bbcc, 0x0003, 0xddee);
        assert_eq!(m.load_u64(32, Ordering::Relaxed), 0x1122_3344_5566_7788);
        assert_eq!(m.load_u32(40, Ordering::Relaxed), 0x99aa_bbcc);
        assert_eq!(m.load_u16(44, Ordering::Relaxed), 0x0003);
        assert_eq!(m.load_u16(46, Ordering::Relaxed), 0xddee);
        m.store_u32(100, 7, Ordering::Relaxed);
        m.store_u32(104, 60, Ordering::Relaxed);
        assert_eq!(m.load_used_elem(100), (7, 60));
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_used_element_across_the_end_is_a_driver_bug() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        RingMemory::new(r).load_used_elem(4092);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_is_a_driver_bug() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        RingMemory::new(r).load_u16(4096, Ordering::Relaxed);
    }
}
