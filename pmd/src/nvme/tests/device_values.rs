//! Values a controller may report or write that must not panic or be followed: CAP.MQES = 0,
//! an SQ head outside the queue or beyond the tail, a completion after its command timed out.

use super::*;

#[test]
fn cap_mqes_zero_is_a_clear_error_not_a_panic() {
    let model = ModelConfig {
        max_queue_entries: 1, // CAP.MQES = 0
        ..ModelConfig::default()
    };
    let dev = Arc::new(SoftNvme::new(model));
    let Err(e) = Controller::enable(dev.clone(), Arc::new(IdentityMapper), config()) else {
        panic!("MQES = 0 accepted");
    };
    assert!(
        matches!(e, Error::Nvme(NvmeError::NoQueueEntries { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("MQES is 0 (invalid: queues need at least 2 entries)"),
        "{e}"
    );
    assert_eq!(dev.io_queues(), 0);
}

#[test]
fn cap_mqes_one_gives_two_entry_queues_that_work() {
    let model = ModelConfig {
        max_queue_entries: 2, // CAP.MQES = 1
        ..ModelConfig::default()
    };
    let (_dev, mut ctrl) = bring_up(model, config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(1, 4096);
    for tag in 0..3 {
        let c = run_one(&mut q, BlockRequest::read(0, 1, pool.get().unwrap(), tag));
        assert_eq!(c.tag, tag);
        assert!(c.status.is_ok(), "{:?}", c.status);
    }
}

/// A queue with one read (tag 7) that the device swallowed, and its CID.
fn swallowed_read(
    cfg: ControllerConfig,
) -> (
    Arc<SoftNvme>,
    Controller<SoftNvme>,
    IoQpair<SoftNvme>,
    Mempool,
    u16,
) {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.faults(|f| f.swallow_next_io = Some(cmd::io::READ));
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 7))
        .unwrap();
    q.flush_submissions().unwrap();
    let cids = dev.swallowed();
    assert_eq!(cids.len(), 1);
    (dev, ctrl, q, pool, cids[0])
}

#[test]
fn an_sq_head_out_of_range_or_past_the_tail_is_counted_and_not_taken() {
    let (dev, _ctrl, mut q, pool, cid) = swallowed_read(config());
    // Past the end of the queue: the command completes, the head is refused.
    dev.inject_completion_sqhd(1, cid, 60_000);
    let mut back = Vec::new();
    assert_eq!(q.poll_completions(8, |c| back.push(c)).unwrap(), 1);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].tag, 7);
    assert_eq!(q.queue_stats().device_errors, 1);
    assert_eq!(q.take_fault(), Some(QueueFault::BadSqHead(60_000)));
    drop(back);
    assert_eq!(pool.available(), 2);
    // In range but beyond the tail (one command was submitted: the tail is 1).
    dev.inject_completion_sqhd(1, 999, 5);
    // (poll_completions counts what it hands back: nothing here.)
    assert_eq!(q.poll_completions(8, |_| panic!("no command")).unwrap(), 0);
    assert_eq!(q.queue_stats().device_errors, 3, "bad head and unknown CID");
    // The queue still works, its submissions bounded by the head it kept.
    for tag in 0..4 {
        let c = run_one(&mut q, BlockRequest::read(0, 1, pool.get().unwrap(), tag));
        assert_eq!(c.tag, tag);
    }
    assert_eq!(pool.available(), 2);
}

#[test]
fn a_completion_after_its_timeout_frees_the_cid_and_the_buffer_once() {
    let cfg = ControllerConfig {
        io_timeout: Some(Duration::from_secs(1)),
        ..config()
    };
    let (dev, mut ctrl, mut q, pool, _) = swallowed_read(cfg);
    assert_eq!(q.poll_completions(8, |_| ()).unwrap(), 0);
    // An hour later, by the clock handed in: no sleeping, no race with a busy host.
    let later = Instant::now() + Duration::from_secs(3600);
    let mut expired = Vec::new();
    assert_eq!(q.expire(later, |tag, op| expired.push((tag, op))), 1);
    assert_eq!(expired, vec![(7, BlockOp::Read)]);
    assert_eq!(q.outstanding(), 1, "the CID stays reserved");
    assert_eq!(pool.available(), 1, "the device may still write the buffer");
    // The device was only slow.
    assert_eq!(dev.complete_swallowed(), 1);
    let n = q
        .poll_completions(8, |c| panic!("a timed-out command completed again: {c:?}"))
        .unwrap();
    assert_eq!(n, 0, "nothing handed back");
    assert_eq!(q.queue_stats().late_completions, 1);
    assert_eq!(
        q.queue_stats().device_errors,
        0,
        "late is not a device error"
    );
    assert_eq!(q.outstanding(), 0);
    assert_eq!(pool.available(), 2, "the buffer came back, once");
    // The CID is free again, and the queue works.
    let c = run_one(&mut q, BlockRequest::read(0, 1, pool.get().unwrap(), 8));
    assert_eq!(c.tag, 8);
    drop(c);
    ctrl.delete_io_qpair(q).unwrap();
    assert_eq!(pool.available(), 2);
}
