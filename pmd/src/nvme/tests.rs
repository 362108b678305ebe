//! The driver against the software controller model ([`super::model`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_mempool::{DmaObj, HugePagePolicy, IdentityMapper, Mempool, PageSize, PoolConfig};

use super::model::{ModelConfig, SoftNvme};
use super::*;
use crate::block::{BlockCompletion, BlockError, BlockOp, BlockQueue, BlockRequest, Rejected};
use crate::error::Error;

fn config() -> ControllerConfig {
    ControllerConfig {
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        io_qpairs: 2,
        ..ControllerConfig::default()
    }
}

fn bring_up(model: ModelConfig, cfg: ControllerConfig) -> (Arc<SoftNvme>, Controller<SoftNvme>) {
    let dev = Arc::new(SoftNvme::new(model));
    let ctrl = Controller::enable(dev.clone(), Arc::new(IdentityMapper), cfg).unwrap();
    (dev, ctrl)
}

fn pool(count: u32, size: usize) -> Mempool {
    let mut cfg = PoolConfig::new("nvme-test", count, size);
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    Mempool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

fn fill(buf: &mut DmaObj, seed: u8) {
    for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

/// Submits, flushes and polls until the request completes.
fn run_one<Q: BlockQueue>(q: &mut Q, req: BlockRequest) -> BlockCompletion {
    q.submit(req).map_err(|r| format!("{r:?}")).unwrap();
    q.flush_submissions().unwrap();
    let mut out = None;
    for _ in 0..1000 {
        q.poll_completions(1, |c| out = Some(c)).unwrap();
        if let Some(c) = out.take() {
            return c;
        }
    }
    panic!("no completion");
}

#[test]
fn bring_up_identifies_negotiates_and_shuts_down() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    assert_eq!(ctrl.info().model, "Sluice soft NVMe");
    assert_eq!(ctrl.info().serial, "SLUICE0001");
    assert_eq!(ctrl.namespaces().len(), 1);
    let ns = ctrl.namespaces()[0];
    assert_eq!((ns.nsid, ns.blocks, ns.block_size), (1, 8192, 512));
    assert_eq!(ctrl.io_queues_granted(), 2);
    assert_eq!(ctrl.max_transfer(), 512 << 10, "MDTS 7 at 4 KiB pages");
    assert!(ctrl.shadow_doorbells() && dev.doorbell_buffer_enabled());
    let a = ctrl.create_io_qpair(1).unwrap();
    let b = ctrl.create_io_qpair(1).unwrap();
    assert_eq!((a.qid(), b.qid()), (1, 2));
    let e = ctrl.create_io_qpair(1).unwrap_err();
    assert!(
        e.to_string()
            .contains("all 2 granted I/O queue pairs are in use"),
        "{e}"
    );
    assert!(ctrl.create_io_qpair(7).is_err(), "no namespace 7");
    assert_eq!(dev.io_queues(), 2);
    ctrl.delete_io_qpair(a).unwrap();
    assert_eq!(dev.io_queues(), 1);
    let a = ctrl.create_io_qpair(1).unwrap();
    assert_eq!(a.qid(), 1, "the freed qid is reused");
    ctrl.shutdown().unwrap();
    assert_eq!(dev.io_queues(), 0);
    assert_eq!(dev.read32(regs::CSTS).unwrap() & regs::CSTS_RDY, 0);
    drop((a, b));
}

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

/// Writes queue 1's SQ EventIdx slot, as the device would.
fn set_sq_eventidx(q: &IoQpair<SoftNvme>, v: u32) {
    let sh = q.shadow_for_tests().expect("shadow doorbells on");
    sh.mem
        .store_u32(sh.base + sh.page_size + regs::sq_doorbell(1, 0), v);
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
fn unknown_cid_is_counted_and_not_followed() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    dev.inject_completion(1, 200); // in range, never issued
    dev.inject_completion(1, 0xfff0); // out of range
    let mut calls = 0;
    assert_eq!(q.poll_completions(8, |_| calls += 1).unwrap(), 0);
    assert_eq!(calls, 0);
    assert_eq!(q.queue_stats().device_errors, 2);
    assert_eq!(q.take_fault(), Some(QueueFault::UnknownCid(0xfff0)));
    assert_eq!(q.stats().device_errors, 2);
    // The queue still works.
    let pool = pool(1, 4096);
    assert_eq!(
        run_one(&mut q, BlockRequest::read(0, 1, pool.get().unwrap(), 5)).tag,
        5
    );
}

#[test]
fn duplicated_completion_is_counted_once() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.faults(|f| f.duplicate_next = true);
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 1))
        .unwrap();
    q.flush_submissions().unwrap();
    let mut back = Vec::new();
    q.poll_completions(8, |c| back.push(c)).unwrap();
    assert_eq!(back.len(), 1, "the buffer is handed back once");
    assert_eq!(back[0].tag, 1);
    assert_eq!(q.queue_stats().device_errors, 1);
    assert!(matches!(q.take_fault(), Some(QueueFault::DuplicateCid(_))));
    assert_eq!(
        pool.available(),
        1,
        "one buffer is with the test, none leaked or doubled"
    );
}

#[test]
fn error_status_is_decoded_per_command() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(1, 4096);
    dev.faults(|f| f.fail_next_io = Some((cmd::io::READ, NvmeStatus::generic(0x81, false))));
    let c = run_one(&mut q, BlockRequest::read(0, 1, pool.get().unwrap(), 3));
    let Err(BlockError::Nvme(st)) = c.status else {
        panic!("{:?}", c.status)
    };
    assert_eq!(
        (st.sct, st.sc, st.dnr),
        (StatusCodeType::Generic, 0x81, false)
    );
    assert!(c.buf.is_some());
    // Out of range is refused at submission.
    let r = q
        .submit(BlockRequest::read(8192, 1, c.buf.unwrap(), 0))
        .unwrap_err();
    assert!(matches!(r, Rejected::Invalid(_, BlockError::OutOfRange)));
}

#[test]
fn fatal_status_on_enable_names_csts() {
    let dev = Arc::new(SoftNvme::new(ModelConfig::default()));
    dev.faults(|f| f.fatal_on_enable = true);
    let e = Controller::enable(dev, Arc::new(IdentityMapper), config()).unwrap_err();
    let Error::NvmeFatal {
        register, value, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (*register, value & regs::CSTS_CFS),
        ("CSTS", regs::CSTS_CFS)
    );
    assert!(e.to_string().contains("CSTS = 0x00000002"), "{e}");
}

#[test]
fn fatal_status_during_admin_command() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    ctrl.check_health().unwrap();
    dev.set_fatal();
    let e = ctrl.check_health().unwrap_err();
    assert!(e.to_string().contains("CSTS = 0x00000003"), "{e}");
    let e = ctrl.create_io_qpair(1).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NvmeFatal {
                register: "CSTS",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn controller_that_never_becomes_ready_times_out_naming_csts() {
    let dev = Arc::new(SoftNvme::new(ModelConfig {
        timeout_units: 1,
        ..ModelConfig::default()
    }));
    dev.faults(|f| f.never_ready = true);
    let start = Instant::now();
    let e = Controller::enable(dev, Arc::new(IdentityMapper), config()).unwrap_err();
    let waited = start.elapsed();
    let Error::NvmeTimeout {
        register,
        value,
        waited_ms,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!((*register, *value), ("CSTS", 0));
    assert!(
        *waited_ms >= 500 && waited < Duration::from_secs(3),
        "CAP.TO = 500 ms bounds it"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "NVMe: CSTS = 0x00000000 after {waited_ms} ms waiting for RDY = 1 after CC.EN = 1; \
             the controller is hung or gone: reset the device"
        )
    );
}

#[test]
fn shutdown_that_never_completes_times_out_naming_csts() {
    let cfg = ControllerConfig {
        shutdown_timeout: Duration::from_millis(50),
        ..config()
    };
    let (dev, ctrl) = bring_up(ModelConfig::default(), cfg);
    dev.faults(|f| f.ignore_shutdown = true);
    let e = ctrl.shutdown().unwrap_err();
    assert!(e.to_string().contains("SHST = 10"), "{e}");
    assert_eq!(
        dev.read32(regs::CSTS).unwrap() & regs::CSTS_RDY,
        0,
        "still disabled after"
    );
}

#[test]
fn lost_command_times_out_and_keeps_its_buffer() {
    let cfg = ControllerConfig {
        io_timeout: Some(Duration::from_millis(5)),
        ..config()
    };
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.faults(|f| f.swallow_next_io = Some(cmd::io::READ));
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 42))
        .unwrap();
    q.flush_submissions().unwrap();
    assert_eq!(q.poll_completions(8, |_| ()).unwrap(), 0);
    assert_eq!(q.expire(Instant::now(), |_, _| panic!("too early")), 0);
    std::thread::sleep(Duration::from_millis(10));
    let mut expired = Vec::new();
    assert_eq!(
        q.expire(Instant::now(), |tag, op| expired.push((tag, op))),
        1
    );
    assert_eq!(expired, vec![(42, BlockOp::Read)]);
    assert_eq!(q.outstanding(), 1, "the CID stays reserved");
    assert_eq!(pool.available(), 1, "the device may still write the buffer");
    ctrl.delete_io_qpair(q).unwrap();
    assert_eq!(pool.available(), 2, "released once the queue is gone");
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
fn dropping_a_live_queue_with_commands_outstanding_leaks_their_buffers() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.set_auto(false);
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 1))
        .unwrap();
    q.flush_submissions().unwrap();
    drop(q); // not deleted: the device may still write the buffer
    assert_eq!(
        pool.available(),
        1,
        "the in-flight buffer never returns to the pool"
    );
    assert_eq!(dev.io_queues(), 1, "the queue is still live on the device");
    ctrl.shutdown().unwrap();
    assert_eq!(dev.io_queues(), 0, "shutdown deletes it");
}

#[test]
fn queues_dropped_after_shutdown_release_their_buffers() {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.set_auto(false);
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 1))
        .unwrap();
    q.flush_submissions().unwrap();
    ctrl.shutdown().unwrap();
    drop(q);
    assert_eq!(
        pool.available(),
        2,
        "the device is disabled: the buffer is safe to reuse"
    );
}

/// xorshift64 for the randomized test (seeded, so a failure reproduces).
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
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
