//! The driver against the software controller model ([`super::model`]).
//!
//! - `bringup`: identify, queue negotiation and creation, shutdown, and controllers that fail
//!   them (CFS, never ready, a shutdown that never completes).
//! - `io`: data through every PRP shape, wrap and phase, back-pressure, shadow doorbells, the
//!   model on its own thread, randomized sequences.
//! - `faults`: unknown and duplicated CIDs, error statuses, lost commands, buffers of queues
//!   dropped while live.
//! - `device_values`: register and completion values that once panicked or were untested
//!   (CAP.MQES = 0, an SQ head out of range, a completion after its command timed out).

mod bringup;
mod device_values;
mod faults;
mod io;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_mempool::{DmaObj, HugePagePolicy, IdentityMapper, Mempool, PageSize, PoolConfig};

use super::model::{ModelConfig, SoftNvme};
use super::*;
use crate::block::{BlockCompletion, BlockError, BlockOp, BlockQueue, BlockRequest, Rejected};
use crate::error::Error;
use crate::regs::Registers;

pub(super) fn config() -> ControllerConfig {
    ControllerConfig {
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        io_qpairs: 2,
        ..ControllerConfig::default()
    }
}

pub(super) fn bring_up(
    model: ModelConfig,
    cfg: ControllerConfig,
) -> (Arc<SoftNvme>, Controller<SoftNvme>) {
    let dev = Arc::new(SoftNvme::new(model));
    let ctrl = Controller::enable(dev.clone(), Arc::new(IdentityMapper), cfg).unwrap();
    (dev, ctrl)
}

pub(super) fn pool(count: u32, size: usize) -> Mempool {
    let mut cfg = PoolConfig::new("nvme-test", count, size);
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    Mempool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

pub(super) fn fill(buf: &mut DmaObj, seed: u8) {
    for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

/// Submits, flushes and polls until the request completes.
pub(super) fn run_one<Q: BlockQueue>(q: &mut Q, req: BlockRequest) -> BlockCompletion {
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

/// Writes queue 1's SQ EventIdx slot, as the device would.
pub(super) fn set_sq_eventidx(q: &IoQpair<SoftNvme>, v: u32) {
    let sh = q.shadow_for_tests().expect("shadow doorbells on");
    sh.mem.store_u32(
        sh.base + sh.page_size + regs::sq_doorbell(1, 0),
        v,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// xorshift64 for the randomized test (seeded, so a failure reproduces).
pub(super) fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}
