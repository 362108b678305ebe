//! The block queue-pair API: what `sluice-blkperf` and embedding services program against.
//!
//! A [`BlockQueue`] is one submission/completion queue pair owned by one lcore (`&mut self`,
//! no locks). Requests carry their data buffer ([`DmaObj`], page-aligned, from a
//! [`Mempool`](sluice_mempool::Mempool)) by value: the queue owns it while the device does,
//! and hands it back in the [`BlockCompletion`] (zero copy, and no way to touch a buffer the
//! device is still writing).
//!
//! ```
//! use std::sync::Arc;
//! use sluice_mempool::{HugePagePolicy, IdentityMapper, Mempool, PageSize, PoolConfig};
//! use sluice_pmd::block::{BlockQueue, BlockRequest, RamDisk};
//!
//! let mut cfg = PoolConfig::new("io", 8, 4096);
//! cfg.obj_align = 4096;
//! cfg.page_size = PageSize::Size4K;
//! cfg.huge_pages = HugePagePolicy::Never;
//! let pool = Mempool::new(&cfg, Arc::new(IdentityMapper))?;
//! let mut disk = RamDisk::new(512, 1024, 32);
//! let buf = pool.get().unwrap();
//! disk.submit(BlockRequest::write(7, 8, buf, 1)).map_err(|_| "full")?; // LBA 7, 8 blocks, tag 1
//! disk.flush_submissions()?;                                             // one doorbell
//! let mut done = 0;
//! disk.poll_completions(32, |c| { assert!(c.status.is_ok()); done += c.tag; })?;
//! assert_eq!(done, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod any;
mod error;
mod ram;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod uring;

use std::fmt;

use sluice_mempool::DmaObj;

use crate::error::Error;
use crate::nvme::NvmeStatus;

pub use any::AnyBlockQueue;
pub use error::{BackendError, BackendStep};
pub use ram::RamDisk;
#[cfg(target_os = "linux")]
pub use uring::{UringConfig, UringQueue};

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockOp {
    /// Read `blocks` blocks into the buffer.
    Read,
    /// Write `blocks` blocks from the buffer.
    Write,
    /// Make completed writes durable.
    Flush,
    /// Write zeroes to `blocks` blocks (no buffer).
    WriteZeroes,
    /// Deallocate (trim) `blocks` blocks. NVMe needs a buffer of at least 16 bytes for the
    /// range; other backends ignore it.
    Deallocate,
}

/// One request.
#[derive(Debug)]
pub struct BlockRequest {
    /// The operation.
    pub op: BlockOp,
    /// First logical block.
    pub lba: u64,
    /// Number of blocks (0 for a flush).
    pub blocks: u32,
    /// Data buffer: at least `blocks × block_size` bytes for reads and writes.
    pub buf: Option<DmaObj>,
    /// The caller's tag, returned in the completion.
    pub tag: u64,
}

impl BlockRequest {
    /// A read of `blocks` blocks at `lba` into `buf`.
    pub fn read(lba: u64, blocks: u32, buf: DmaObj, tag: u64) -> Self {
        BlockRequest {
            op: BlockOp::Read,
            lba,
            blocks,
            buf: Some(buf),
            tag,
        }
    }
    /// A write of `blocks` blocks at `lba` from `buf`.
    pub fn write(lba: u64, blocks: u32, buf: DmaObj, tag: u64) -> Self {
        BlockRequest {
            op: BlockOp::Write,
            lba,
            blocks,
            buf: Some(buf),
            tag,
        }
    }
    /// A flush.
    pub fn flush(tag: u64) -> Self {
        BlockRequest {
            op: BlockOp::Flush,
            lba: 0,
            blocks: 0,
            buf: None,
            tag,
        }
    }
    /// Write zeroes.
    pub fn write_zeroes(lba: u64, blocks: u32, tag: u64) -> Self {
        BlockRequest {
            op: BlockOp::WriteZeroes,
            lba,
            blocks,
            buf: None,
            tag,
        }
    }
    /// Deallocate, with `buf` for the NVMe range descriptor.
    pub fn deallocate(lba: u64, blocks: u32, buf: Option<DmaObj>, tag: u64) -> Self {
        BlockRequest {
            op: BlockOp::Deallocate,
            lba,
            blocks,
            buf,
            tag,
        }
    }
    /// Bytes of data the request moves.
    pub fn data_len(&self, block_size: u32) -> usize {
        match self.op {
            BlockOp::Read | BlockOp::Write => self.blocks as usize * block_size as usize,
            _ => 0,
        }
    }
}

/// Why a request failed (in its completion) or was refused (at submission). `Copy` and
/// allocation-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The NVMe controller returned this status.
    Nvme(NvmeStatus),
    /// The kernel returned this errno (io_uring backend).
    Os(i32),
    /// The range lies outside the device.
    OutOfRange,
    /// The buffer is missing or smaller than the transfer.
    BadBuffer,
    /// Larger than the backend's largest transfer.
    TooLarge,
    /// The backend does not support the operation.
    Unsupported,
    /// A device fault: the queue misbehaved (see the backend's counters).
    Device,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::Nvme(s) => write!(f, "NVMe status {s}"),
            BlockError::Os(e) => write!(f, "{}", std::io::Error::from_raw_os_error(*e)),
            BlockError::OutOfRange => f.write_str("LBA range outside the device"),
            BlockError::BadBuffer => f.write_str("buffer missing or too small"),
            BlockError::TooLarge => f.write_str("transfer over the device's limit"),
            BlockError::Unsupported => f.write_str("operation not supported"),
            BlockError::Device => f.write_str("device fault"),
        }
    }
}

/// A request that was not queued, handed back whole.
#[derive(Debug)]
pub enum Rejected {
    /// The queue is full: poll completions, then resubmit. Back-pressure, not an error.
    Full(BlockRequest),
    /// The request is invalid for this queue.
    Invalid(BlockRequest, BlockError),
}

impl Rejected {
    /// The request handed back.
    pub fn into_request(self) -> BlockRequest {
        match self {
            Rejected::Full(r) | Rejected::Invalid(r, _) => r,
        }
    }
}

/// One finished request.
#[derive(Debug)]
pub struct BlockCompletion {
    /// The tag given at submission.
    pub tag: u64,
    /// The operation.
    pub op: BlockOp,
    /// The buffer, back in the caller's hands.
    pub buf: Option<DmaObj>,
    /// How it went.
    pub status: Result<(), BlockError>,
}

impl BlockCompletion {
    /// The completion of `req`, handing its buffer back.
    pub(crate) fn of(req: BlockRequest, status: Result<(), BlockError>) -> Self {
        Self {
            tag: req.tag,
            op: req.op,
            buf: req.buf,
            status,
        }
    }
}

/// Geometry and limits of what a queue reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// A name for reports (`nvme 0000:00:03.0 ns 1`, a path, `ram`).
    pub name: String,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Number of blocks.
    pub blocks: u64,
    /// Largest transfer per request in bytes.
    pub max_transfer: usize,
    /// Most requests outstanding at once.
    pub queue_depth: usize,
}

/// Counters common to every backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Requests submitted.
    pub submitted: u64,
    /// Requests completed.
    pub completed: u64,
    /// Notifications to the device (MMIO doorbell writes, `io_uring_enter` submissions).
    pub doorbells: u64,
    /// Device faults counted (bad completions).
    pub device_errors: u64,
}

/// A block queue pair, owned by one lcore.
pub trait BlockQueue {
    /// Geometry and limits.
    fn info(&self) -> &BlockInfo;

    /// Queues a request; the device learns of it at the next
    /// [`flush_submissions`](Self::flush_submissions) (or poll). A full queue hands the request
    /// back as [`Rejected::Full`].
    fn submit(&mut self, req: BlockRequest) -> Result<(), Rejected>;

    /// Notifies the device of everything submitted since the last call: one doorbell per
    /// batch.
    fn flush_submissions(&mut self) -> Result<(), Error>;

    /// Hands up to `max` finished requests to `f`; returns how many. Flushes pending
    /// submissions first.
    fn poll_completions<F: FnMut(BlockCompletion)>(
        &mut self,
        max: usize,
        f: F,
    ) -> Result<usize, Error>;

    /// Reports, through `f` (tag, operation), requests outstanding for longer than the
    /// backend's per-request timeout, once each; returns how many. Their buffers stay with the
    /// queue until the device lets go of them. Backends without timeouts report none.
    fn expire_timeouts(
        &mut self,
        now: std::time::Instant,
        f: &mut dyn FnMut(u64, BlockOp),
    ) -> usize {
        let _ = (now, f);
        0
    }

    /// Requests submitted and not yet completed.
    fn outstanding(&self) -> usize;

    /// Counters.
    fn stats(&self) -> BlockStats;
}

/// Checks a request against `info`: the range is inside the device, the buffer covers the
/// transfer, the transfer is within the limit.
#[cfg(test)]
mod tests;

pub(crate) fn validate(req: &BlockRequest, info: &BlockInfo) -> Result<(), BlockError> {
    match req.op {
        BlockOp::Flush => return Ok(()),
        BlockOp::Read | BlockOp::Write => {
            let len = req.data_len(info.block_size);
            if len > info.max_transfer {
                return Err(BlockError::TooLarge);
            }
            if req.buf.as_ref().is_none_or(|b| b.len() < len) {
                return Err(BlockError::BadBuffer);
            }
        }
        BlockOp::WriteZeroes | BlockOp::Deallocate => {}
    }
    if req.blocks == 0
        || req
            .lba
            .checked_add(u64::from(req.blocks))
            .is_none_or(|end| end > info.blocks)
    {
        return Err(BlockError::OutOfRange);
    }
    Ok(())
}
