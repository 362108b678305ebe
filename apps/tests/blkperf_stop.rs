//! A stopped `sluice-blkperf` lcore: it drains what it has in flight and returns what it
//! did, and the NVMe controller under it then deletes its queue and shuts down cleanly, as
//! the binary does on SIGINT.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sluice_apps::blkperf::{JobConfig, Workload, run_queue_until};
use sluice_mempool::{HugePagePolicy, IdentityMapper, Mempool, PageSize, PoolConfig};
use sluice_pmd::block::{BlockQueue, RamDisk};
use sluice_pmd::nvme::model::{ModelConfig, SoftNvme};
use sluice_pmd::nvme::{Controller, ControllerConfig};

fn pool() -> Mempool {
    let mut cfg = PoolConfig::new("blkperf-stop", 8, 4096);
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    Mempool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

/// A job that would run for an hour unless stopped.
fn job(workload: Workload, verify: bool) -> JobConfig {
    JobConfig {
        queue_depth: 8,
        io_size: 4096,
        workload,
        read_percent: workload.read_percent(50),
        duration: Duration::from_secs(3600),
        verify,
        seed: 7,
        span_blocks: Some(2048),
    }
}

#[test]
fn a_stopped_lcore_drains_and_the_controller_shuts_down_cleanly() {
    let dev = Arc::new(SoftNvme::new(ModelConfig {
        blocks: 16384,
        ..ModelConfig::default()
    }));
    let cfg = ControllerConfig {
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        io_entries: 16,
        ..ControllerConfig::default()
    };
    let mut ctrl = Controller::enable(dev, Arc::new(IdentityMapper), cfg).unwrap();
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let p = pool();
    // Set before the call: the lcore stops at its first look; for a verify run that is
    // before the timed phase, which then reads nothing it did not write.
    let stop = AtomicBool::new(true);
    for (w, verify) in [(Workload::RandRw, false), (Workload::RandRw, true)] {
        let r = run_queue_until(&mut q, 0, 1, 0, &job(w, verify), &p, &stop).unwrap();
        assert_eq!((r.errors, r.mismatches), (0, 0), "{w} verify {verify}");
        assert!(r.elapsed < Duration::from_secs(3600));
        assert_eq!(q.outstanding(), 0, "drained");
    }
    assert_eq!(p.available(), 8, "every buffer back in its pool");
    ctrl.delete_io_qpair(q).unwrap();
    ctrl.shutdown().unwrap();
}

#[test]
fn a_stopped_lcore_on_the_ram_disk_reports_what_it_did() {
    let mut q = RamDisk::new(512, 8192, 8);
    let p = pool();
    let stop = AtomicBool::new(false);
    // The stop comes from another thread while the lcore runs, as a signal's does.
    std::thread::scope(|s| {
        let lcore =
            s.spawn(|| run_queue_until(&mut q, 0, 1, 0, &job(Workload::RandRead, true), &p, &stop));
        stop.store(true, std::sync::atomic::Ordering::Release);
        let r = lcore.join().unwrap().unwrap();
        assert_eq!((r.errors, r.mismatches), (0, 0));
    });
    assert_eq!(q.outstanding(), 0);
    assert_eq!(p.available(), 8);
}
