//! [`RamDisk`]: a block queue over memory, so that `sluice-blkperf` and tests run anywhere.
//!
//! Requests complete in submission order at the next poll (a device with zero latency);
//! `queue_depth` bounds how many may be outstanding, as a device queue would.

use std::collections::VecDeque;

use super::{
    BlockCompletion, BlockError, BlockInfo, BlockOp, BlockQueue, BlockRequest, BlockStats,
    Rejected, validate,
};
use crate::error::Error;

/// A RAM-backed block device with one queue.
#[derive(Debug)]
pub struct RamDisk {
    info: BlockInfo,
    data: Vec<u8>,
    submitted: VecDeque<BlockRequest>,
    visible: usize,
    stats: BlockStats,
}

impl RamDisk {
    /// `blocks` zeroed blocks of `block_size` bytes, at most `queue_depth` requests
    /// outstanding.
    pub fn new(block_size: u32, blocks: u64, queue_depth: usize) -> Self {
        RamDisk {
            info: BlockInfo {
                name: "ram".into(),
                block_size,
                blocks,
                max_transfer: 1 << 20,
                queue_depth: queue_depth.max(1),
            },
            data: vec![0; (u64::from(block_size) * blocks) as usize],
            submitted: VecDeque::with_capacity(queue_depth.max(1)),
            visible: 0,
            stats: BlockStats::default(),
        }
    }

    fn execute(&mut self, req: &mut BlockRequest) -> Result<(), BlockError> {
        let bs = self.info.block_size as usize;
        let at = req.lba as usize * bs;
        let len = req.blocks as usize * bs;
        match req.op {
            BlockOp::Read => {
                let buf = req.buf.as_mut().ok_or(BlockError::BadBuffer)?;
                buf.as_mut_slice()[..len].copy_from_slice(&self.data[at..at + len]);
            }
            BlockOp::Write => {
                let buf = req.buf.as_ref().ok_or(BlockError::BadBuffer)?;
                self.data[at..at + len].copy_from_slice(&buf.as_slice()[..len]);
            }
            BlockOp::WriteZeroes | BlockOp::Deallocate => self.data[at..at + len].fill(0),
            BlockOp::Flush => {}
        }
        Ok(())
    }
}

impl BlockQueue for RamDisk {
    fn info(&self) -> &BlockInfo {
        &self.info
    }

    fn submit(&mut self, req: BlockRequest) -> Result<(), Rejected> {
        if let Err(e) = validate(&req, &self.info) {
            return Err(Rejected::Invalid(req, e));
        }
        if self.submitted.len() >= self.info.queue_depth {
            return Err(Rejected::Full(req));
        }
        self.submitted.push_back(req);
        self.stats.submitted += 1;
        Ok(())
    }

    fn flush_submissions(&mut self) -> Result<(), Error> {
        if self.visible < self.submitted.len() {
            self.visible = self.submitted.len();
            self.stats.doorbells += 1;
        }
        Ok(())
    }

    fn poll_completions<F: FnMut(BlockCompletion)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, Error> {
        self.flush_submissions()?;
        let mut n = 0;
        while n < max && self.visible > 0 {
            let Some(mut req) = self.submitted.pop_front() else {
                break;
            };
            self.visible -= 1;
            let status = self.execute(&mut req);
            self.stats.completed += 1;
            n += 1;
            f(BlockCompletion::of(req, status));
        }
        Ok(n)
    }

    fn outstanding(&self) -> usize {
        self.submitted.len()
    }

    fn stats(&self) -> BlockStats {
        self.stats
    }
}
