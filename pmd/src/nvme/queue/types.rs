//! The plain types around a [`QueuePair`](super::QueuePair): buffers, submission refusals,
//! completions, faults, counters, layout, shadow doorbells.

use std::sync::Arc;
use std::time::Duration;

use super::super::prp::{self, PrpError};
use super::super::status::NvmeStatus;
use crate::SharedMemory;

/// Size of a submission queue entry.
pub const SQE_SIZE: usize = 64;
/// Size of a completion queue entry.
pub const CQE_SIZE: usize = 16;

/// A data buffer for one command: an IOVA-contiguous range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRange {
    /// IOVA of the first byte.
    pub iova: u64,
    /// Length in bytes.
    pub len: usize,
}

/// Why a command was not queued; the context comes back with it.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError<C> {
    /// No free SQ slot or CID: poll completions and retry.
    Full(C),
    /// The buffer cannot be described by PRPs (misaligned, empty, over the transfer limit).
    Prp(PrpError, C),
}

impl<C> SubmitError<C> {
    /// The context handed back.
    pub fn into_context(self) -> C {
        match self {
            SubmitError::Full(c) | SubmitError::Prp(_, c) => c,
        }
    }
}

/// One completed command, handed to the [`poll`](super::QueuePair::poll) callback.
#[derive(Debug)]
pub struct Completion<C> {
    /// Its CID.
    pub cid: u16,
    /// Its opcode.
    pub opcode: u8,
    /// The context given at submission.
    pub context: C,
    /// DW0 of the completion entry.
    pub result: u32,
    /// Success, or the decoded status.
    pub status: Result<(), NvmeStatus>,
}

/// What a misbehaving device did last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueFault {
    /// A completion named a CID that was never submitted or is out of range.
    UnknownCid(u16),
    /// A completion named a CID that had already completed.
    DuplicateCid(u16),
    /// A completion's SQ head lies outside the entries submitted.
    BadSqHead(u16),
}

/// Per-queue counters of an NVMe queue pair (admin or I/O), owned by the queue's lcore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoQueueStats {
    /// Commands queued.
    pub submitted: u64,
    /// Commands completed (any status).
    pub completed: u64,
    /// Completions with an error status.
    pub errors: u64,
    /// MMIO writes to the SQ tail doorbell.
    pub sq_doorbells: u64,
    /// MMIO writes to the CQ head doorbell.
    pub cq_doorbells: u64,
    /// Doorbell updates that the shadow EventIdx made unnecessary.
    pub doorbells_skipped: u64,
    /// Submissions refused because the queue was full.
    pub full: u64,
    /// Completions with an unknown or duplicated CID, or a bad SQ head (device errors).
    pub device_errors: u64,
    /// Commands reported as timed out.
    pub timeouts: u64,
    /// Completions of commands already reported as timed out.
    pub late_completions: u64,
}

/// Where a queue pair's memory and doorbells are.
#[derive(Clone, Debug)]
pub struct QueueLayout {
    /// Queue id (0: admin).
    pub qid: u16,
    /// Entries in the SQ and in the CQ.
    pub entries: u16,
    /// Controller memory page size (CC.MPS) in bytes.
    pub page_size: usize,
    /// Largest data transfer per command in bytes (decides the PRP list pages per CID).
    pub max_transfer: usize,
    /// CAP.DSTRD.
    pub doorbell_stride: u8,
    /// Per-command timeout (`None`: none).
    pub timeout: Option<Duration>,
}

impl QueueLayout {
    /// Bytes of DMA memory the pair needs: SQ, CQ, and PRP list pages for every CID, each
    /// part page-aligned.
    pub fn dma_len(&self) -> usize {
        let (_, _, end) = self.offsets();
        end
    }

    pub(in crate::nvme) fn prp_pages(&self) -> usize {
        prp::list_pages_for(self.max_transfer, self.page_size)
    }

    pub(in crate::nvme) fn offsets(&self) -> (usize, usize, usize) {
        let page = self.page_size;
        let n = usize::from(self.entries);
        let cq = (n * SQE_SIZE).next_multiple_of(page);
        let lists = cq + (n * CQE_SIZE).next_multiple_of(page);
        let end = lists + self.prp_pages() * page * (n - 1);
        (cq, lists, end.max(lists))
    }
}

/// The shadow doorbell and EventIdx pages, shared by the controller's I/O queues (each queue
/// touches only its own slots).
#[derive(Clone, Debug)]
pub struct ShadowDoorbells {
    /// The memory holding both pages.
    pub mem: Arc<SharedMemory>,
    /// Offset of the shadow doorbell page in `mem`; the EventIdx page follows it.
    pub base: usize,
    /// Page size (distance from the shadow page to the EventIdx page).
    pub page_size: usize,
}
