//! The HAL seam for DMA addressing: how a device-visible address ([`Iova`]) is found for each
//! byte of a [`HugeMem`] region.
//!
//! Three ways exist, and the rest of Sluice does not care which is in use:
//!
//! * **IOVA = VA** ([`IdentityMapper`]): software devices that run in this process, and VFIO
//!   type1 containers, which tell the IOMMU to translate the region's virtual addresses.
//! * **IOVA = PA** ([`PagemapMapper`]): VFIO no-IOMMU mode, where the device sees physical
//!   memory; addresses come from `/proc/self/pagemap` and the memory must be hugepages.
//! * **IOVA = VA on shareable memory** ([`MemfdMapper`]): a vhost-user backend in another
//!   process maps each region through its memfd and translates our virtual addresses itself
//!   (the memory table of `SET_MEM_TABLE` pairs each region's address here with its fd).
//! * **An IOMMU mapper of its own**: the VFIO container in `sluice-pmd` implements
//!   [`IovaMapper`] itself, calling `VFIO_IOMMU_MAP_DMA` in [`map`](IovaMapper::map) and
//!   `VFIO_IOMMU_UNMAP_DMA` in [`unmap`](IovaMapper::unmap). That is the hook: this crate knows
//!   nothing of VFIO.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::addr::{Iova, PhysAddr};
use crate::error::Error;
use crate::mem::{HugeMem, MemBacking};

/// How device-visible addresses are obtained for a memory region.
///
/// A [`DmaRegion`](crate::DmaRegion) calls [`map`](Self::map) once after allocating its memory
/// and [`unmap`](Self::unmap) once before freeing it.
pub trait IovaMapper: Send + Sync + std::fmt::Debug {
    /// Make `mem` reachable by devices and say at which IOVAs.
    fn map(&self, mem: &HugeMem) -> Result<IovaMap, Error>;
    /// Undo `map`; called once, before the memory is unmapped. Must not fail loudly (log, don't
    /// panic).
    fn unmap(&self, mem: &HugeMem, map: &IovaMap);
    /// Short name for reports ("identity", "pagemap", "vfio-type1").
    fn name(&self) -> &'static str;
    /// The memory this mapper can make device-visible; a [`DmaRegion`](crate::DmaRegion)
    /// allocates its pages so. Anonymous memory unless the device lives in another process
    /// that maps the pages itself ([`MemfdMapper`]).
    fn backing(&self) -> MemBacking {
        MemBacking::Anonymous
    }
}

/// Where a region's bytes appear in IOVA space.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum IovaMap {
    /// The whole region is one IOVA range starting at `base` (IOMMU or identity mapping).
    Contiguous {
        /// IOVA of the region's first byte.
        base: Iova,
    },
    /// Each page has its own IOVA (physical addresses in no-IOMMU mode); bytes within a page
    /// are contiguous.
    PerPage {
        /// log2 of the page size the table is indexed by.
        page_shift: u32,
        /// IOVA of the first byte of each page, in region order.
        pages: Box<[Iova]>,
    },
}

impl IovaMap {
    /// IOVA of the byte at `offset` from the start of the region.
    ///
    /// # Panics
    ///
    /// For [`IovaMap::PerPage`], if `offset` lies beyond the last page. A `Contiguous` map does
    /// not know the region length, so callers check `offset < len` (as
    /// [`DmaRegion::iova_at`](crate::DmaRegion::iova_at) does).
    #[inline]
    pub fn translate(&self, offset: usize) -> Iova {
        match self {
            IovaMap::Contiguous { base } => base.add(offset as u64),
            IovaMap::PerPage { page_shift, pages } => {
                let in_page = offset & ((1usize << page_shift) - 1);
                pages[offset >> page_shift].add(in_page as u64)
            }
        }
    }

    /// Whether the `len` bytes from `offset` occupy one contiguous IOVA range, so that a single
    /// descriptor can cover them.
    ///
    /// Always true for `Contiguous` and for `len <= 1`; for `PerPage`, true iff every page
    /// boundary inside the range is crossed into the next IOVA. A range beyond the table is not
    /// contiguous.
    pub fn is_contiguous(&self, offset: usize, len: usize) -> bool {
        match self {
            IovaMap::Contiguous { .. } => true,
            IovaMap::PerPage { page_shift, pages } => {
                if len == 0 {
                    return true;
                }
                let Some(last) = offset.checked_add(len - 1) else {
                    return false;
                };
                let (first, last) = (offset >> page_shift, last >> page_shift);
                if last >= pages.len() {
                    return false;
                }
                let page_bytes = 1u64 << page_shift;
                pages[first..=last]
                    .windows(2)
                    .all(|w| w[0].checked_add(page_bytes) == Some(w[1]))
            }
        }
    }
}

/// IOVA = virtual address.
///
/// For software devices that run in this process, and for an IOMMU that was told to translate
/// the region's virtual addresses: a VFIO type1 container maps the region with
/// `VFIO_IOMMU_MAP_DMA` at `iova == vaddr` and then addresses it exactly like this. The
/// container in `sluice-pmd` implements [`IovaMapper`] itself (map and unmap go to the IOMMU);
/// this type is the no-op half of that, with nothing to undo.
#[derive(Clone, Copy, Default, Debug)]
pub struct IdentityMapper;

impl IovaMapper for IdentityMapper {
    fn map(&self, mem: &HugeMem) -> Result<IovaMap, Error> {
        Ok(IovaMap::Contiguous {
            base: Iova(mem.as_ptr().as_ptr() as usize as u64),
        })
    }

    fn unmap(&self, _mem: &HugeMem, _map: &IovaMap) {}

    fn name(&self) -> &'static str {
        "identity"
    }
}

/// IOVA = virtual address, on memory another process can map: every region a
/// [`DmaRegion`](crate::DmaRegion) allocates with it is a memfd ([`MemBacking::Memfd`]).
///
/// For a device that is another process on the same host, a vhost-user backend: it is given
/// each region's fd, length and address here, maps the pages itself and translates the
/// addresses in descriptors and ring set-up through that table, so IOVA = VA as for
/// [`IdentityMapper`]. There is nothing to undo at unmap; the peer's own mapping keeps the pages
/// alive until it unmaps them.
#[derive(Clone, Copy, Default, Debug)]
pub struct MemfdMapper;

impl IovaMapper for MemfdMapper {
    fn map(&self, mem: &HugeMem) -> Result<IovaMap, Error> {
        if mem.fd().is_none() {
            return Err(Error::Mapper {
                mapper: self.name(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "anonymous memory cannot be shared: allocate it with MemBacking::Memfd",
                ),
            });
        }
        IdentityMapper.map(mem)
    }

    fn unmap(&self, _mem: &HugeMem, _map: &IovaMap) {}

    fn name(&self) -> &'static str {
        "memfd"
    }

    fn backing(&self) -> MemBacking {
        MemBacking::Memfd
    }
}

/// IOVA = physical address, from `/proc/self/pagemap` (VFIO no-IOMMU mode).
///
/// Requires hugepage-backed memory ([`Error::PagemapNeedsHugepages`] otherwise): a hugepage is
/// physically contiguous and never migrated or swapped, so its physical address is stable for
/// the mapping's lifetime, while a 4 KiB page may move under the device even when locked. One
/// pagemap lookup per hugepage gives a [`IovaMap::PerPage`] table of physical addresses.
///
/// Reading physical addresses needs `CAP_SYS_ADMIN` ([`Error::PagemapNoPfn`] otherwise). The
/// pages must be resident: [`HugeMem`] prefaults them at allocation (`MAP_POPULATE` and
/// `mlock`), so this mapper only reads, and a page found absent is reported as
/// [`Error::PageNotPresent`] rather than touched (touching an unbacked hugetlb page would raise
/// `SIGBUS`).
#[derive(Clone, Copy, Default, Debug)]
pub struct PagemapMapper;

impl IovaMapper for PagemapMapper {
    fn map(&self, mem: &HugeMem) -> Result<IovaMap, Error> {
        let page = mem.page_size();
        if !page.is_huge() {
            return Err(Error::PagemapNeedsHugepages { page });
        }
        let pagemap = Pagemap::open()?;
        let base = mem.as_ptr().as_ptr() as usize;
        let pages = (0..mem.len() >> page.shift())
            .map(|i| {
                pagemap
                    .phys(base + (i << page.shift()))
                    .map(|pa| Iova(pa.as_u64()))
            })
            .collect::<Result<Box<[Iova]>, Error>>()?;
        Ok(IovaMap::PerPage {
            page_shift: page.shift(),
            pages,
        })
    }

    fn unmap(&self, _mem: &HugeMem, _map: &IovaMap) {
        // Nothing was registered anywhere: the pages stay put until munmap.
    }

    fn name(&self) -> &'static str {
        "pagemap"
    }
}

/// Physical address of the byte at `ptr`, from `/proc/self/pagemap`.
///
/// For diagnostics and tests; DMA code takes IOVAs from a [`DmaRegion`](crate::DmaRegion). The
/// answer for a 4 KiB page is only a snapshot: the page may migrate.
///
/// # Errors
///
/// [`Error::PagemapOpen`], [`Error::PagemapRead`], [`Error::PageNotPresent`] if the page is not
/// resident, [`Error::PagemapNoPfn`] without `CAP_SYS_ADMIN`.
pub fn virt_to_phys(ptr: *const u8) -> Result<PhysAddr, Error> {
    Pagemap::open()?.phys(ptr as usize)
}

/// `/proc/self/pagemap`, opened once for a series of lookups.
struct Pagemap(File);

impl Pagemap {
    /// Pagemap entries describe 4 KiB pages whatever the mapping's page size.
    const PAGE_SHIFT: u32 = 12;
    /// Bits 0..=54: page frame number (when present).
    const PFN_MASK: u64 = (1 << 55) - 1;
    /// Bit 63: page present in RAM.
    const PRESENT: u64 = 1 << 63;

    fn open() -> Result<Self, Error> {
        File::open("/proc/self/pagemap")
            .map(Pagemap)
            .map_err(|source| Error::PagemapOpen { source })
    }

    /// Physical address of virtual address `va`.
    ///
    /// Linux `Documentation/admin-guide/mm/pagemap.rst`: one native-endian `u64` per 4 KiB
    /// virtual page, at offset `(va / 4096) * 8`; PFN in bits 0..=54, present in bit 63. Inside
    /// a hugepage the entries are the base PFN plus the 4 KiB index, so this works at any
    /// offset.
    fn phys(&self, va: usize) -> Result<PhysAddr, Error> {
        let mut entry = [0u8; 8];
        let index = (va >> Self::PAGE_SHIFT) as u64;
        self.0
            .read_exact_at(&mut entry, index * 8)
            .map_err(|source| Error::PagemapRead { va, source })?;
        let entry = u64::from_ne_bytes(entry);
        if entry & Self::PRESENT == 0 {
            return Err(Error::PageNotPresent { va });
        }
        let pfn = entry & Self::PFN_MASK;
        if pfn == 0 {
            // Since Linux 4.2 the PFN reads as 0 unless the opener has CAP_SYS_ADMIN.
            return Err(Error::PagemapNoPfn { va });
        }
        let in_page = (va & ((1 << Self::PAGE_SHIFT) - 1)) as u64;
        Ok(PhysAddr((pfn << Self::PAGE_SHIFT) | in_page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB2: usize = 2 << 20;

    #[test]
    fn contiguous_translate() {
        let m = IovaMap::Contiguous {
            base: Iova(0x1_0000_0000),
        };
        assert_eq!(m.translate(0), Iova(0x1_0000_0000));
        assert_eq!(m.translate(0x1234), Iova(0x1_0000_1234));
        assert!(m.is_contiguous(0, usize::MAX));
        assert!(m.is_contiguous(100, 0));
    }

    fn per_page() -> IovaMap {
        // Pages 0,1 adjacent; page 2 elsewhere; page 3 follows page 2.
        IovaMap::PerPage {
            page_shift: 21,
            pages: vec![
                Iova(0x4000_0000),
                Iova(0x4020_0000),
                Iova(0x1000_0000),
                Iova(0x1020_0000),
            ]
            .into_boxed_slice(),
        }
    }

    #[test]
    fn per_page_translate() {
        let m = per_page();
        assert_eq!(m.translate(0), Iova(0x4000_0000));
        assert_eq!(m.translate(MIB2 - 1), Iova(0x401f_ffff));
        assert_eq!(m.translate(MIB2), Iova(0x4020_0000));
        assert_eq!(m.translate(2 * MIB2 + 0x40), Iova(0x1000_0040));
        assert_eq!(m.translate(4 * MIB2 - 1), Iova(0x103f_ffff));
    }

    #[test]
    #[should_panic]
    fn per_page_translate_out_of_range_panics() {
        per_page().translate(4 * MIB2);
    }

    #[test]
    fn per_page_contiguity() {
        let m = per_page();
        assert!(m.is_contiguous(0, 0));
        assert!(m.is_contiguous(0, MIB2));
        assert!(m.is_contiguous(0, 2 * MIB2), "pages 0 and 1 are adjacent");
        assert!(m.is_contiguous(MIB2 - 8, 16));
        assert!(
            !m.is_contiguous(2 * MIB2 - 8, 16),
            "crosses the 1 -> 2 discontinuity"
        );
        assert!(!m.is_contiguous(0, 3 * MIB2));
        assert!(
            m.is_contiguous(2 * MIB2 - 8, 8),
            "ends exactly at the boundary"
        );
        assert!(
            m.is_contiguous(2 * MIB2, 2 * MIB2),
            "pages 2 and 3 are adjacent"
        );
        assert!(m.is_contiguous(4 * MIB2 - 1, 1));
        assert!(!m.is_contiguous(4 * MIB2 - 1, 2), "runs past the table");
        assert!(!m.is_contiguous(4 * MIB2, 1));
        assert!(!m.is_contiguous(usize::MAX, 2));
    }

    #[test]
    fn a_descending_pair_is_not_contiguous() {
        let m = IovaMap::PerPage {
            page_shift: 12,
            pages: vec![Iova(0x2000), Iova(0x1000)].into(),
        };
        assert!(!m.is_contiguous(0, 8192));
        let m = IovaMap::PerPage {
            page_shift: 12,
            pages: vec![Iova(u64::MAX - 4095), Iova(0)].into(),
        };
        assert!(
            !m.is_contiguous(0, 8192),
            "no wrap-around at the top of the address space"
        );
    }
}
