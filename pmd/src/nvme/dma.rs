//! [`QueueMemory`]: the driver's view of DMA memory it shares with the controller (queue
//! entries, PRP lists, shadow doorbells, identify pages).
//!
//! This is the NVMe driver's only unsafe module besides [`mmio`](crate::mmio). Memory the
//! device may write is never turned into a Rust reference: entries are copied in with
//! volatile stores and copied out with atomic loads, and the completion entry's status dword
//! (which holds the phase tag) is loaded with `Acquire` before the rest, as REFERENCE A3 and
//! Linux's `dma_rmb` require. Offsets come from the driver (masked ring indices, CIDs already
//! checked against the outstanding set), never straight from the device; each access checks
//! its bounds anyway and panics on a driver bug rather than touching memory outside the
//! region.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sluice_mempool::{DmaRegion, Iova};

use super::cmd::{Cqe, Sqe};

/// A [`DmaRegion`] accessed only with volatile or atomic operations.
#[derive(Debug)]
pub struct QueueMemory {
    region: DmaRegion,
}

impl QueueMemory {
    /// Wraps `region` and zeroes it (queue memory must start at zero: REFERENCE A3, phase).
    pub fn new(region: DmaRegion) -> Self {
        let m = QueueMemory { region };
        m.zero(0, m.len());
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
    fn ptr<T>(&self, offset: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.region.len(),
            "queue memory access of {size} bytes at {offset:#x} outside {:#x} bytes",
            self.region.len()
        );
        self.region.as_ptr().as_ptr().wrapping_add(offset).cast()
    }

    /// Zeroes `len` bytes from `offset` (8-byte aligned).
    pub fn zero(&self, offset: usize, len: usize) {
        for o in (offset..offset + len).step_by(8) {
            self.store_u64(o, 0);
        }
    }

    /// Copies `sqe` into the 64 bytes at `offset` with volatile stores.
    #[inline]
    pub fn write_sqe(&self, offset: usize, sqe: &Sqe) {
        let p = self.ptr::<Sqe>(offset);
        // SAFETY: `ptr` checked bounds and alignment; the region stays mapped while `self`
        // lives; the slot belongs to the driver until the doorbell past it is rung (the device
        // only reads it), so no Rust reference to it exists and a volatile store is the
        // right access.
        unsafe {
            p.write_volatile(Sqe {
                cdw: sqe.cdw.map(u32::to_le),
            })
        };
    }

    /// Reads the completion entry at `offset` if its phase tag equals `phase`: DW3 first with
    /// `Acquire`, then DW0..2 (REFERENCE A3).
    #[inline]
    pub fn read_cqe(&self, offset: usize, phase: bool) -> Option<Cqe> {
        let dw3 = u32::from_le(self.atomic_u32(offset + 12).load(Ordering::Acquire));
        if (dw3 >> 16 & 1 == 1) != phase {
            return None;
        }
        Some(Cqe {
            result: u32::from_le(self.atomic_u32(offset).load(Ordering::Relaxed)),
            dw1: u32::from_le(self.atomic_u32(offset + 4).load(Ordering::Relaxed)),
            dw2: u32::from_le(self.atomic_u32(offset + 8).load(Ordering::Relaxed)),
            dw3,
        })
    }

    #[inline]
    fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let p = self.ptr::<u32>(offset);
        // SAFETY: in bounds and 4-byte aligned (checked by `ptr`); the memory lives as long as
        // `self`. Every CPU-side access to shared words goes through atomics, and the device's
        // DMA writes are outside the Rust memory model, so an `AtomicU32` view is sound here
        // (virtio-drivers does the same for the used ring index).
        unsafe { AtomicU32::from_ptr(p) }
    }

    #[inline]
    fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let p = self.ptr::<u64>(offset);
        // SAFETY: as for `atomic_u32`, 8-byte aligned.
        unsafe { AtomicU64::from_ptr(p) }
    }

    /// Stores a little-endian `u32` (shadow doorbells).
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32) {
        self.atomic_u32(offset)
            .store(value.to_le(), Ordering::Relaxed);
    }

    /// Loads a little-endian `u32` (EventIdx, identify data).
    #[inline]
    pub fn load_u32(&self, offset: usize) -> u32 {
        u32::from_le(self.atomic_u32(offset).load(Ordering::Relaxed))
    }

    /// Stores a little-endian `u64` (PRP list entries, DSM ranges).
    #[inline]
    pub fn store_u64(&self, offset: usize, value: u64) {
        self.atomic_u64(offset)
            .store(value.to_le(), Ordering::Relaxed);
    }

    /// Loads a little-endian `u64`.
    #[inline]
    pub fn load_u64(&self, offset: usize) -> u64 {
        u64::from_le(self.atomic_u64(offset).load(Ordering::Relaxed))
    }

    /// Copies `out.len()` bytes (a multiple of 4) from `offset` out (identify pages).
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.load_u32(offset + 4 * i).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mempool::{HugePagePolicy, PageSize};

    #[test]
    fn entries_round_trip_and_phase_gates_reads() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        let m = QueueMemory::new(r);
        let mut s = Sqe::new(2, 1);
        s.set_cid(9);
        m.write_sqe(64, &s);
        assert_eq!(m.load_u32(64), 0x0009_0002);
        assert_eq!(m.read_cqe(128, true), None, "zeroed memory has phase 0");
        m.store_u32(128 + 12, 1 << 16 | 5);
        assert_eq!(m.read_cqe(128, true).unwrap().cid(), 5);
        assert_eq!(m.iova(100).as_u64() - m.iova(0).as_u64(), 100);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_is_a_driver_bug() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        QueueMemory::new(r).load_u32(4096);
    }
}
