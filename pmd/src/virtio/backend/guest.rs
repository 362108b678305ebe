//! The lcores' boundary with the frontend's memory: the memory table as a flat array of
//! (guest address, length, host address), translated once per ring setup, and the accesses
//! the datapath makes through it. All of the backend's `unsafe` is here.
//!
//! - [`GuestMap`]: a buffer's guest address to host memory, bounds- and overflow-checked
//!   (the region of the last hit is tried first), and copies in and out of guest memory that
//!   split where a buffer crosses from one region into the next (an address in no region, or a
//!   buffer running past the last region that holds it, is refused).
//! - [`HostRange`]: a translated ring part (a descriptor table, an available or used ring,
//!   an event structure), wholly inside one region; every access is an offset into it,
//!   checked against its length and alignment, and is atomic (indices, flags) or volatile.
//!
//! Both hold the `Arc` of the mapped table ([`Mem`]): the mappings live as long as any ring
//! or queue can still reach them. The control thread swaps them only under the ring's lock,
//! which an lcore holds for its whole burst ([`vring`](super::vring)), so a mapping is never
//! unmapped under an access.
//!
//! The frontend writes this memory concurrently: copies go through `vm-memory`'s
//! `VolatileSlice` (volatile accesses for a few bytes, `memcpy` beyond, as `vm-memory`'s own
//! checked accesses do), and nothing read from it is trusted before it is checked.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use vm_memory::{
    GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress, VolatileSlice,
};

/// The frontend's memory, as the memory table maps it.
pub(crate) type Mem = GuestMemoryMmap<()>;

#[derive(Clone, Copy)]
struct Region {
    gpa: u64,
    len: u64,
    host: NonNull<u8>,
}

/// The memory table, for translating buffer addresses.
pub(crate) struct GuestMap {
    regions: Box<[Region]>,
    last: Cell<usize>,
    mem: Arc<Mem>,
}

// SAFETY: the host addresses point into shared mappings kept alive by `mem` (an `Arc`, itself
// `Send`), not into anything tied to the thread that made them; `last` is a plain index.
unsafe impl Send for GuestMap {}

impl GuestMap {
    /// The regions of `mem`.
    pub(crate) fn new(mem: Arc<Mem>) -> Self {
        let regions = mem
            .iter()
            .filter_map(|r| {
                let host = r.get_host_address(MemoryRegionAddress(0)).ok()?;
                Some(Region {
                    gpa: r.start_addr().0,
                    len: r.len(),
                    host: NonNull::new(host)?,
                })
            })
            .collect();
        Self {
            regions,
            last: Cell::new(0),
            mem,
        }
    }

    /// The host address of `addr` and how many of the `len` bytes from it its region holds
    /// (at least one).
    fn span(&self, addr: u64, len: usize) -> Option<(*mut u8, usize)> {
        let off = |r: &Region| addr.checked_sub(r.gpa).filter(|&o| o < r.len);
        let last = self.last.get();
        let (r, o) = match self.regions.get(last).and_then(|r| Some((r, off(r)?))) {
            Some(hit) => hit,
            None => {
                let (i, r, o) = self
                    .regions
                    .iter()
                    .enumerate()
                    .find_map(|(i, r)| Some((i, r, off(r)?)))?;
                self.last.set(i);
                (r, o)
            }
        };
        let n = (r.len - o).min(len as u64) as usize;
        // In bounds of the region's mapping (o < r.len): no wrap.
        Some((r.host.as_ptr().wrapping_add(o as usize), n))
    }

    /// Copies guest memory at `addr` into `dst`; false if any of it is outside the table.
    pub(crate) fn read(&self, addr: u64, dst: &mut [u8]) -> bool {
        let mut done = 0;
        while done < dst.len() {
            let Some((p, n)) = addr
                .checked_add(done as u64)
                .and_then(|a| self.span(a, dst.len() - done))
            else {
                return false;
            };
            // SAFETY: `p..p + n` lies inside one mapped region (`span`), kept mapped by
            // `self.mem` for this borrow; the frontend's concurrent writes are what
            // `VolatileSlice` is for; `dst` is this process's memory, not the mapping.
            let src = unsafe { VolatileSlice::new(p, n) };
            src.copy_to(&mut dst[done..done + n]);
            done += n;
        }
        true
    }

    /// Copies `src` into guest memory at `addr`; false (after writing what fits) if any of it
    /// is outside the table.
    pub(crate) fn write(&self, addr: u64, src: &[u8]) -> bool {
        let mut done = 0;
        while done < src.len() {
            let Some((p, n)) = addr
                .checked_add(done as u64)
                .and_then(|a| self.span(a, src.len() - done))
            else {
                return false;
            };
            // SAFETY: as in `read`.
            let dst = unsafe { VolatileSlice::new(p, n) };
            dst.copy_from(&src[done..done + n]);
            done += n;
        }
        true
    }

    /// Copies `head`, then `tail` right after it, into guest memory at `addr`: one
    /// translation where both lie in one region (a header and its frame); false (after
    /// writing what fits) if any of it is outside the table.
    pub(crate) fn write2(&self, addr: u64, head: &[u8], tail: &[u8]) -> bool {
        let total = head.len() + tail.len();
        match self.span(addr, total) {
            Some((p, n)) if n == total => {
                // SAFETY: as in `read`: `p..p + total` lies inside one mapped region.
                let dst = unsafe { VolatileSlice::new(p, total) };
                dst.copy_from(head);
                if let Ok(rest) = dst.offset(head.len()) {
                    rest.copy_from(tail);
                }
                true
            }
            Some(_) => {
                self.write(addr, head)
                    && addr
                        .checked_add(head.len() as u64)
                        .is_some_and(|a| self.write(a, tail))
            }
            None => false,
        }
    }

    /// The table itself (ring setup validates layouts against it).
    pub(crate) fn mem(&self) -> &Mem {
        &self.mem
    }

    /// `len` bytes at `addr`, all in one region and aligned to `align` in this process:
    /// a ring part.
    pub(crate) fn range(&self, addr: u64, len: usize, align: usize) -> Option<HostRange> {
        let (p, n) = self.span(addr, len)?;
        if n != len || !(p as usize).is_multiple_of(align) {
            return None;
        }
        Some(HostRange {
            ptr: NonNull::new(p)?,
            len,
            _mem: self.mem.clone(),
        })
    }
}

/// Part of a ring, translated: `len` bytes of one region of the frontend's memory.
pub(crate) struct HostRange {
    ptr: NonNull<u8>,
    len: usize,
    _mem: Arc<Mem>,
}

// SAFETY: as for `GuestMap`: a pointer into a shared mapping that `_mem` keeps alive.
unsafe impl Send for HostRange {}

impl HostRange {
    /// The address of a `T` at `off`, in bounds and aligned.
    fn at<T>(&self, off: usize) -> Option<*mut T> {
        if off.checked_add(size_of::<T>())? > self.len {
            return None;
        }
        let p = self.ptr.as_ptr().wrapping_add(off);
        p.cast::<T>().is_aligned().then_some(p.cast())
    }

    /// Asks the CPU to fetch the cache line at `off` ahead of its use (a hint).
    pub(crate) fn prefetch(&self, off: usize) {
        if off < self.len {
            prefetch(self.ptr.as_ptr().wrapping_add(off));
        }
    }

    /// A little-endian `u16` index or flags word, loaded atomically.
    pub(crate) fn load_u16(&self, off: usize, order: Ordering) -> Option<u16> {
        let p = self.at::<u16>(off)?;
        // SAFETY: `p` is in bounds and aligned (`at`), in a mapping `_mem` keeps alive for
        // `&self`; the location is shared with the frontend, hence atomic, and this process
        // never makes a non-atomic reference to it.
        let v = unsafe { AtomicU16::from_ptr(p) }.load(order);
        Some(u16::from_le(v))
    }

    /// A little-endian `u32`, loaded atomically.
    pub(crate) fn load_u32(&self, off: usize, order: Ordering) -> Option<u32> {
        let p = self.at::<u32>(off)?;
        // SAFETY: as in `load_u16`.
        let v = unsafe { AtomicU32::from_ptr(p) }.load(order);
        Some(u32::from_le(v))
    }

    /// Stores a `u16` index or flags word, little-endian, atomically.
    pub(crate) fn store_u16(&self, off: usize, v: u16, order: Ordering) -> Option<()> {
        let p = self.at::<u16>(off)?;
        // SAFETY: as in `load_u16`.
        unsafe { AtomicU16::from_ptr(p) }.store(v.to_le(), order);
        Some(())
    }

    /// A 16-byte descriptor at `off` (16-aligned), as two little-endian words.
    pub(crate) fn read_desc(&self, off: usize) -> Option<(u64, u64)> {
        let p = self.at::<[u64; 2]>(off)?;
        // SAFETY: in bounds and aligned (`at`), mapped while `&self` lives; a volatile read of
        // memory the frontend may be writing (what it reads is checked before any use).
        let [a, b] = unsafe { p.read_volatile() };
        Some((u64::from_le(a), u64::from_le(b)))
    }

    /// Writes a little-endian `u32` (a used length or id), volatile; published later by a
    /// release store.
    pub(crate) fn write_u32(&self, off: usize, v: u32) -> Option<()> {
        let p = self.at::<u32>(off)?;
        // SAFETY: in bounds and aligned (`at`), mapped while `&self` lives.
        unsafe { p.write_volatile(v.to_le()) };
        Some(())
    }

    /// Writes a little-endian `u16`, volatile.
    pub(crate) fn write_u16(&self, off: usize, v: u16) -> Option<()> {
        let p = self.at::<u16>(off)?;
        // SAFETY: as in `write_u32`.
        unsafe { p.write_volatile(v.to_le()) };
        Some(())
    }
}

/// A prefetch hint for the cache line at `p`.
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing into the program and never faults,
    // whatever the address; `p` is inside a live mapping besides.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    fn two_regions() -> GuestMap {
        let mem = Mem::from_ranges(&[
            (GuestAddress(0x1000), 0x1000),
            (GuestAddress(0x2000), 0x1000),
        ])
        .unwrap();
        GuestMap::new(Arc::new(mem))
    }

    #[test]
    fn copies_split_across_adjacent_regions_and_stop_at_the_table_end() {
        let m = two_regions();
        let data: Vec<u8> = (0..64).collect();
        assert!(m.write(0x2000 - 32, &data));
        let mut back = [0u8; 64];
        assert!(m.read(0x2000 - 32, &mut back));
        assert_eq!(&back[..], &data[..]);
        assert!(!m.read(0x3000 - 32, &mut back), "past the last region");
        assert!(!m.read(0x800, &mut back), "before the first");
        assert!(!m.read(u64::MAX - 8, &mut back), "wraps");
        assert!(m.read(0x800, &mut []), "nothing to copy");
        assert!(
            m.write2(0x2000 - 8, &data[..4], &data[4..]),
            "across the regions"
        );
        assert!(m.write2(0x1800, &data[..12], &data[12..]), "in one");
        assert!(m.read(0x2000 - 8, &mut back));
        assert_eq!(&back[..], &data[..]);
        assert!(m.read(0x1800, &mut back));
        assert_eq!(&back[..], &data[..]);
        assert!(
            !m.write2(0x3000 - 32, &data[..12], &data[12..]),
            "past the end"
        );
        assert!(
            !m.write2(0x800, &data[..12], &data[12..]),
            "before the first"
        );
    }

    #[test]
    fn ranges_are_one_region_aligned_and_bounded() {
        let m = two_regions();
        assert!(m.range(0x2000 - 8, 16, 4).is_none(), "two regions");
        assert!(m.range(0x1002, 16, 4).is_none(), "misaligned");
        let r = m.range(0x1000, 16, 16).unwrap();
        assert_eq!(r.store_u16(14, 0xabcd, Ordering::Release), Some(()));
        assert_eq!(r.load_u16(14, Ordering::Acquire), Some(0xabcd));
        assert_eq!(r.read_desc(0).map(|d| d.1 >> 48), Some(0xabcd));
        assert_eq!(r.load_u16(16, Ordering::Relaxed), None, "past the end");
        assert_eq!(r.load_u32(1, Ordering::Relaxed), None, "misaligned");
        assert_eq!(r.write_u32(usize::MAX - 1, 0), None, "overflow");
    }
}
