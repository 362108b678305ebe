//! Data through the I/O queues: PRP shapes, wrap, back-pressure, doorbells.

use super::*;

#[test]
fn reads_and_writes_round_trip_across_prp_shapes() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(4, 512 << 10);
    // 1 block, one page, two pages (PRP2), three pages and more (PRP list), MDTS.
    for (i, &bytes) in [512usize, 4096, 8192, 12288, 65536, 512 << 10]
        .iter()
        .enumerate()
    {
        let blocks = (bytes / 512) as u32;
        let lba = 16 * i as u64;
        let mut buf = pool.get().unwrap();
        fill(&mut buf, i as u8);
        let expect = buf.as_slice()[..bytes].to_vec();
        let c = run_one(&mut q, BlockRequest::write(lba, blocks, buf, i as u64));
        assert_eq!((c.tag, c.op, c.status), (i as u64, BlockOp::Write, Ok(())));
        assert_eq!(
            dev.disk_read(lba as usize * 512, bytes),
            expect,
            "{bytes} bytes on the disk"
        );
        let mut back = c.buf.unwrap();
        back.as_mut_slice().fill(0);
        let c = run_one(&mut q, BlockRequest::read(lba, blocks, back, 99));
        assert_eq!(c.status, Ok(()));
        assert_eq!(
            &c.buf.unwrap().as_slice()[..bytes],
            &expect[..],
            "{bytes} bytes read back"
        );
    }
    // Over MDTS: refused before it reaches the device.
    let r = q
        .submit(BlockRequest::read(0, 1025, pool.get().unwrap(), 0))
        .unwrap_err();
    assert!(matches!(r, Rejected::Invalid(_, BlockError::TooLarge)));
}

#[test]
fn prp_lists_chain_past_one_list_page() {
    // 4 MiB per command: 1024 pages, 1023 list entries over three chained list pages.
    let model = ModelConfig {
        mdts: 0,
        blocks: 16384,
        ..ModelConfig::default()
    };
    let (dev, mut ctrl) = bring_up(
        model,
        ControllerConfig {
            max_transfer: 4 << 20,
            ..config()
        },
    );
    assert_eq!(ctrl.max_transfer(), 4 << 20);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(1, 4 << 20);
    let mut buf = pool.get().unwrap();
    fill(&mut buf, 5);
    let expect = buf.as_slice().to_vec();
    let c = run_one(&mut q, BlockRequest::write(8, 8192, buf, 1));
    assert_eq!(c.status, Ok(()));
    assert!(dev.disk_read(8 * 512, 4 << 20) == expect);
    let mut buf = c.buf.unwrap();
    buf.as_mut_slice().fill(0);
    let c = run_one(&mut q, BlockRequest::read(8, 8192, buf, 2));
    assert!(c.buf.unwrap().as_slice() == &expect[..]);
}

#[test]
fn queue_wraps_and_phase_flips() {
    let cfg = ControllerConfig {
        io_entries: 4,
        ..config()
    };
    let (_dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    assert_eq!(q.info().queue_depth, 3);
    let pool = pool(3, 4096);
    let mut bufs: Vec<DmaObj> = (0..3).map(|_| pool.get().unwrap()).collect();
    let mut done = 0u64;
    // 40 rounds of up to three commands: the 4-entry rings wrap about 30 times.
    for round in 0..40u64 {
        let n = 1 + round as usize % 3;
        for (k, mut b) in bufs.drain(..n).enumerate() {
            b.as_mut_slice()[0] = (round + k as u64) as u8;
            q.submit(BlockRequest::write(round, 1, b, round * 10 + k as u64))
                .unwrap();
        }
        q.flush_submissions().unwrap();
        let mut seen = Vec::new();
        while seen.len() < n {
            q.poll_completions(8, |c| {
                assert_eq!(c.status, Ok(()));
                seen.push(c.tag);
                bufs.push(c.buf.unwrap());
            })
            .unwrap();
        }
        assert_eq!(
            seen,
            (0..n as u64).map(|k| round * 10 + k).collect::<Vec<_>>()
        );
        done += n as u64;
    }
    let s = q.queue_stats();
    assert_eq!((s.submitted, s.completed, s.device_errors), (done, done, 0));
    assert_eq!(q.outstanding(), 0);
}

#[test]
fn full_queue_is_back_pressure() {
    let cfg = ControllerConfig {
        io_entries: 8,
        shadow_doorbells: false,
        ..config()
    };
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    dev.set_auto(false);
    let pool = pool(10, 4096);
    let mut accepted = 0;
    let rejected = loop {
        match q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), accepted)) {
            Ok(()) => accepted += 1,
            Err(r) => break r,
        }
    };
    assert_eq!(accepted, 7, "entries - 1");
    let Rejected::Full(req) = rejected else {
        panic!("{rejected:?}")
    };
    assert_eq!(req.tag, 7, "the request comes back whole");
    assert!(req.buf.is_some());
    q.flush_submissions().unwrap();
    assert_eq!(dev.stats().io_sq_doorbells, 1, "one doorbell for the batch");
    assert_eq!(q.poll_completions(32, |_| ()).unwrap(), 0);
    assert_eq!(dev.step(), 7);
    assert_eq!(q.poll_completions(32, |_| ()).unwrap(), 7);
    assert_eq!(
        q.queue_stats().cq_doorbells,
        1,
        "one CQ head write per poll"
    );
    q.submit(req).unwrap();
}

#[test]
fn shadow_doorbells_skip_mmio_while_the_device_has_not_caught_up() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    dev.set_auto(false);
    let pool = pool(4, 4096);
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 1))
        .unwrap();
    q.flush_submissions().unwrap();
    // The device has not read the shadow since: its EventIdx (0) lies in [old 0, new 1).
    assert_eq!(dev.stats().io_sq_doorbells, 1);
    q.submit(BlockRequest::read(1, 1, pool.get().unwrap(), 2))
        .unwrap();
    q.flush_submissions().unwrap();
    // EventIdx (now 1, the tail the MMIO write made the device read) is in [1, 2): ring.
    assert_eq!(dev.stats().io_sq_doorbells, 2);
    q.submit(BlockRequest::read(2, 1, pool.get().unwrap(), 3))
        .unwrap();
    // Pretend the device went back to sleep at an older EventIdx: no ring needed.
    set_sq_eventidx(&q, 0);
    q.flush_submissions().unwrap();
    assert_eq!(
        dev.stats().io_sq_doorbells,
        2,
        "EventIdx 0 is not in [2, 3)"
    );
    assert_eq!(q.queue_stats().doorbells_skipped, 1);
    // A polling device still finds all three through the shadow tail.
    assert_eq!(dev.step(), 3);
    let mut tags = Vec::new();
    q.poll_completions(8, |c| tags.push(c.tag)).unwrap();
    assert_eq!(tags, vec![1, 2, 3]);
}

#[test]
fn without_shadow_every_batch_rings() {
    let cfg = ControllerConfig {
        shadow_doorbells: false,
        ..config()
    };
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    assert!(!ctrl.shadow_doorbells());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(1, 4096);
    let mut buf = pool.get();
    for i in 0..5 {
        let c = run_one(&mut q, BlockRequest::read(i, 1, buf.take().unwrap(), i));
        buf = c.buf;
    }
    assert_eq!(dev.stats().io_sq_doorbells, 5);
    assert_eq!(dev.stats().io_cq_doorbells, 5);
}

#[test]
fn write_zeroes_flush_and_deallocate() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.disk_write(0, &[0xaa; 8192]);
    assert_eq!(
        run_one(&mut q, BlockRequest::write_zeroes(0, 4, 1)).status,
        Ok(())
    );
    assert_eq!(dev.disk_read(0, 2048), vec![0; 2048]);
    assert_eq!(dev.disk_read(2048, 512), vec![0xaa; 512]);
    let c = run_one(&mut q, BlockRequest::deallocate(8, 4, pool.get(), 2));
    assert_eq!(c.status, Ok(()));
    assert_eq!(dev.disk_read(8 * 512, 2048), vec![0; 2048]);
    assert_eq!(dev.disk_read(12 * 512, 512), vec![0xaa; 512]);
    assert_eq!(run_one(&mut q, BlockRequest::flush(3)).status, Ok(()));
    let r = q
        .submit(BlockRequest::deallocate(0, 1, None, 4))
        .unwrap_err();
    assert!(matches!(r, Rejected::Invalid(_, BlockError::BadBuffer)));
}

#[test]
fn model_on_its_own_thread_polls_shadow_doorbells() {
    let cfg = ControllerConfig {
        io_entries: 16,
        ..config()
    };
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    dev.set_auto(false);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let device = {
        let (dev, stop) = (dev.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                dev.step();
                std::thread::yield_now();
            }
        })
    };
    let pool = pool(15, 4096);
    let (mut submitted, mut completed) = (0u64, 0u64);
    let mut free: Vec<DmaObj> = (0..15).map(|_| pool.get().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while completed < 2000 && Instant::now() < deadline {
        while let Some(mut b) = free.pop() {
            b.as_mut_slice()[..8].copy_from_slice(&submitted.to_le_bytes());
            match q.submit(BlockRequest::write(submitted % 8192, 1, b, submitted)) {
                Ok(()) => submitted += 1,
                Err(r) => {
                    free.push(r.into_request().buf.unwrap());
                    break;
                }
            }
        }
        q.flush_submissions().unwrap();
        q.poll_completions(32, |c| {
            assert_eq!(c.tag, completed, "completions in order on one queue");
            assert_eq!(c.status, Ok(()));
            completed += 1;
            free.push(c.buf.unwrap());
        })
        .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    device.join().unwrap();
    dev.set_auto(true);
    assert!(completed >= 2000, "{completed} completed");
    let s = *q.queue_stats();
    assert_eq!(s.device_errors, 0);
    let per_io = (s.sq_doorbells + s.cq_doorbells) as f64 / s.completed as f64;
    assert!(per_io < 2.0, "{per_io} MMIO doorbells per I/O");
    ctrl.delete_io_qpair(q).unwrap();
    ctrl.shutdown().unwrap();
}

#[test]
fn random_submit_flush_poll_sequences_complete_every_command_once() {
    let mut rng = 0x5eed_1234_abcd_0001u64;
    for case in 0..40u64 {
        let entries = 2 + (next(&mut rng) % 15) as u16;
        let cfg = ControllerConfig {
            io_entries: entries,
            shadow_doorbells: case % 2 == 0,
            ..config()
        };
        let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
        let mut q = ctrl.create_io_qpair(1).unwrap();
        let manual = case % 3 == 0;
        dev.set_auto(!manual);
        let pool = pool(u32::from(entries), 4096);
        let mut bufs: Vec<DmaObj> = std::iter::from_fn(|| pool.get()).collect();
        let mut pending = std::collections::BTreeSet::new();
        let mut tag = 0u64;
        let reap = |q: &mut IoQpair<SoftNvme>,
                    bufs: &mut Vec<DmaObj>,
                    pending: &mut std::collections::BTreeSet<u64>,
                    max: usize| {
            q.poll_completions(max, |c| {
                assert_eq!(c.status, Ok(()), "case {case}");
                assert!(
                    pending.remove(&c.tag),
                    "case {case}: tag {} twice or unknown",
                    c.tag
                );
                let b = c.buf.unwrap();
                bufs.push(b);
            })
            .unwrap();
        };
        for _ in 0..300 {
            match next(&mut rng) % 5 {
                0 | 1 => {
                    for _ in 0..next(&mut rng) % u64::from(entries) {
                        let Some(mut b) = bufs.pop() else { break };
                        b.as_mut_slice()[..8].copy_from_slice(&tag.to_le_bytes());
                        let req = if tag.is_multiple_of(3) {
                            BlockRequest::read(tag % 64, 1, b, tag)
                        } else {
                            BlockRequest::write(tag % 64, 8, b, tag)
                        };
                        match q.submit(req) {
                            Ok(()) => {
                                pending.insert(tag);
                                tag += 1;
                            }
                            Err(r) => {
                                assert!(matches!(r, Rejected::Full(_)), "case {case}");
                                bufs.extend(r.into_request().buf);
                                break;
                            }
                        }
                    }
                }
                2 => q.flush_submissions().unwrap(),
                3 => {
                    if manual {
                        dev.step();
                    }
                }
                _ => reap(
                    &mut q,
                    &mut bufs,
                    &mut pending,
                    1 + (next(&mut rng) % 8) as usize,
                ),
            }
            assert_eq!(q.outstanding(), pending.len(), "case {case}");
        }
        dev.set_auto(true);
        for _ in 0..100 {
            if pending.is_empty() {
                break;
            }
            q.flush_submissions().unwrap();
            dev.step();
            reap(&mut q, &mut bufs, &mut pending, usize::MAX);
        }
        assert!(
            pending.is_empty(),
            "case {case}: {pending:?} never completed"
        );
        let s = *q.queue_stats();
        assert_eq!(
            (s.submitted, s.completed, s.device_errors),
            (tag, tag, 0),
            "case {case}"
        );
        assert_eq!(
            bufs.len(),
            usize::from(entries),
            "case {case}: every buffer back"
        );
        ctrl.delete_io_qpair(q).unwrap();
    }
}
