//! [`DmaRegion`]: memory a device may touch, together with the IOVA of each byte.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::addr::Iova;
use crate::error::Error;
use crate::iova::{IdentityMapper, IovaMap, IovaMapper, MemfdMapper};
use crate::mem::{HugeMem, HugePagePolicy, PageSize};

/// How another process maps a shareable [`DmaRegion`]: one entry of a vhost-user memory table
/// (`VhostUserMemoryRegion`: guest address, size, user address, mmap offset, and the fd
/// passed beside the message).
#[derive(Clone, Copy, Debug)]
pub struct FdRegion<'a> {
    /// The memfd holding the region, open as long as the region.
    pub fd: BorrowedFd<'a>,
    /// Offset of the region's first byte in the file.
    pub offset: u64,
    /// Length in bytes (whole pages of the region's page size).
    pub len: u64,
    /// Virtual address of the region's first byte in this process.
    pub va: u64,
    /// IOVA of the region's first byte: what the device finds in descriptors (= `va` with
    /// [`MemfdMapper`]).
    pub iova: Iova,
}

/// Hugepage memory made reachable by devices through an [`IovaMapper`].
///
/// All memory a device may read or write is a `DmaRegion`; drivers take addresses for
/// descriptors from [`iova_at`](Self::iova_at) / [`iova_of`](Self::iova_of) and never compute an
/// IOVA themselves. Like [`HugeMem`] it hands out raw pointers only.
///
/// Dropping it first asks the mapper to unmap (for VFIO: `VFIO_IOMMU_UNMAP_DMA`), then unmaps the
/// memory, so that a device is never left with an IOMMU entry pointing at freed pages. Quiesce
/// the device before dropping the region.
///
/// ```
/// use sluice_mempool::{DmaRegion, HugePagePolicy, PageSize};
///
/// let region = DmaRegion::identity(64 << 10, PageSize::Size2M, HugePagePolicy::Prefer)?;
/// let desc_ring = region.as_ptr();
/// let iova = region.iova_at(0); // what goes into the device's ring base register
/// assert_eq!(region.iova_of(desc_ring.as_ptr()), Some(iova));
/// # Ok::<(), sluice_mempool::Error>(())
/// ```
pub struct DmaRegion {
    // Field order: `Drop::drop` below runs `mapper.unmap` while every field is still alive;
    // after that the fields drop in declaration order, so the memory itself goes last.
    map: IovaMap,
    mapper: Arc<dyn IovaMapper>,
    mem: HugeMem,
}

// Send + Sync follow from the fields (`IovaMapper: Send + Sync`, `HugeMem` is both); keep it so.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<DmaRegion>();
};

impl DmaRegion {
    /// Allocates `len` bytes (rounded up to the page size) under `policy`, backed as the
    /// mapper asks ([`IovaMapper::backing`]), and maps them with `mapper`.
    ///
    /// # Errors
    ///
    /// Whatever [`HugeMem::allocate`] or the mapper's [`map`](IovaMapper::map) returns; on a
    /// mapper error the memory is freed again.
    pub fn allocate(
        len: usize,
        page: PageSize,
        policy: HugePagePolicy,
        mapper: Arc<dyn IovaMapper>,
    ) -> Result<Self, Error> {
        let mem = HugeMem::allocate_with(len, page, policy, mapper.backing())?;
        let map = mapper.map(&mem)?;
        Ok(DmaRegion { map, mapper, mem })
    }

    /// [`allocate`](Self::allocate) with the [`MemfdMapper`]: memory in a memfd that another
    /// process (a vhost-user backend) can map, see [`fd_region`](Self::fd_region); IOVA =
    /// virtual address.
    ///
    /// # Errors
    ///
    /// As [`HugeMem::allocate_with`].
    pub fn shareable(len: usize, page: PageSize, policy: HugePagePolicy) -> Result<Self, Error> {
        Self::allocate(len, page, policy, Arc::new(MemfdMapper))
    }

    /// How another process maps this region, or `None` when it is anonymous memory (or its
    /// IOVAs are not one range, which no single memory-table entry can describe).
    pub fn fd_region(&self) -> Option<FdRegion<'_>> {
        let fd = self.mem.fd()?;
        let IovaMap::Contiguous { base } = self.map else {
            return None;
        };
        Some(FdRegion {
            fd,
            offset: 0,
            len: self.len() as u64,
            va: self.as_ptr().as_ptr() as usize as u64,
            iova: base,
        })
    }

    /// [`allocate`](Self::allocate) with the [`IdentityMapper`] (IOVA = virtual address), for
    /// software devices and tests.
    ///
    /// # Errors
    ///
    /// As [`HugeMem::allocate`].
    pub fn identity(len: usize, page: PageSize, policy: HugePagePolicy) -> Result<Self, Error> {
        Self::allocate(len, page, policy, Arc::new(IdentityMapper))
    }

    /// Start of the region.
    #[inline]
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.mem.as_ptr()
    }

    /// Length in bytes (the requested length rounded up to the page size).
    #[inline]
    pub fn len(&self) -> usize {
        self.mem.len()
    }

    /// Always `false`; see [`HugeMem::is_empty`].
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.mem.is_empty()
    }

    /// The page size the memory got.
    #[inline]
    pub fn page_size(&self) -> PageSize {
        self.mem.page_size()
    }

    /// The underlying memory.
    #[inline]
    pub fn mem(&self) -> &HugeMem {
        &self.mem
    }

    /// Where the region lives in IOVA space.
    #[inline]
    pub fn iova_map(&self) -> &IovaMap {
        &self.map
    }

    /// [`IovaMapper::name`] of the mapper in use.
    #[inline]
    pub fn mapper_name(&self) -> &'static str {
        self.mapper.name()
    }

    /// IOVA of the byte at `offset`.
    ///
    /// `offset` must be less than [`len`](Self::len): that is checked in debug builds; in
    /// release builds a per-page map panics on an out-of-range offset and a contiguous one
    /// returns an address past the region.
    #[inline]
    pub fn iova_at(&self, offset: usize) -> Iova {
        debug_assert!(
            offset < self.len(),
            "offset {offset:#x} outside a region of {:#x} bytes",
            self.len()
        );
        self.map.translate(offset)
    }

    /// IOVA of the byte `ptr` points at, or `None` if it is outside the region.
    #[inline]
    pub fn iova_of(&self, ptr: *const u8) -> Option<Iova> {
        self.mem.offset_of(ptr).map(|off| self.map.translate(off))
    }

    /// Whether the `len` bytes from `offset` are one contiguous IOVA range (one descriptor can
    /// cover them). Always true for identity and IOMMU mappings; see
    /// [`IovaMap::is_contiguous`].
    #[inline]
    pub fn is_iova_contiguous(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len())
            && self.map.is_contiguous(offset, len)
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        // The device must lose access before the pages can be reused: unmap the IOVAs while the
        // memory is still mapped; `mem` is dropped (munmap) only after this returns.
        self.mapper.unmap(&self.mem, &self.map);
    }
}

impl fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DmaRegion");
        d.field("base", &self.mem.as_ptr())
            .field("len", &self.len())
            .field("backing", &self.mem.backing())
            .field("page_size", &self.mem.page_size())
            .field("requested_page_size", &self.mem.requested_page_size())
            .field("locked", &self.mem.is_locked())
            .field("mapper", &self.mapper.name());
        match &self.map {
            IovaMap::Contiguous { base } => d.field("iova", &format_args!("{base}")),
            IovaMap::PerPage { pages, .. } => d.field("iova_pages", &pages.len()),
        };
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the order of map/unmap calls and whether the memory was still mapped at unmap.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl IovaMapper for Recorder {
        fn map(&self, mem: &HugeMem) -> Result<IovaMap, Error> {
            self.0.lock().unwrap().push(format!("map {}", mem.len()));
            Ok(IovaMap::Contiguous {
                base: Iova(0x1000_0000),
            })
        }
        fn unmap(&self, mem: &HugeMem, map: &IovaMap) {
            // Still readable here: /proc/self/maps must list the region.
            let start = format!("{:x}-", mem.as_ptr().as_ptr() as usize);
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let mapped = maps.lines().any(|l| l.starts_with(&start));
            self.0
                .lock()
                .unwrap()
                .push(format!("unmap {} {map:?} mapped={mapped}", mem.len()));
        }
        fn name(&self) -> &'static str {
            "recorder"
        }
    }

    #[test]
    fn unmap_runs_once_before_the_memory_goes() {
        let rec = Arc::new(Recorder::default());
        let region =
            DmaRegion::allocate(5000, PageSize::Size4K, HugePagePolicy::Never, rec.clone())
                .unwrap();
        assert_eq!(region.len(), 8192);
        assert_eq!(region.mapper_name(), "recorder");
        assert_eq!(region.iova_at(0x10), Iova(0x1000_0010));
        drop(region);
        let log = rec.0.lock().unwrap().clone();
        assert_eq!(
            log,
            [
                "map 8192",
                "unmap 8192 Contiguous { base: Iova(268435456) } mapped=true"
            ],
        );
    }

    #[derive(Debug)]
    struct Refuses;
    impl IovaMapper for Refuses {
        fn map(&self, _: &HugeMem) -> Result<IovaMap, Error> {
            Err(Error::Mapper {
                mapper: "refuses",
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            })
        }
        fn unmap(&self, _: &HugeMem, _: &IovaMap) {
            panic!("unmap without a successful map");
        }
        fn name(&self) -> &'static str {
            "refuses"
        }
    }

    #[test]
    fn mapper_error_is_returned_and_not_unmapped() {
        let e = DmaRegion::allocate(
            4096,
            PageSize::Size4K,
            HugePagePolicy::Never,
            Arc::new(Refuses),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Mapper {
                    mapper: "refuses",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn identity_region_addresses() {
        let r = DmaRegion::identity(3 * 4096 + 1, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        let base = r.as_ptr().as_ptr();
        assert_eq!(r.len(), 4 * 4096);
        assert_eq!(r.mapper_name(), "identity");
        assert_eq!(r.iova_at(0).as_u64(), base as u64);
        assert_eq!(
            r.iova_at(r.len() - 1).as_u64(),
            base as u64 + r.len() as u64 - 1
        );
        assert_eq!(
            r.iova_of(base.wrapping_add(100)),
            Some(Iova(base as u64 + 100))
        );
        assert_eq!(r.iova_of(base.wrapping_add(r.len())), None);
        assert_eq!(r.iova_of(base.wrapping_sub(1)), None);
        assert!(r.is_iova_contiguous(0, r.len()));
        assert!(!r.is_iova_contiguous(1, r.len()), "runs past the end");
        assert!(!r.is_iova_contiguous(usize::MAX, 2));
        let dbg = format!("{r:?}");
        assert!(dbg.contains("mapper: \"identity\""), "{dbg}");
        assert!(dbg.contains("len: 16384"), "{dbg}");
        assert!(dbg.contains("page_size: Size4K"), "{dbg}");
    }
}
