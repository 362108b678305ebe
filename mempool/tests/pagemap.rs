//! No-IOMMU addressing against the real `/proc/self/pagemap`: needs root (CAP_SYS_ADMIN for
//! PFNs) and 2 MiB hugepages, which the test reserves when it can; otherwise it prints why it
//! skipped.

mod common;

use std::sync::Arc;

use sluice_mempool::iova::virt_to_phys;
use sluice_mempool::{
    DmaRegion, Error, HugeMem, HugePagePolicy, Iova, IovaMap, IovaMapper, PageSize, PagemapMapper,
};

const MIB2: usize = 2 << 20;

/// Maps `mem` with the pagemap mapper, or prints why the test must be skipped.
fn map_or_skip(mem: &HugeMem) -> Option<IovaMap> {
    match PagemapMapper.map(mem) {
        Ok(map) => Some(map),
        Err(e @ (Error::PagemapNoPfn { .. } | Error::PagemapOpen { .. })) => {
            println!("skipped: physical addresses not readable here: {e}");
            None
        }
        Err(e) => panic!("pagemap mapping failed: {e:?}"),
    }
}

#[test]
fn hugepage_region_gets_one_physical_address_per_hugepage() {
    require_2m_hugepages!(3);
    let mem = HugeMem::allocate(3 * MIB2, PageSize::Size2M, HugePagePolicy::Require).unwrap();
    let Some(map) = map_or_skip(&mem) else { return };
    let IovaMap::PerPage { page_shift, pages } = &map else {
        panic!("expected a per-page map, got {map:?}");
    };
    assert_eq!(*page_shift, 21);
    assert_eq!(pages.len(), 3, "one entry per hugepage");
    for (i, pa) in pages.iter().enumerate() {
        assert_ne!(pa.as_u64(), 0, "page {i}");
        assert_eq!(
            pa.as_u64() % MIB2 as u64,
            0,
            "page {i} at {pa} is not 2 MiB aligned"
        );
    }

    let base = mem.as_ptr().as_ptr();
    for (i, page_pa) in pages.iter().enumerate() {
        // Every 4 KiB step inside a hugepage is the same step in physical memory.
        for k in (0..512).step_by(37).chain([511]) {
            let off = i * MIB2 + 4096 * k + 123;
            let pa = virt_to_phys(base.wrapping_add(off)).unwrap();
            assert_eq!(
                pa.as_u64(),
                page_pa.as_u64() + (4096 * k + 123) as u64,
                "page {i}, 4 KiB step {k}"
            );
            assert_eq!(map.translate(off), Iova(pa.as_u64()));
        }
    }
    // Within one hugepage always contiguous; across, only if the pages happen to be adjacent.
    assert!(map.is_contiguous(MIB2, MIB2));
    let adjacent = pages[1].as_u64() == pages[0].as_u64() + MIB2 as u64;
    assert_eq!(map.is_contiguous(MIB2 - 64, 128), adjacent);
}

#[test]
fn dma_region_with_pagemap_mapper() {
    require_2m_hugepages!(2);
    let region = match DmaRegion::allocate(
        MIB2 + 1,
        PageSize::Size2M,
        HugePagePolicy::Require,
        Arc::new(PagemapMapper),
    ) {
        Ok(r) => r,
        Err(e @ Error::PagemapNoPfn { .. }) => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(region.mapper_name(), "pagemap");
    assert_eq!(region.len(), 2 * MIB2);
    let base = region.as_ptr().as_ptr();
    for off in [0, 1, 4096, MIB2 - 1, MIB2, 2 * MIB2 - 1] {
        let pa = virt_to_phys(base.wrapping_add(off)).unwrap();
        assert_eq!(region.iova_at(off), Iova(pa.as_u64()), "offset {off:#x}");
        assert_eq!(
            region.iova_of(base.wrapping_add(off)),
            Some(Iova(pa.as_u64()))
        );
    }
    assert!(region.is_iova_contiguous(100, MIB2 - 100));
    assert!(format!("{region:?}").contains("iova_pages: 2"));
}

#[test]
fn four_k_regions_are_refused() {
    let mem = HugeMem::allocate(8192, PageSize::Size4K, HugePagePolicy::Require).unwrap();
    match PagemapMapper.map(&mem) {
        Err(Error::PagemapNeedsHugepages {
            page: PageSize::Size4K,
        }) => {}
        other => panic!("expected PagemapNeedsHugepages, got {other:?}"),
    }
    // Also a fallback region, which is what a Prefer policy can silently hand back.
    let mem = HugeMem::allocate(8192, PageSize::Size2M, HugePagePolicy::Never).unwrap();
    assert!(matches!(
        PagemapMapper.map(&mem),
        Err(Error::PagemapNeedsHugepages { .. })
    ));
}

#[test]
fn virt_to_phys_reports_absent_pages() {
    // A mapping that was never touched has no page behind it.
    let untouched = memmap2::MmapOptions::new().len(4096).map_anon().unwrap();
    match virt_to_phys(untouched.as_ptr()) {
        Err(Error::PageNotPresent { va }) => assert_eq!(va, untouched.as_ptr() as usize),
        other => panic!("expected PageNotPresent, got {other:?}"),
    }
}

#[test]
fn virt_to_phys_of_a_4k_page() {
    let mem = HugeMem::allocate(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    let p = mem.as_ptr().as_ptr().wrapping_add(0x2a);
    match virt_to_phys(p) {
        Ok(pa) => {
            assert_ne!(pa.as_u64() & !0xfff, 0);
            assert_eq!(pa.as_u64() & 0xfff, 0x2a, "offset within the page is kept");
        }
        Err(e @ Error::PagemapNoPfn { .. }) => {
            assert!(!common::is_root() || e.to_string().contains("CAP_SYS_ADMIN"));
            println!("skipped: {e}");
        }
        Err(e) => panic!("{e:?}"),
    }
}
