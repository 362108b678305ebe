//! Shareable memory against the real kernel: memfd-backed regions are the same pages when
//! mapped a second time through their fd (as a vhost-user backend maps them), on 4 KiB pages
//! and on 2 MiB hugepages, with the fallback when hugepages are missing.

mod common;

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use sluice_mempool::{
    DmaRegion, Error, HugeMem, HugePagePolicy, IdentityMapper, IovaMapper, MemBacking, MemfdMapper,
    PageSize, PktPool, PktPoolConfig,
};

const MIB: usize = 1 << 20;

/// Maps the whole file behind `fd` a second time, shared: the peer's view.
fn map_again(fd: BorrowedFd<'_>, len: u64) -> MmapRaw {
    MmapOptions::new()
        .len(len as usize)
        .map_raw(&fd)
        .expect("map the memfd a second time")
}

/// Writes `pattern` at `off` through `dst` and checks `src` sees it; both point at `len`
/// mapped bytes.
fn write_and_check(dst: *mut u8, src: *const u8, len: usize, off: usize, pattern: &[u8]) {
    assert!(off + pattern.len() <= len);
    // SAFETY: `dst` and `src` are live shared mappings of at least `len` bytes, and the
    // range is inside them (checked); no Rust reference into either exists while this test
    // writes through raw pointers.
    unsafe {
        std::ptr::copy_nonoverlapping(pattern.as_ptr(), dst.add(off), pattern.len());
        for (i, want) in pattern.iter().enumerate() {
            assert_eq!(std::ptr::read_volatile(src.add(off + i)), *want, "byte {i}");
        }
    }
}

/// Both directions between the region and a second mapping of its fd, at its first and
/// last bytes.
fn check_same_pages(region: &DmaRegion) {
    let shared = region.fd_region().expect("a memfd region describes itself");
    assert_eq!(shared.offset, 0);
    assert_eq!(shared.len, region.len() as u64);
    let ours = region.as_ptr().as_ptr();
    assert_eq!(shared.va, ours as u64);
    assert_eq!(shared.iova.as_u64(), ours as u64, "IOVA = VA");
    let peer = map_again(shared.fd, shared.len);
    assert_ne!(peer.as_mut_ptr(), ours, "a second mapping, elsewhere");
    let len = region.len();
    write_and_check(ours, peer.as_ptr(), len, 0, b"from the frontend");
    write_and_check(peer.as_mut_ptr(), ours, len, len - 9, b"from peer");
    write_and_check(ours, peer.as_ptr(), len, len / 2, &[0xa5; 300]);
}

#[test]
fn memfd_region_is_the_same_pages_through_its_fd() {
    let region = DmaRegion::shareable(3 * 4096 + 1, PageSize::Size4K, HugePagePolicy::Never)
        .expect("a 4 KiB memfd region");
    assert_eq!(region.len(), 4 * 4096);
    assert_eq!(region.mem().backing(), MemBacking::Memfd);
    assert_eq!(region.mapper_name(), "memfd");
    common::check_zeroed_and_writable(region.mem());
    check_same_pages(&region);
}

#[test]
fn the_memfd_is_sealed_against_resizing() {
    let region = DmaRegion::shareable(8192, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    let fd = region.fd_region().unwrap().fd;
    // What a peer could try with the descriptor it is given.
    let file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    assert_eq!(file.metadata().unwrap().len(), 8192);
    for len in [0, 4096, 1 << 20] {
        let e = file.set_len(len).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "set_len({len}): {e}");
    }
}

#[test]
fn two_mib_memfd_region_is_hugetlb_and_shared() {
    require_2m_hugepages!(2);
    let region = DmaRegion::shareable(3 * MIB, PageSize::Size2M, HugePagePolicy::Require)
        .expect("hugepages were reserved");
    assert_eq!(region.page_size(), PageSize::Size2M);
    assert_eq!(region.len(), 4 * MIB);
    assert!(!region.mem().fell_back());
    let fd = region.fd_region().unwrap().fd;
    let file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    // A hugetlbfs file reports its page size as the block size.
    assert_eq!(file.metadata().unwrap().blksize(), 2 * MIB as u64);
    let smaps = common::smaps_of(region.mem());
    assert_eq!(common::smaps_kb(&smaps, "KernelPageSize"), 2048, "{smaps}");
    check_same_pages(&region);
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
fn memfd_falls_back_to_4k_pages_when_no_hugepages_are_free() {
    // As in hugemem.rs: 1 GiB pages are normally not reserved, which makes the fallback
    // deterministic.
    if free_1g() > 0 {
        println!("skipped: 1 GiB hugepages are free here, so no fallback would happen");
        return;
    }
    let mem = HugeMem::allocate_with(
        4 * MIB + 1,
        PageSize::Size1G,
        HugePagePolicy::Prefer,
        MemBacking::Memfd,
    )
    .unwrap();
    assert!(mem.fell_back());
    assert_eq!(mem.backing(), MemBacking::Memfd);
    assert_eq!(mem.page_size(), PageSize::Size4K);
    assert_eq!(mem.requested_page_size(), PageSize::Size1G);
    assert_eq!(mem.len(), 4 * MIB + 4096);
    let file = std::fs::File::from(mem.fd().unwrap().try_clone_to_owned().unwrap());
    assert_eq!(file.metadata().unwrap().len(), (4 * MIB + 4096) as u64);
    common::check_zeroed_and_writable(&mem);

    // The region built on it is still shareable.
    let region = DmaRegion::shareable(4 * MIB, PageSize::Size1G, HugePagePolicy::Prefer).unwrap();
    assert_eq!(region.page_size(), PageSize::Size4K);
    check_same_pages(&region);

    // Require refuses, as for anonymous memory.
    match HugeMem::allocate_with(
        4 * MIB,
        PageSize::Size1G,
        HugePagePolicy::Require,
        MemBacking::Memfd,
    ) {
        Err(Error::HugePagesUnavailable {
            page, needed_pages, ..
        }) => {
            assert_eq!(page, PageSize::Size1G);
            assert_eq!(needed_pages, 1);
        }
        other => panic!("expected HugePagesUnavailable, got {other:?}"),
    }
}

#[test]
fn anonymous_memory_is_not_shareable() {
    let region = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    assert_eq!(region.mem().backing(), MemBacking::Anonymous);
    assert!(region.mem().fd().is_none());
    assert!(region.fd_region().is_none());
    assert_eq!(IdentityMapper.backing(), MemBacking::Anonymous);

    // The memfd mapper refuses memory it cannot share, naming itself.
    let mem = HugeMem::allocate(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    let e = MemfdMapper.map(&mem).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Mapper {
                mapper: "memfd",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_shareable_packet_pool_is_seen_through_its_fd() {
    let mut cfg = PktPoolConfig::new("shared", 64);
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    cfg.cache_size = 0;
    let pool = PktPool::new_shareable(&cfg).unwrap();
    let shared = pool.region().fd_region().expect("memfd-backed pool");
    let peer = map_again(shared.fd, shared.len);

    let mut pkt = pool.alloc().unwrap();
    pkt.extend_from_slice(b"a frame for the backend").unwrap();
    // Where the peer finds it: descriptor address (IOVA) minus the region's IOVA.
    let off = (pkt.data_iova().as_u64() - shared.iova.as_u64()) as usize;
    assert!(off + pkt.len() <= shared.len as usize);
    // SAFETY: `off..off + len` lies inside the peer's mapping of the whole region (checked),
    // and nothing writes the buffer while we read it.
    let seen = unsafe { std::slice::from_raw_parts(peer.as_ptr().add(off), pkt.len()) };
    assert_eq!(seen, b"a frame for the backend");
    drop(pkt);
    assert_eq!(pool.available(), 64);

    // A pool on a mapper that asks for memfd memory is shareable too: the mapper decides.
    let pool = PktPool::new(&cfg, Arc::new(MemfdMapper)).unwrap();
    assert!(pool.region().fd_region().is_some());
    let fd = pool.region().fd_region().unwrap().fd;
    assert!(fd.as_fd().try_clone_to_owned().is_ok());
}
