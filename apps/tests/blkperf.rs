//! `sluice-blkperf`'s lcore loop over the RAM disk and over the NVMe driver on the software
//! controller model, with verification.

use std::sync::Arc;
use std::time::Duration;

use sluice_apps::blkperf::{JobConfig, Report, Workload, render_json, render_text, run_queue};
use sluice_mempool::{HugePagePolicy, IdentityMapper, Mempool, PageSize, PoolConfig};
use sluice_pmd::block::RamDisk;
use sluice_pmd::nvme::model::{ModelConfig, SoftNvme};
use sluice_pmd::nvme::{Controller, ControllerConfig};

fn pool(count: u32, size: usize) -> Mempool {
    let mut cfg = PoolConfig::new("blkperf-test", count, size);
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    Mempool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

fn job(workload: Workload, verify: bool) -> JobConfig {
    JobConfig {
        queue_depth: 8,
        io_size: 4096,
        workload,
        read_percent: workload.read_percent(50),
        duration: Duration::from_millis(200),
        verify,
        seed: 42,
        span_blocks: Some(2048),
    }
}

#[test]
fn ram_disk_randrw_verifies() {
    let mut q = RamDisk::new(512, 8192, 8);
    let p = pool(8, 4096);
    let r = run_queue(&mut q, 0, 1, 0, &job(Workload::RandRw, true), &p).unwrap();
    assert!(r.ios > 0 && r.verified_blocks > 0);
    assert_eq!((r.errors, r.mismatches), (0, 0));
    let report = Report {
        target: "ram".into(),
        job: "randrw".into(),
        lcores: vec![r],
        interrupted: false,
    };
    let text = render_text(&report);
    assert!(
        text.contains("99.999%") && text.contains("0 mismatches"),
        "{text}"
    );
    let json = render_json(&report);
    assert!(
        json.starts_with("{\"target\":\"ram\"") && json.contains("\"mismatches\":0"),
        "{json}"
    );
    assert_eq!(report.failures(), 0);
}

#[test]
fn nvme_driver_on_the_model_verifies_and_counts_doorbells() {
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
    let mut ctrl = Controller::enable(dev.clone(), Arc::new(IdentityMapper), cfg).unwrap();
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let p = pool(8, 4096);
    for w in [Workload::RandRw, Workload::Read, Workload::Write] {
        let r = run_queue(&mut q, 0, 1, 0, &job(w, true), &p).unwrap();
        assert!(r.ios > 0, "{w}");
        assert_eq!((r.errors, r.mismatches), (0, 0), "{w}");
        assert!(r.doorbells > 0);
    }
    // Data written with the pattern is on the model's disk: LBA 0 holds block 0's pattern.
    let first = dev.disk_read(0, 8);
    let want = sluice_apps::blkperf::pattern_word(42, 0, 0).to_le_bytes();
    assert_eq!(first, want);
    ctrl.delete_io_qpair(q).unwrap();
    ctrl.shutdown().unwrap();
}

#[test]
fn corrupted_data_is_counted_as_mismatches() {
    let dev = Arc::new(SoftNvme::new(ModelConfig::default()));
    let cfg = ControllerConfig {
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        ..ControllerConfig::default()
    };
    let mut ctrl = Controller::enable(dev.clone(), Arc::new(IdentityMapper), cfg).unwrap();
    let mut q = ctrl.create_io_qpair(1).unwrap();
    let p = pool(8, 4096);
    // The prefill only writes; the first read of the timed phase comes back corrupted.
    dev.faults(|f| f.corrupt_next_read = true);
    let r = run_queue(&mut q, 0, 1, 0, &job(Workload::RandRead, true), &p).unwrap();
    assert_eq!(r.mismatches, 1, "exactly the corrupted block");
    assert_eq!(r.errors, 0);
    ctrl.delete_io_qpair(q).unwrap();
}
