//! [`SharedMemory`]: the drivers' view of DMA memory they share with their devices (NVMe
//! queue entries, PRP lists, shadow doorbells and identify pages; virtio descriptor tables
//! and available and used rings).
//!
//! This is the drivers' only unsafe module besides [`mmio`](crate::mmio). Shared memory is
//! never a Rust reference: every word is read and written through an atomic of its width,
//! little-endian (virtio-drivers keeps `UsedRing.idx` as an `AtomicU16` for the same
//! reason), so the device's DMA writes race with nothing in the Rust memory model. Offsets
//! come from the drivers' own layouts, masked ring positions and checked command ids, never
//! straight from the device; each access checks its bounds anyway and panics on a driver bug
//! rather than touch memory outside the region. What the bytes mean (an SQE, a descriptor)
//! is the drivers' business, in safe code on top of these accessors; an entry of several
//! words is one call and one bounds check ([`store_u64s`](SharedMemory::store_u64s),
//! [`load_u32s`](SharedMemory::load_u32s)).

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use sluice_mempool::{DmaRegion, Iova};

/// The atomic integer types a view of shared memory may be made of: each has the size and
/// bit validity of its integer and an alignment equal to its size.
trait AtomicWord {}
impl AtomicWord for AtomicU16 {}
impl AtomicWord for AtomicU32 {}
impl AtomicWord for AtomicU64 {}

/// A [`DmaRegion`], or a page-aligned window of one, accessed only through atomics,
/// little-endian.
///
/// Windows let several rings share one region: a vhost-user backend maps the port's ring
/// memory through one memory-table entry (the table holds 8 without `CONFIGURE_MEM_SLOTS`).
/// The region stays mapped as long as any window of it.
#[derive(Debug)]
pub struct SharedMemory {
    region: Arc<DmaRegion>,
    /// The window's first byte in the region (a multiple of 4096).
    start: usize,
    len: usize,
}

impl SharedMemory {
    /// Wraps `region` and zeroes it (NVMe queues start with phase 0, REFERENCE A3; a fresh
    /// virtqueue has every index at 0).
    pub fn new(region: DmaRegion) -> Self {
        let len = region.len();
        let m = SharedMemory {
            region: Arc::new(region),
            start: 0,
            len,
        };
        m.zero(0, m.len());
        m
    }

    /// The `len` bytes of `region` from `start` (a multiple of 4096), zeroed; `None` when
    /// the window is misaligned, empty or not inside the region.
    pub fn window(region: Arc<DmaRegion>, start: usize, len: usize) -> Option<Self> {
        let inside = start
            .checked_add(len)
            .is_some_and(|end| end <= region.len());
        if !start.is_multiple_of(4096) || len == 0 || !len.is_multiple_of(8) || !inside {
            return None;
        }
        let m = SharedMemory { region, start, len };
        m.zero(0, len);
        Some(m)
    }

    /// The region this memory is (a window of).
    pub fn region(&self) -> &Arc<DmaRegion> {
        &self.region
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the memory is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The IOVA of byte `offset`.
    #[inline]
    pub fn iova(&self, offset: usize) -> Iova {
        self.region.iova_at(self.start + offset)
    }

    /// Whether `len` bytes from `offset` are one IOVA range.
    pub fn is_contiguous(&self, offset: usize, len: usize) -> bool {
        self.region.is_iova_contiguous(self.start + offset, len)
    }

    /// A pointer to `len` bytes at `offset`, which must be aligned to `align` and inside the
    /// region: one check for a whole entry, however many words it has.
    ///
    /// # Panics
    /// Out of bounds or misaligned: a driver bug (offsets never come from the device).
    #[inline]
    fn span(&self, offset: usize, len: usize, align: usize) -> *mut u8 {
        assert!(
            offset.is_multiple_of(align)
                && offset.checked_add(len).is_some_and(|end| end <= self.len),
            "shared memory access of {len} bytes at {offset:#x} outside {:#x} bytes",
            self.len
        );
        self.region
            .as_ptr()
            .as_ptr()
            .wrapping_add(self.start + offset)
    }

    /// `N` consecutive atomics of type `A` from `offset` (aligned to `A`'s size), with one
    /// bounds check.
    #[inline]
    fn atomics<A: AtomicWord, const N: usize>(&self, offset: usize) -> [&A; N] {
        let size = size_of::<A>();
        let p = self.span(offset, N * size, size);
        core::array::from_fn(|i| {
            // SAFETY: `span` checked the `N * size` bytes from `offset` are inside the window,
            // which is inside the region (`window`), and the offset is a multiple of `size`;
            // the region and the window's start are page-aligned, so the address is too, and
            // `size` is `A`'s alignment (`AtomicWord`). The memory stays mapped as long as
            // `self` (which holds the region), which the returned references cannot outlive. Every
            // CPU access to it goes through atomics of these types and the device's DMA is
            // outside the Rust memory model, so a shared atomic view is sound.
            unsafe { &*p.wrapping_add(i * size).cast::<A>() }
        })
    }

    #[inline]
    fn atomic<A: AtomicWord>(&self, offset: usize) -> &A {
        let [a] = self.atomics::<A, 1>(offset);
        a
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

    /// Stores `words` as consecutive little-endian `u64`s from `offset` (8-aligned), in
    /// order, with one bounds check; every store is `Relaxed` (the caller's publish — a
    /// `Release` store of the ring index or flags, a fence before the doorbell — orders
    /// them).
    #[inline]
    pub fn store_u64s<const N: usize>(&self, offset: usize, words: [u64; N]) {
        for (a, w) in self.atomics::<AtomicU64, N>(offset).into_iter().zip(words) {
            a.store(w.to_le(), Ordering::Relaxed);
        }
    }

    /// Loads `N` consecutive little-endian `u32`s from `offset` (4-aligned), in order, with
    /// one bounds check; every load is `Relaxed` (the caller has already done the `Acquire`
    /// load that says the entry is the device's).
    #[inline]
    pub fn load_u32s<const N: usize>(&self, offset: usize) -> [u32; N] {
        self.atomics::<AtomicU32, N>(offset)
            .map(|a| u32::from_le(a.load(Ordering::Relaxed)))
    }

    /// Zeroes `len` bytes from `offset` (both multiples of 8).
    pub fn zero(&self, offset: usize, len: usize) {
        for o in (offset..offset + len).step_by(8) {
            self.store_u64(o, 0, Ordering::Relaxed);
        }
    }

    /// Copies `out.len()` bytes (a multiple of 4) from `offset` (4-aligned) out.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(
                &self
                    .load_u32(offset + 4 * i, Ordering::Relaxed)
                    .to_le_bytes(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mempool::{HugePagePolicy, PageSize};

    fn memory() -> SharedMemory {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        SharedMemory::new(r)
    }

    #[test]
    fn words_round_trip_little_endian() {
        let m = memory();
        m.store_u64(16, 0x1122_3344_5566_7788, Ordering::Relaxed);
        assert_eq!(m.load_u32(16, Ordering::Relaxed), 0x5566_7788);
        assert_eq!(m.load_u16(22, Ordering::Relaxed), 0x1122);
        m.store_u16(2, 7, Ordering::Release);
        assert_eq!(m.load_u32(0, Ordering::Acquire), 7 << 16);
        let mut b = [0; 8];
        m.read_bytes(16, &mut b);
        assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
        m.zero(16, 8);
        assert_eq!(m.load_u64(16, Ordering::Relaxed), 0);
        assert_eq!(m.iova(100).as_u64() - m.iova(0).as_u64(), 100);
    }

    #[test]
    fn windows_share_a_region() {
        let r = DmaRegion::identity(3 * 4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        let r = Arc::new(r);
        assert!(SharedMemory::window(r.clone(), 100, 64).is_none());
        assert!(SharedMemory::window(r.clone(), 8192, 8192).is_none());
        let a = SharedMemory::window(r.clone(), 0, 4096).unwrap();
        let b = SharedMemory::window(r.clone(), 4096, 8192).unwrap();
        b.store_u64(0, 7, Ordering::Relaxed);
        assert_eq!(a.load_u64(0, Ordering::Relaxed), 0);
        assert_eq!(b.iova(0).as_u64() - a.iova(0).as_u64(), 4096);
        assert_eq!(b.len(), 8192);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_window_ends_where_it_says() {
        let r = DmaRegion::identity(8192, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        SharedMemory::window(Arc::new(r), 0, 4096)
            .unwrap()
            .load_u16(4096, Ordering::Relaxed);
    }

    #[test]
    fn word_groups_are_consecutive() {
        let m = memory();
        m.store_u64s(32, [0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00]);
        assert_eq!(m.load_u64(40, Ordering::Relaxed), 0x99aa_bbcc_ddee_ff00);
        assert_eq!(
            m.load_u32s::<4>(32),
            [0x5566_7788, 0x1122_3344, 0xddee_ff00, 0x99aa_bbcc]
        );
        assert_eq!(m.load_u32s::<2>(36), [0x1122_3344, 0xddee_ff00]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_group_across_the_end_is_a_driver_bug() {
        memory().load_u32s::<2>(4092);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_misaligned_group_is_a_driver_bug() {
        memory().store_u64s(4, [0, 0]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_is_a_driver_bug() {
        memory().load_u16(4096, Ordering::Relaxed);
    }
}
