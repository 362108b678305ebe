//! An NVMe controller that writes arbitrary completion entries — any CID, status, SQ head and
//! phase — into an I/O completion queue while commands are in flight, and completes
//! commands after they timed out.
//!
//! Invariants: no panic, no access outside the queue memory (checked accessors; ASan for the
//! rest), and every buffer back in its pool once the controller is shut down and the queue
//! dropped.

#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_pmd::IdentityMapper;
use sluice_pmd::block::{BlockQueue, BlockRequest};
use sluice_pmd::mempool::{HugePagePolicy, Mempool, PageSize, PoolConfig};
use sluice_pmd::nvme::model::{ModelConfig, SoftNvme};
use sluice_pmd::nvme::{Controller, ControllerConfig};

const BUFFERS: u32 = 8;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn pool() -> Mempool {
    let mut cfg = PoolConfig::new("fuzz-nvme", BUFFERS, 8192);
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    Mempool::new(&cfg, Arc::new(IdentityMapper)).expect("a 4 KiB-page pool")
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let pool = pool();
    let dev = Arc::new(SoftNvme::new(ModelConfig::default()));
    let cfg = ControllerConfig {
        io_entries: 4 << u.int_in_range(0..=3)?,
        io_qpairs: 1,
        shadow_doorbells: u.arbitrary()?,
        io_timeout: Some(Duration::from_secs(1)),
        admin_timeout: Duration::from_secs(5),
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        ..ControllerConfig::default()
    };
    let Ok(mut ctrl) = Controller::enable(dev.clone(), Arc::new(IdentityMapper), cfg) else {
        return Ok(());
    };
    let Ok(mut q) = ctrl.create_io_qpair(1) else {
        return Ok(());
    };
    let mut tag = 0u64;
    let r = (|| -> Result<()> {
        while !u.is_empty() {
            match u.int_in_range(0..=6)? {
                0 => {
                    if let Some(buf) = pool.get() {
                        let lba = u.int_in_range(0..=64)?;
                        let blocks = u.int_in_range(1..=16)?;
                        tag += 1;
                        let req = if u.arbitrary()? {
                            BlockRequest::read(lba, blocks, buf, tag)
                        } else {
                            BlockRequest::write(lba, blocks, buf, tag)
                        };
                        let _ = q.submit(req);
                    }
                }
                1 => {
                    let _ = q.flush_submissions();
                }
                2 => {
                    let _ = q.poll_completions(u.int_in_range(1..=16)?, drop);
                }
                3 => {
                    let offset: u16 = u.arbitrary()?;
                    let len = u.int_in_range(1..=16)?;
                    dev.scribble_cq(1, usize::from(offset), u.bytes(len)?);
                }
                4 => {
                    let later = Instant::now() + Duration::from_secs(3600);
                    q.expire(later, |_, _| ());
                }
                5 => {
                    if u.arbitrary()? {
                        dev.complete_swallowed();
                    } else {
                        dev.faults(|f| f.swallow_next_io = Some(2)); // READ
                    }
                }
                _ => {
                    dev.inject_completion_sqhd(1, u.arbitrary()?, u.arbitrary()?);
                    let _ = q.take_fault();
                }
            }
        }
        Ok(())
    })();
    let _ = r;
    // Shutdown deletes the queue on the device; the queue's buffers are then safe to free.
    dev.set_auto(true);
    let _ = ctrl.shutdown();
    drop(q);
    assert_eq!(
        pool.available(),
        BUFFERS as usize,
        "buffers lost or doubled"
    );
    Ok(())
}
