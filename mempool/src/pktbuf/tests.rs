use super::*;
use crate::IdentityMapper;
use crate::lcore::{self, LcoreId};

fn small_pool(name: &str, count: u32, cache: u32) -> PktPool {
    let mut cfg = PktPoolConfig::new(name, count);
    cfg.cache_size = cache;
    // Tests must not depend on hugepages; the 2 MiB path is covered in tests/hugemem.rs.
    cfg.huge_pages = HugePagePolicy::Never;
    cfg.page_size = PageSize::Size4K;
    PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

#[test]
fn a_fresh_buffer_is_empty_with_headroom_and_its_iova() {
    let pool = small_pool("fresh", 8, 0);
    let mut b = pool.alloc().unwrap();
    assert_eq!((b.len(), b.headroom(), b.tailroom()), (0, 128, 2048));
    assert_eq!(b.buf_len(), 2176);
    // Identity mapping: the IOVA is the virtual address.
    assert_eq!(b.buf_iova().as_u64(), b.buf_ptr() as u64);
    assert_eq!(b.data_iova().as_u64(), b.buf_iova().as_u64() + 128);
    b.extend_from_slice(&[1, 2, 3]).unwrap();
    b.meta_mut().port = 3;
    drop(b);
    // A recycled buffer comes back reset.
    let b = pool.alloc().unwrap();
    assert_eq!((b.len(), b.headroom(), b.meta().port), (0, 128, 0));
}

#[test]
fn data_edits_stay_inside_the_buffer() {
    let pool = small_pool("edits", 2, 0);
    let mut b = pool.alloc().unwrap();
    assert!(b.append(2049).is_none());
    assert!(b.prepend(129).is_none());
    b.append(2048).unwrap().fill(7);
    assert_eq!(b.tailroom(), 0);
    assert!(b.extend_from_slice(&[1]).is_none());
    assert!(b.trim_front(48));
    assert!(b.trim_back(1000));
    assert_eq!((b.headroom(), b.len()), (176, 1000));
    assert!(!b.trim_back(1001));
    b.prepend(12).unwrap().fill(0);
    assert_eq!(b.data()[..13], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    assert!(!b.set_data(2000, 177));
    assert!(b.set_data(0, 2176));
    assert_eq!(b.len(), 2176);
}

#[test]
fn exhaustion_is_back_pressure_and_bulk_is_all_or_nothing() {
    let pool = small_pool("exhaust", 40, 0);
    let mut a: Batch<PktBuf> = Batch::new();
    assert!(pool.alloc_bulk(&mut a, 32));
    let mut b: Batch<PktBuf> = Batch::new();
    assert!(!pool.alloc_bulk(&mut b, 9), "only 8 left");
    assert!(b.is_empty());
    assert_eq!(pool.alloc_burst(&mut b, 32), 8);
    assert!(pool.alloc().is_none());
    assert_eq!(pool.available(), 0);
    PktBuf::free_bulk(&mut a);
    assert!(a.is_empty());
    assert_eq!(pool.available(), 32);
    drop(b);
    assert_eq!(pool.available(), 40);
}

#[test]
fn free_bulk_returns_mixed_pools_to_their_own() {
    let p1 = small_pool("mixed-1", 16, 4);
    let p2 = small_pool("mixed-2", 16, 4);
    let mut batch: Batch<PktBuf> = Batch::new();
    for i in 0..12 {
        let _ = batch.push(if i % 3 == 0 { p1.alloc() } else { p2.alloc() }.unwrap());
    }
    assert_eq!((p1.available(), p2.available()), (12, 8));
    PktBuf::free_bulk(&mut batch);
    assert_eq!((p1.available(), p2.available()), (16, 16));
}

#[test]
fn buffers_cross_threads_and_return_to_the_freeing_lcore_cache() {
    let pool = small_pool("cross", 256, 32);
    let (mut tx, mut rx) = crate::ring::ring::<PktBuf>(256).unwrap();
    let p = pool.clone();
    // Lcore 50 allocates and writes, lcore 51 checks and frees (the forwarder's pattern).
    std::thread::spawn(move || {
        let _g = lcore::register(LcoreId::new(50).unwrap()).unwrap();
        for i in 0..100u8 {
            let mut b = p.alloc().unwrap();
            b.extend_from_slice(&[i; 60]).unwrap();
            tx.push(b).unwrap();
        }
    })
    .join()
    .unwrap();
    let p = pool.clone();
    std::thread::spawn(move || {
        let _g = lcore::register(LcoreId::new(51).unwrap()).unwrap();
        for i in 0..100u8 {
            let b = rx.pop().unwrap();
            assert_eq!(b.data(), &[i; 60][..]);
        }
        assert!(
            p.cached(LcoreId::new(51).unwrap()) > 0,
            "frees on an lcore go to its cache"
        );
    })
    .join()
    .unwrap();
    assert_eq!(
        pool.available(),
        256,
        "every buffer is back, in store or caches"
    );
}

#[test]
fn bad_layouts_are_refused_with_the_pool_name() {
    let mut cfg = PktPoolConfig::new("bad", 16);
    cfg.headroom = 64;
    let e = PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pool 'bad': headroom 64 is below the minimum of 128"
    );
    cfg.headroom = 128;
    cfg.data_room = 70_000;
    assert!(
        PktPool::new(&cfg, Arc::new(IdentityMapper))
            .unwrap_err()
            .to_string()
            .contains("70000")
    );
    cfg.data_room = 2048;
    cfg.count = 0;
    assert!(
        PktPool::new(&cfg, Arc::new(IdentityMapper))
            .unwrap_err()
            .to_string()
            .contains("count 0")
    );
    cfg.count = 8;
    cfg.cache_size = 513;
    assert!(
        PktPool::new(&cfg, Arc::new(IdentityMapper))
            .unwrap_err()
            .to_string()
            .contains("cache size 513")
    );
}

#[test]
fn dropping_the_pool_with_buffers_out_keeps_them_valid() {
    let pool = small_pool("orphan", 4, 0);
    let mut b = pool.alloc().unwrap();
    drop(pool);
    // The pool's memory was kept, so the buffer is still usable and can be dropped.
    b.extend_from_slice(b"still here").unwrap();
    assert_eq!(b.data(), b"still here");
}

#[test]
fn hugepage_pool_objects_never_cross_a_page() {
    let mut cfg = PktPoolConfig::new("huge", 2000);
    cfg.huge_pages = HugePagePolicy::Prefer;
    let pool = PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap();
    if !pool.region().page_size().is_huge() {
        println!(
            "skipped: no free 2 MiB hugepages; the 4 KiB layout is covered by the other tests"
        );
        return;
    }
    let page = pool.region().page_size().bytes() as u64;
    let mut all: Batch<PktBuf, 1000> = Batch::new();
    assert!(pool.alloc_bulk(&mut all, 1000));
    for b in all.iter() {
        let start = b.buf_iova().as_u64();
        assert_eq!(start / page, (start + b.buf_len() as u64 - 1) / page);
    }
}

#[cfg(feature = "debug-cookies")]
mod debug_cookies {
    use super::*;

    #[test]
    #[should_panic(expected = "double free of object")]
    fn a_double_free_is_caught() {
        let pool = small_pool("double-free", 4, 0);
        let b = pool.alloc().unwrap();
        // SAFETY: deliberately duplicates the handle to free the buffer twice; the detector
        // must stop the second free before it reaches the store.
        let twin = unsafe { core::ptr::read(&b) };
        drop(b);
        drop(twin);
    }

    #[test]
    #[should_panic(expected = "while free (use after free)")]
    fn a_write_after_free_is_caught_at_the_next_alloc() {
        let pool = small_pool("use-after-free", 1, 0);
        let b = pool.alloc().unwrap();
        let stale = b.buf_ptr();
        drop(b);
        // SAFETY: the pointer is into the pool's live region (the pool still exists); this
        // stands for a stale user writing to a buffer it gave back.
        unsafe { stale.add(300).write(1) };
        let _ = pool.alloc();
    }

    #[test]
    fn clean_use_passes_the_checks() {
        let pool = small_pool("clean", 8, 2);
        let mut batch: Batch<PktBuf> = Batch::new();
        for _ in 0..5 {
            assert!(pool.alloc_bulk(&mut batch, 8));
            batch[0].extend_from_slice(&[9; 100]).unwrap();
            PktBuf::free_bulk(&mut batch);
        }
        assert_eq!(pool.available(), 8);
    }
}
