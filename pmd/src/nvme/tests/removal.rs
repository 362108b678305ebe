//! A controller removed from under its queues (hot-unplug, surprise removal): all-ones
//! register reads and commands that never complete, or VFIO's release after the kernel
//! asked for the device back. The queue fails with an error that says so, nothing waits
//! unboundedly, and every buffer is either back in its pool or held (never handed back while
//! the device might still write it).

use super::*;
use crate::nvme::model::Removed;

/// A controller with an I/O queue whose every command times out at the next expiry check
/// (a zero timeout: no clock in the test), and 4 reads in flight from a 6-buffer pool.
fn four_reads_in_flight() -> (
    Arc<SoftNvme>,
    Controller<SoftNvme>,
    IoQpair<SoftNvme>,
    Mempool,
) {
    let cfg = ControllerConfig {
        io_timeout: Some(Duration::ZERO),
        ..config()
    };
    let (dev, mut ctrl) = bring_up(ModelConfig::default(), cfg);
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let pool = pool(6, 4096);
    dev.set_auto(false);
    for tag in 0..4 {
        q.submit(BlockRequest::read(tag * 8, 1, pool.get().unwrap(), tag))
            .unwrap();
    }
    q.flush_submissions().unwrap();
    (dev, ctrl, q, pool)
}

fn removed_error(e: &Error) -> (u16, &'static str, usize) {
    match e {
        Error::Nvme(NvmeError::Removed {
            qid,
            why,
            outstanding,
        }) => (*qid, *why, *outstanding),
        other => panic!("expected NvmeError::Removed, got {other:?}"),
    }
}

#[test]
fn surprise_removal_is_found_by_a_timeout_and_all_ones_csts() {
    let (dev, mut ctrl, mut q, pool) = four_reads_in_flight();
    assert_eq!(q.poll_completions(8, |_| ()).unwrap(), 0, "still present");
    dev.remove(Removed::Surprise);
    // Nothing completes, and the queue only polls memory: it cannot tell yet.
    assert_eq!(q.poll_completions(8, |_| ()).unwrap(), 0);
    assert!(!q.is_gone());
    // The timeout check reads CSTS, which is all ones: gone.
    assert_eq!(q.expire(Instant::now(), |_, _| ()), 4);
    assert!(q.is_gone());
    let e = q
        .poll_completions(8, |_| panic!("no completion"))
        .unwrap_err();
    assert_eq!(
        removed_error(&e),
        (1, "CSTS reads all ones after a command timed out", 4)
    );
    assert_eq!(
        e.to_string(),
        "NVMe queue 1: the controller is gone: CSTS reads all ones after a command timed \
         out; 4 command(s) abandoned"
    );
    assert!(ctrl.check_health().is_err());
    // Deleting the queue needs the device: it fails at once (no 5 s admin timeout), and
    // the buffers stay held, as the device was never seen to stop.
    let e = ctrl.delete_io_qpair(q).unwrap_err();
    assert_eq!(removed_error(&e).0, 0);
    assert_eq!(
        pool.available(),
        2,
        "4 buffers held: the device might still write them"
    );
    // Shutdown is bounded too (all-ones CSTS gives up the wait) and says why.
    let e = ctrl.shutdown().unwrap_err();
    assert_eq!(removed_error(&e).0, 0);
    assert_eq!(
        pool.available(),
        2,
        "never handed back without a confirmed stop"
    );
}

#[test]
fn released_device_fails_the_queue_at_once_and_returns_every_buffer() {
    let (dev, ctrl, mut q, pool) = four_reads_in_flight();
    dev.remove(Removed::Released);
    // No timeout needed: the release is known.
    let e = q
        .poll_completions(8, |_| panic!("no completion"))
        .unwrap_err();
    assert_eq!(
        removed_error(&e),
        (
            1,
            "the kernel asked for the device back (hot-unplug) and it was released",
            4
        )
    );
    assert!(q.is_gone());
    drop(q);
    assert_eq!(
        pool.available(),
        2,
        "held until the controller is done with"
    );
    // vfio-pci disabled the released device: shutdown succeeds without touching it, and
    // the buffers come home.
    ctrl.shutdown().unwrap();
    assert_eq!(pool.available(), 6, "every buffer back in its pool");
}

#[test]
fn released_device_drops_cleanly_without_shutdown() {
    let (dev, ctrl, q, pool) = four_reads_in_flight();
    dev.remove(Removed::Released);
    drop(q);
    drop(ctrl);
    assert_eq!(pool.available(), 6);
}
