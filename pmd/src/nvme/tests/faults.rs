//! A device that misbehaves or stops answering, and buffers that must not be freed.

use super::*;

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

/// A controller whose device is stepped by hand, and an I/O queue with one read of a buffer
/// from a 2-buffer pool submitted to it and not completed.
fn one_read_in_flight() -> (
    Arc<SoftNvme>,
    Controller<SoftNvme>,
    IoQpair<SoftNvme>,
    Mempool,
) {
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), config());
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(2, 4096);
    dev.set_auto(false);
    q.submit(BlockRequest::read(0, 1, pool.get().unwrap(), 1))
        .unwrap();
    q.flush_submissions().unwrap();
    (dev, ctrl, q, pool)
}

#[test]
fn dropping_a_live_queue_with_commands_outstanding_leaks_their_buffers() {
    let (dev, ctrl, q, pool) = one_read_in_flight();
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
    let (_dev, ctrl, q, pool) = one_read_in_flight();
    ctrl.shutdown().unwrap();
    drop(q);
    assert_eq!(
        pool.available(),
        2,
        "the device is disabled: the buffer is safe to reuse"
    );
}
