//! [`AnyBlockQueue`]: the run-time choice of block backend, for applications that pick the
//! target from the command line. Datapath code stays generic over [`BlockQueue`]; this enum
//! is the one dispatch point, at the application boundary.

use super::{BlockCompletion, BlockInfo, BlockQueue, BlockRequest, BlockStats, RamDisk, Rejected};
use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::nvme::IoQpair;

/// One of the block backends.
#[derive(Debug)]
pub enum AnyBlockQueue {
    /// An NVMe I/O queue pair over a VFIO-mapped BAR.
    Nvme(IoQpair<MmioRegion>),
    /// A file or block device through io_uring.
    #[cfg(target_os = "linux")]
    Uring(super::UringQueue),
    /// Memory.
    Ram(RamDisk),
}

macro_rules! each {
    ($self:expr, $q:ident => $e:expr) => {
        match $self {
            AnyBlockQueue::Nvme($q) => $e,
            #[cfg(target_os = "linux")]
            AnyBlockQueue::Uring($q) => $e,
            AnyBlockQueue::Ram($q) => $e,
        }
    };
}

impl BlockQueue for AnyBlockQueue {
    fn info(&self) -> &BlockInfo {
        each!(self, q => q.info())
    }
    #[inline]
    fn submit(&mut self, req: BlockRequest) -> Result<(), Rejected> {
        each!(self, q => q.submit(req))
    }
    #[inline]
    fn flush_submissions(&mut self) -> Result<(), Error> {
        each!(self, q => q.flush_submissions())
    }
    #[inline]
    fn poll_completions<F: FnMut(BlockCompletion)>(
        &mut self,
        max: usize,
        f: F,
    ) -> Result<usize, Error> {
        each!(self, q => q.poll_completions(max, f))
    }
    fn expire_timeouts(
        &mut self,
        now: std::time::Instant,
        f: &mut dyn FnMut(u64, super::BlockOp),
    ) -> usize {
        each!(self, q => q.expire_timeouts(now, f))
    }
    fn outstanding(&self) -> usize {
        each!(self, q => q.outstanding())
    }
    fn stats(&self) -> BlockStats {
        each!(self, q => q.stats())
    }
}
