//! [`IoQpair`]: an NVMe I/O queue pair as a [`BlockQueue`]. The datapath: no allocation, no
//! formatting, no locks.

use std::time::Instant;

use super::cmd::{Sqe, io};
use super::identify::{ControllerInfo, NamespaceInfo};
use super::queue::{DataRange, IoQueueStats, QueueFault, QueuePair, SubmitError};
use crate::block::{
    BlockCompletion, BlockError, BlockInfo, BlockOp, BlockQueue, BlockRequest, BlockStats,
    Rejected, validate,
};
use crate::error::Error;
use crate::regs::Registers;
use sluice_mempool::DmaObj;

/// What an I/O queue keeps per outstanding command.
#[derive(Debug)]
pub struct IoContext {
    tag: u64,
    op: BlockOp,
    buf: Option<DmaObj>,
}

/// An NVMe I/O submission/completion queue pair bound to one namespace. Created by
/// [`Controller::create_io_qpair`](super::Controller::create_io_qpair); `Send`, so it moves
/// to the lcore that polls it.
///
/// Data buffers are described by PRPs from their first IOVA, so each must be one
/// IOVA-contiguous range: always so with an IOMMU (IOVA = VA) or the identity mapper; in
/// no-IOMMU mode (physical addresses) only for objects that do not cross a hugepage boundary
/// (object sizes that divide the hugepage size, page-aligned).
pub struct IoQpair<R: Registers> {
    qp: QueuePair<R, IoContext>,
    nsid: u32,
    info: BlockInfo,
    write_zeroes: bool,
    dsm: bool,
}

impl<R: Registers> IoQpair<R> {
    pub(super) fn new(
        qp: QueuePair<R, IoContext>,
        ns: NamespaceInfo,
        ctrl: &ControllerInfo,
    ) -> Self {
        let info = BlockInfo {
            name: format!("nvme {} ns {}", ctrl.model, ns.nsid),
            block_size: ns.block_size,
            blocks: ns.blocks,
            max_transfer: qp.max_transfer(),
            queue_depth: usize::from(qp.entries()) - 1,
        };
        IoQpair {
            qp,
            nsid: ns.nsid,
            info,
            write_zeroes: ctrl.supports_write_zeroes(),
            dsm: ctrl.supports_dsm(),
        }
    }

    /// Queue id.
    pub fn qid(&self) -> u16 {
        self.qp.qid()
    }

    /// The queue's NVMe counters (doorbells, device errors, timeouts).
    pub fn queue_stats(&self) -> &IoQueueStats {
        self.qp.stats()
    }

    /// Whether the controller is known to be gone (removed): completions then fail with
    /// [`NvmeError::Removed`](super::NvmeError::Removed).
    pub fn is_gone(&self) -> bool {
        self.qp.is_gone()
    }

    /// The last device misbehaviour seen, cleared by the call.
    pub fn take_fault(&mut self) -> Option<QueueFault> {
        self.qp.take_fault()
    }

    /// Reports commands outstanding past the I/O timeout through `f` (tag, op); their buffers
    /// stay with the queue until the device completes them or the queue is deleted.
    pub fn expire(&mut self, now: Instant, mut f: impl FnMut(u64, BlockOp)) -> usize {
        self.qp.expire(now, |_, _, c| f(c.tag, c.op))
    }

    #[cfg(test)]
    pub(super) fn shadow_for_tests(&self) -> Option<&super::queue::ShadowDoorbells> {
        self.qp.shadow()
    }

    fn build(&self, req: &mut BlockRequest) -> Result<(Sqe, Option<DataRange>), BlockError> {
        validate(req, &self.info)?;
        let nsid = self.nsid;
        Ok(match req.op {
            BlockOp::Flush => (Sqe::new(io::FLUSH, nsid), None),
            BlockOp::Read | BlockOp::Write => {
                let opc = if req.op == BlockOp::Read {
                    io::READ
                } else {
                    io::WRITE
                };
                if req.blocks > 65536 {
                    return Err(BlockError::TooLarge);
                }
                let len = req.data_len(self.info.block_size);
                let iova = req.buf.as_ref().map_or(0, |b| b.iova().as_u64());
                (
                    Sqe::rw(opc, nsid, req.lba, req.blocks),
                    Some(DataRange { iova, len }),
                )
            }
            BlockOp::WriteZeroes => {
                if !self.write_zeroes {
                    return Err(BlockError::Unsupported);
                }
                if req.blocks > 65536 {
                    return Err(BlockError::TooLarge);
                }
                (Sqe::write_zeroes(nsid, req.lba, req.blocks), None)
            }
            BlockOp::Deallocate => {
                if !self.dsm {
                    return Err(BlockError::Unsupported);
                }
                let Some(buf) = req.buf.as_mut().filter(|b| b.len() >= 16) else {
                    return Err(BlockError::BadBuffer);
                };
                // One range (NVMe 1.4 §6.7): context attributes, the block count (a count,
                // not 0's based as in Read/Write; docs/devices.md#qemu-nvme), SLBA.
                let range = buf.as_mut_slice();
                range[0..4].fill(0);
                range[4..8].copy_from_slice(&req.blocks.to_le_bytes());
                range[8..16].copy_from_slice(&req.lba.to_le_bytes());
                let data = DataRange {
                    iova: buf.iova().as_u64(),
                    len: 16,
                };
                (Sqe::dsm_deallocate(nsid, 1), Some(data))
            }
        })
    }
}

impl<R: Registers> BlockQueue for IoQpair<R> {
    fn info(&self) -> &BlockInfo {
        &self.info
    }

    #[inline]
    fn submit(&mut self, mut req: BlockRequest) -> Result<(), Rejected> {
        let (sqe, data) = match self.build(&mut req) {
            Ok(x) => x,
            Err(e) => return Err(Rejected::Invalid(req, e)),
        };
        let ctx = IoContext {
            tag: req.tag,
            op: req.op,
            buf: req.buf.take(),
        };
        let back = |ctx: IoContext, req: BlockRequest| BlockRequest {
            buf: ctx.buf,
            ..req
        };
        match self.qp.submit(sqe, data, ctx) {
            Ok(_) => Ok(()),
            Err(SubmitError::Full(ctx)) => Err(Rejected::Full(back(ctx, req))),
            Err(SubmitError::Prp(_, ctx)) => {
                Err(Rejected::Invalid(back(ctx, req), BlockError::BadBuffer))
            }
        }
    }

    #[inline]
    fn flush_submissions(&mut self) -> Result<(), Error> {
        self.qp.ring_doorbell()
    }

    #[inline]
    fn poll_completions<F: FnMut(BlockCompletion)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, Error> {
        self.qp.ring_doorbell()?;
        let mut n = 0;
        self.qp.poll(max, |c| {
            n += 1;
            f(BlockCompletion {
                tag: c.context.tag,
                op: c.context.op,
                buf: c.context.buf,
                status: c.status.map_err(BlockError::Nvme),
            })
        })?;
        Ok(n)
    }

    fn expire_timeouts(&mut self, now: Instant, f: &mut dyn FnMut(u64, BlockOp)) -> usize {
        self.expire(now, f)
    }

    fn outstanding(&self) -> usize {
        self.qp.outstanding()
    }

    fn stats(&self) -> BlockStats {
        let s = self.qp.stats();
        BlockStats {
            submitted: s.submitted,
            completed: s.completed,
            doorbells: s.sq_doorbells + s.cq_doorbells,
            device_errors: s.device_errors,
        }
    }
}

impl<R: Registers> std::fmt::Debug for IoQpair<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoQpair")
            .field("nsid", &self.nsid)
            .field("info", &self.info)
            .field("queue", &self.qp)
            .finish()
    }
}

// A queue pair moves to the lcore that polls it.
const _: () = {
    const fn send<T: Send>() {}
    send::<IoQpair<crate::mmio::MmioRegion>>();
};
