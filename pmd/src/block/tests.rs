//! The RAM disk and io_uring backends through the [`BlockQueue`] API.

use std::sync::Arc;

use sluice_mempool::{DmaObj, HugePagePolicy, IdentityMapper, Mempool, PageSize, PoolConfig};

use super::*;

fn pool(count: u32, size: usize) -> Mempool {
    let mut cfg = PoolConfig::new("block-test", count, size);
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    Mempool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

fn drain<Q: BlockQueue>(q: &mut Q, want: usize) -> Vec<BlockCompletion> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        q.poll_completions(64, |c| out.push(c)).unwrap();
        if out.len() >= want {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(out.len(), want, "completions");
    out
}

fn pattern(buf: &mut DmaObj, lba: u64) {
    for (i, w) in buf.as_mut_slice().chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(lba << 20 | i as u64).to_le_bytes());
    }
}

/// Writes a batch, reads it back, checks every byte; then zeroes, flushes and checks the
/// refusals. `bs` is the queue's block size; buffers are 8 KiB.
fn exercise<Q: BlockQueue>(q: &mut Q) {
    let bs = q.info().block_size as u64;
    let blocks = (8192 / bs) as u32;
    let pool = pool(16, 8192);
    for i in 0..8u64 {
        let mut b = pool.get().unwrap();
        pattern(&mut b, i * u64::from(blocks));
        q.submit(BlockRequest::write(i * u64::from(blocks), blocks, b, i))
            .unwrap();
    }
    assert_eq!(q.outstanding(), 8);
    q.flush_submissions().unwrap();
    let done = drain(q, 8);
    assert!(
        done.iter()
            .all(|c| c.status == Ok(()) && c.op == BlockOp::Write)
    );
    let mut tags: Vec<u64> = done.iter().map(|c| c.tag).collect();
    tags.sort();
    assert_eq!(tags, (0..8).collect::<Vec<_>>());
    drop(done);
    for i in 0..8u64 {
        let mut b = pool.get().unwrap();
        b.as_mut_slice().fill(0xee);
        q.submit(BlockRequest::read(
            i * u64::from(blocks),
            blocks,
            b,
            100 + i,
        ))
        .unwrap();
    }
    for c in drain(q, 8) {
        assert_eq!(c.status, Ok(()));
        let lba = (c.tag - 100) * u64::from(blocks);
        let mut want = pool.get().unwrap();
        pattern(&mut want, lba);
        assert!(
            c.buf.unwrap().as_slice() == want.as_slice(),
            "LBA {lba} reads back"
        );
    }
    q.submit(BlockRequest::write_zeroes(0, blocks, 7)).unwrap();
    q.submit(BlockRequest::flush(8)).unwrap();
    let done = drain(q, 2);
    assert!(done.iter().all(|c| c.status == Ok(())), "{done:?}");
    q.submit(BlockRequest::read(0, blocks, pool.get().unwrap(), 9))
        .unwrap();
    let c = drain(q, 1).pop().unwrap();
    assert!(c.buf.unwrap().as_slice().iter().all(|&b| b == 0), "zeroed");
    let end = q.info().blocks;
    let r = q
        .submit(BlockRequest::read(end, 1, pool.get().unwrap(), 0))
        .unwrap_err();
    assert!(matches!(r, Rejected::Invalid(_, BlockError::OutOfRange)));
    let small = pool.get().unwrap();
    let r = q
        .submit(BlockRequest::read(0, blocks * 2, small, 0))
        .unwrap_err();
    assert!(matches!(r, Rejected::Invalid(_, BlockError::BadBuffer)));
    assert!(q.stats().doorbells >= 3);
}

#[test]
fn ram_disk_reads_back_what_it_wrote() {
    let mut q = RamDisk::new(512, 4096, 32);
    exercise(&mut q);
    assert_eq!(q.stats().submitted, q.stats().completed);
}

#[test]
fn ram_disk_full_is_back_pressure() {
    let mut q = RamDisk::new(512, 64, 4);
    let pool = pool(5, 4096);
    for i in 0..4 {
        q.submit(BlockRequest::read(i, 1, pool.get().unwrap(), i))
            .unwrap();
    }
    let Err(Rejected::Full(req)) = q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 9))
    else {
        panic!("not full");
    };
    assert_eq!(req.tag, 9);
    assert_eq!(q.poll_completions(2, drop).unwrap(), 2, "max is honoured");
    q.submit(req).unwrap();
    assert_eq!(drain(&mut q, 3).len(), 3);
}

#[test]
fn io_uring_file_reads_back_what_it_wrote() {
    let path = std::env::temp_dir().join(format!("sluice-uring-test-{}", std::process::id()));
    let cfg = UringConfig {
        queue_depth: 16,
        file_size: Some(4 << 20),
        ..UringConfig::default()
    };
    let q = UringQueue::open(&path, &cfg).or_else(|e| {
        eprintln!("O_DIRECT open failed ({e}); trying buffered I/O");
        UringQueue::open(
            &path,
            &UringConfig {
                direct: false,
                ..cfg.clone()
            },
        )
    });
    let mut q = match q {
        Ok(q) => q,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            let unavailable = matches!(
                &e,
                Error::Block(BackendError::Io {
                    step: BackendStep::UringSetup,
                    ..
                })
            );
            assert!(unavailable, "{e}");
            eprintln!("skipped: io_uring is unavailable here: {e}");
            return;
        }
    };
    assert_eq!(q.info().blocks, (4 << 20) / 512);
    exercise(&mut q);
    // Again with a registered pool: reads and writes into it go as fixed-buffer requests.
    let fixed = pool(16, 8192);
    q.register_pool(&fixed).unwrap();
    let mut b = fixed.get().unwrap();
    pattern(&mut b, 3);
    q.submit(BlockRequest::write(3, 16, b, 1)).unwrap();
    let c = drain(&mut q, 1).pop().unwrap();
    assert_eq!(c.status, Ok(()));
    let mut b = c.buf.unwrap();
    b.as_mut_slice().fill(0);
    q.submit(BlockRequest::read(3, 16, b, 2)).unwrap();
    let c = drain(&mut q, 1).pop().unwrap();
    let mut want = fixed.get().unwrap();
    pattern(&mut want, 3);
    assert!(c.buf.unwrap().as_slice() == want.as_slice());
    drop(want);
    let pool = pool(17, 4096);
    let mut n = 0;
    let full = loop {
        match q.submit(BlockRequest::read(n, 1, pool.get().unwrap(), n)) {
            Ok(()) => n += 1,
            Err(r) => break r,
        }
    };
    assert!(matches!(full, Rejected::Full(_)));
    assert_eq!(n, 16);
    drop(q); // reaps the outstanding reads before the buffers go
    assert_eq!(
        pool.available(),
        16,
        "all but the refused request's buffer are back"
    );
    drop(full);
    std::fs::remove_file(&path).unwrap();
}
