//! `HugeMem` against the real kernel: 4 KiB maps, 2 MiB hugepages (reserved by the test when
//! running as root), policies and the fallback.

mod common;

use sluice_mempool::{Error, HugeMem, HugePagePolicy, PageSize};

const MIB: usize = 1 << 20;

#[test]
fn four_k_region_is_zeroed_writable_and_bounded() {
    let mem = HugeMem::allocate(3 * 4096 + 5, PageSize::Size4K, HugePagePolicy::Require).unwrap();
    assert_eq!(mem.len(), 4 * 4096, "rounded up to whole pages");
    assert_eq!(mem.page_size(), PageSize::Size4K);
    assert_eq!(mem.requested_page_size(), PageSize::Size4K);
    assert!(!mem.fell_back());
    if common::is_root() {
        assert!(mem.is_locked(), "root has CAP_IPC_LOCK");
    }
    let smaps = common::smaps_of(&mem);
    assert_eq!(common::smaps_kb(&smaps, "KernelPageSize"), 4, "{smaps}");
    // The VMA may have merged with a neighbour of identical flags (see `smaps_of`): a
    // locked region's VMA is locked all through, and holds at least our 16 kB.
    let (size, locked) = (
        common::smaps_kb(&smaps, "Size"),
        common::smaps_kb(&smaps, "Locked"),
    );
    assert!(size >= 16, "{smaps}");
    assert_eq!(locked, if mem.is_locked() { size } else { 0 }, "{smaps}");

    let base = mem.as_ptr().as_ptr();
    assert_eq!(base as usize % 4096, 0);
    common::check_zeroed_and_writable(&mem);

    assert!(mem.contains(base));
    assert!(mem.contains(base.wrapping_add(mem.len() - 1)));
    assert!(!mem.contains(base.wrapping_add(mem.len())));
    assert!(!mem.contains(base.wrapping_sub(1)));
    assert!(!mem.contains(std::ptr::null()));
    assert_eq!(mem.offset_of(base), Some(0));
    assert_eq!(mem.offset_of(base.wrapping_add(12345)), Some(12345));
    assert_eq!(mem.offset_of(base.wrapping_add(mem.len())), None);
    assert_eq!(mem.offset_of(base.wrapping_sub(4096)), None);
}

#[test]
fn never_policy_maps_4k_pages_whatever_is_asked() {
    let mem = HugeMem::allocate(5000, PageSize::Size2M, HugePagePolicy::Never).unwrap();
    assert_eq!(mem.page_size(), PageSize::Size4K);
    assert_eq!(mem.requested_page_size(), PageSize::Size2M);
    assert!(!mem.fell_back(), "Never is a choice, not a fallback");
    assert_eq!(mem.len(), 8192);
    common::check_zeroed_and_writable(&mem);
    let smaps = common::smaps_of(&mem);
    assert_eq!(common::smaps_kb(&smaps, "KernelPageSize"), 4, "{smaps}");
}

fn free_1g() -> u64 {
    let dir = PageSize::Size1G.sysfs_dir().unwrap();
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    read("free_hugepages")
        .unwrap_or(0)
        .saturating_sub(read("resv_hugepages").unwrap_or(0))
}

#[test]
fn prefer_falls_back_to_4k_when_no_hugepages_are_free() {
    // 1 GiB pages are only ever there if reserved at boot or on purpose, so "none free" is the
    // normal case and makes the fallback deterministic.
    if free_1g() > 0 {
        println!("skipped: 1 GiB hugepages are free here, so no fallback would happen");
        return;
    }
    let mem = HugeMem::allocate(4 * MIB + 1, PageSize::Size1G, HugePagePolicy::Prefer).unwrap();
    assert!(mem.fell_back());
    assert_eq!(mem.page_size(), PageSize::Size4K);
    assert_eq!(mem.requested_page_size(), PageSize::Size1G);
    assert_eq!(
        mem.len(),
        4 * MIB + 4096,
        "rounded to the page size it got, not 1 GiB"
    );
    common::check_zeroed_and_writable(&mem);

    // And Require refuses, naming the size and where to reserve.
    match HugeMem::allocate(4 * MIB, PageSize::Size1G, HugePagePolicy::Require) {
        Err(Error::HugePagesUnavailable {
            page,
            bytes,
            needed_pages,
            free_pages,
            sysfs,
            ..
        }) => {
            assert_eq!(page, PageSize::Size1G);
            assert_eq!(bytes, 1 << 30);
            assert_eq!(needed_pages, 1);
            assert_eq!(free_pages, 0);
            assert_eq!(sysfs, "/sys/kernel/mm/hugepages/hugepages-1048576kB");
        }
        other => panic!("expected HugePagesUnavailable, got {other:?}"),
    }
}

#[test]
fn require_errors_when_asking_for_more_than_is_free() {
    // 2^20 pages of 2 MiB = 2 TiB: more than any test machine has reserved.
    let len = (1usize << 20) * 2 * MIB;
    let e = HugeMem::allocate(len, PageSize::Size2M, HugePagePolicy::Require).unwrap_err();
    let msg = e.to_string();
    match &e {
        Error::HugePagesUnavailable {
            page,
            bytes,
            needed_pages,
            sysfs,
            source,
            ..
        } => {
            assert_eq!(*page, PageSize::Size2M);
            assert_eq!(*bytes, len);
            assert_eq!(*needed_pages, 1 << 20);
            assert_eq!(sysfs, "/sys/kernel/mm/hugepages/hugepages-2048kB");
            assert_eq!(source.raw_os_error(), Some(libc::ENOMEM), "{source}");
        }
        other => panic!("expected HugePagesUnavailable, got {other:?}"),
    }
    assert!(
        msg.contains("2 MiB") && msg.contains("need 1048576"),
        "{msg}"
    );
    assert!(
        msg.contains("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        "{msg}"
    );
}

#[test]
fn two_mib_region_gets_locked_hugepages() {
    require_2m_hugepages!(2);
    let mem = HugeMem::allocate(3 * MIB, PageSize::Size2M, HugePagePolicy::Require).unwrap();
    assert_eq!(mem.page_size(), PageSize::Size2M);
    assert_eq!(mem.requested_page_size(), PageSize::Size2M);
    assert!(!mem.fell_back());
    assert_eq!(mem.len(), 4 * MIB);
    assert_eq!(
        mem.as_ptr().as_ptr() as usize % (2 * MIB),
        0,
        "hugetlb maps are page-aligned"
    );
    if common::is_root() {
        assert!(mem.is_locked());
    }
    // The kernel's own view of the mapping: 2 MiB pages, all of them already faulted in.
    // (No `lo` in VmFlags: mlock succeeds on hugetlb but leaves such VMAs unmarked, since
    // hugetlb pages cannot be swapped anyway.)
    let smaps = common::smaps_of(&mem);
    assert_eq!(common::smaps_kb(&smaps, "KernelPageSize"), 2048, "{smaps}");
    // Every page of the VMA (ours, at least 4 MiB) is already backed.
    let (size, backed) = (
        common::smaps_kb(&smaps, "Size"),
        common::smaps_kb(&smaps, "Private_Hugetlb"),
    );
    assert!(size >= 4096 && backed == size, "prefaulted:\n{smaps}");
    common::check_zeroed_and_writable(&mem);
    assert!(mem.contains(mem.as_ptr().as_ptr().wrapping_add(4 * MIB - 1)));
}

#[test]
fn prefer_takes_hugepages_when_there_are_some() {
    require_2m_hugepages!(1);
    let mem = HugeMem::allocate(4096, PageSize::Size2M, HugePagePolicy::Prefer).unwrap();
    assert_eq!(mem.page_size(), PageSize::Size2M);
    assert!(!mem.fell_back());
    assert_eq!(mem.len(), 2 * MIB);
}
