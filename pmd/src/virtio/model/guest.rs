//! The rust-vmm engine's view of memory: a `vm_memory::GuestMemoryMmap` whose regions lie
//! over memory the driver already has, at guest address = IOVA = virtual address (see the
//! module docs of [`super`]).
//!
//! Only the ranges the device was given are regions: each enabled queue's rings and the DMA
//! region of each pool mapped with
//! [`SoftVirtioNet::map_pool`](super::SoftVirtioNet::map_pool). vm-memory then checks every
//! address `virtio-queue` follows against them, as an IOMMU would, so a driver that hands the
//! device an address outside its memory fails the test instead of touching whatever lies
//! there.

use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// A guest memory with one region per range of `ranges` (`(start, len)` at IOVA = VA).
///
/// vm-memory refuses overlapping regions and `MmapRegion::build_raw` takes only page-aligned
/// starts, so each start is rounded down to its page and ranges that then overlap are
/// merged; ends stay exact.
///
/// The caller passes only ranges the driver handed to the device and that stay mapped while
/// the result is used: ring memory of enabled queues (the driver keeps it until the device is
/// reset, and the engine drops its memory at the reset) and the DMA regions of pools the
/// model holds a handle of.
pub(super) fn guest_memory(ranges: &[(u64, u64)]) -> Result<GuestMemoryMmap, String> {
    // SAFETY: `sysconf` reads a constant of the system and has no side effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let mut spans: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|&&(_, len)| len > 0)
        .map(|&(start, len)| (start & !(page - 1), start + len))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut regions = Vec::with_capacity(merged.len());
    for (start, end) in merged {
        let len = (end - start) as usize;
        // SAFETY: `start..end` is the union of ranges of driver memory that the caller keeps
        // mapped while the result is used (see above); rounding a start down to its page stays
        // inside the same mapping, as mappings are made of whole pages, and two ranges that
        // overlap after rounding share a page, so their union is mapped too. The region does
        // not own the memory (`build_raw` never unmaps it). vm-memory accesses it with
        // volatile copies and atomics, which is how the driver's side is accessed as well
        // (`SharedMemory`'s atomics, buffers only while the device owns them).
        let mapping = unsafe {
            MmapRegion::build_raw(
                start as *mut u8,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            )
        }
        .map_err(|e| format!("{len:#x} bytes at {start:#x}: {e}"))?;
        let region = GuestRegionMmap::new(mapping, GuestAddress(start))
            .ok_or_else(|| format!("{len:#x} bytes at {start:#x} overflow the address space"))?;
        regions.push(region);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| e.to_string())
}
