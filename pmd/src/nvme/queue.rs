//! [`QueuePair`]: one submission queue and its completion queue, admin or I/O.
//!
//! # Protocol
//! - **Submit** ([`submit`](QueuePair::submit)) copies an entry into the SQ at the tail and
//!   records the command under a free CID; nothing is told to the device yet. A full queue
//!   (SQ slot or CID) hands the caller's context back: back-pressure, not an error.
//! - **Doorbell** ([`ring_doorbell`](QueuePair::ring_doorbell)) publishes every entry
//!   submitted since the last call with one SQ tail write (or a shadow update and, only when
//!   the controller's EventIdx asks for it, the MMIO write: NVMe 1.4 §7.13).
//! - **Poll** ([`poll`](QueuePair::poll)) consumes completions while their phase tag matches
//!   the expected phase (flipped at each wrap), checks each CID against the outstanding
//!   commands, and writes the CQ head doorbell once per call.
//! - **Timeouts** ([`expire`](QueuePair::expire)) report commands older than the timeout.
//!   Their context is kept (the device may still write into their buffers) until a late
//!   completion arrives or the queue is destroyed; then it goes to the queue's
//!   [`DeviceHold`] until the device can no longer touch it.
//!
//! A device that completes a CID that is not outstanding (unknown, or completed twice), or
//! reports an SQ head outside the submitted range, is counted in [`IoQueueStats`] and recorded
//! as the [`QueueFault`]; the entry is consumed and otherwise ignored.
//!
//! Nothing here allocates after construction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Instant;

use super::cmd::{Cqe, Sqe};
use super::entries;
use super::prp::{self, PrpError};
use super::regs;
use super::status::NvmeStatus;
use crate::SharedMemory;
use crate::error::Error;
use crate::nvme::NvmeError;
use crate::quiesce::DeviceHold;
use crate::regs::Registers;

mod types;

pub use types::{
    CQE_SIZE, Completion, DataRange, IoQueueStats, QueueFault, QueueLayout, SQE_SIZE,
    ShadowDoorbells, SubmitError,
};

enum Slot<C> {
    Free {
        used: bool,
    },
    Busy {
        context: C,
        opcode: u8,
        since: Instant,
    },
    TimedOut {
        context: C,
    },
}

/// A submission queue and its completion queue. `C` is what the caller keeps per command
/// (a tag, the buffer the device is using) while it is outstanding.
pub struct QueuePair<R: Registers, C: Send + 'static> {
    regs: Arc<R>,
    mem: Arc<SharedMemory>,
    layout: QueueLayout,
    cq_offset: usize,
    list_offset: usize,
    list_pages: usize,
    list_iovas: Box<[u64]>,
    sq_tail: u16,
    sq_head: u16,
    rung_tail: u16,
    cq_head: u16,
    rung_head: u16,
    phase: bool,
    sq_db: usize,
    cq_db: usize,
    shadow: Option<ShadowDoorbells>,
    slots: Box<[Slot<C>]>,
    free: VecDeque<u16>,
    stats: IoQueueStats,
    fault: Option<QueueFault>,
    /// CSTS read all ones after a command timed out: the controller is gone.
    gone: bool,
    /// Confirmed by the controller once the device can no longer touch this queue (deleted,
    /// or the controller disabled): only then may outstanding commands' contexts (their
    /// buffers) and the queue memory go.
    hold: Arc<DeviceHold>,
}

impl<R: Registers, C: Send + 'static> QueuePair<R, C> {
    /// A queue pair in `mem` (at least [`QueueLayout::dma_len`] bytes, zeroed). The caller
    /// creates it on the controller (admin registers or Create CQ/SQ) with [`sq_iova`] and
    /// [`cq_iova`](Self::cq_iova).
    ///
    /// [`sq_iova`]: Self::sq_iova
    pub fn new(
        regs: Arc<R>,
        mem: Arc<SharedMemory>,
        layout: QueueLayout,
        shadow: Option<ShadowDoorbells>,
    ) -> Result<Self, Error> {
        if layout.entries < 2 || !layout.page_size.is_power_of_two() || layout.page_size < 4096 {
            return Err(NvmeError::QueueShape {
                qid: layout.qid,
                entries: layout.entries,
                page_size: layout.page_size,
            }
            .into());
        }
        let (cq_offset, list_offset, end) = layout.offsets();
        if mem.len() < end
            || !mem.is_contiguous(0, cq_offset)
            || !mem.is_contiguous(cq_offset, list_offset - cq_offset)
        {
            return Err(NvmeError::QueueMemory {
                qid: layout.qid,
                needed: end,
                given: mem.len(),
            }
            .into());
        }
        let list_pages = layout.prp_pages();
        let cids = usize::from(layout.entries) - 1;
        let list_iovas = (0..cids * list_pages)
            .map(|i| mem.iova(list_offset + i * layout.page_size).as_u64())
            .collect();
        let base = regs::DOORBELL_BASE;
        Ok(QueuePair {
            sq_db: base + regs::sq_doorbell(layout.qid, layout.doorbell_stride),
            cq_db: base + regs::cq_doorbell(layout.qid, layout.doorbell_stride),
            regs,
            mem,
            cq_offset,
            list_offset,
            list_pages,
            list_iovas,
            sq_tail: 0,
            sq_head: 0,
            rung_tail: 0,
            cq_head: 0,
            rung_head: 0,
            phase: true,
            shadow,
            slots: (0..cids).map(|_| Slot::Free { used: false }).collect(),
            gone: false,
            free: (0..cids as u16).collect(),
            stats: IoQueueStats::default(),
            fault: None,
            hold: Arc::new(DeviceHold::new(if layout.qid == 0 {
                "the NVMe admin queue".to_string()
            } else {
                format!("NVMe I/O queue {}", layout.qid)
            })),
            layout,
        })
    }

    /// Queue id.
    pub fn qid(&self) -> u16 {
        self.layout.qid
    }

    /// Entries per queue.
    pub fn entries(&self) -> u16 {
        self.layout.entries
    }

    /// IOVA of the submission queue.
    pub fn sq_iova(&self) -> u64 {
        self.mem.iova(0).as_u64()
    }

    /// IOVA of the completion queue.
    pub fn cq_iova(&self) -> u64 {
        self.mem.iova(self.cq_offset).as_u64()
    }

    /// The queue memory (kept alive by the controller until the queue is deleted).
    pub fn memory(&self) -> &Arc<SharedMemory> {
        &self.mem
    }

    /// What this queue's device may still touch: the controller keeps the queue memory in it
    /// once the device has the queue, and confirms it when the device can no longer use the
    /// queue (see [`Drop`](#impl-Drop-for-QueuePair<R,+C>)).
    pub fn hold(&self) -> &Arc<DeviceHold> {
        &self.hold
    }

    /// The shadow doorbells in use, if any.
    pub fn shadow(&self) -> Option<&ShadowDoorbells> {
        self.shadow.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &IoQueueStats {
        &self.stats
    }

    /// The last device misbehaviour seen, cleared by the call.
    pub fn take_fault(&mut self) -> Option<QueueFault> {
        self.fault.take()
    }

    /// Commands submitted and not yet completed (timed-out ones included).
    pub fn outstanding(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Commands that can be submitted now.
    pub fn free_slots(&self) -> usize {
        let n = self.layout.entries;
        let used_sq = (self.sq_tail + n - self.sq_head) % n;
        self.free.len().min(usize::from(n - 1 - used_sq))
    }

    /// Largest transfer per command.
    pub fn max_transfer(&self) -> usize {
        self.layout.max_transfer
    }

    #[inline]
    fn next(&self, i: u16) -> u16 {
        if i + 1 == self.layout.entries {
            0
        } else {
            i + 1
        }
    }

    /// Queues `sqe` (its CID is set here) with `data` described by PRPs, keeping `context`
    /// until it completes. Returns the CID. The device learns of it at the next
    /// [`ring_doorbell`](Self::ring_doorbell).
    #[inline]
    pub fn submit(
        &mut self,
        mut sqe: Sqe,
        data: Option<DataRange>,
        context: C,
    ) -> Result<u16, SubmitError<C>> {
        let next = self.next(self.sq_tail);
        if next == self.sq_head {
            self.stats.full += 1;
            return Err(SubmitError::Full(context));
        }
        let Some(cid) = self.free.pop_front() else {
            self.stats.full += 1;
            return Err(SubmitError::Full(context));
        };
        if let Some(d) = data {
            let first = usize::from(cid) * self.list_pages;
            let lists = &self.list_iovas[first..first + self.list_pages];
            let (mem, page, base) = (&self.mem, self.layout.page_size, self.list_offset);
            let result = if d.len > self.layout.max_transfer {
                Err(PrpError::TooLarge)
            } else {
                prp::build(d.iova, d.len, page, lists, |list, slot, v| {
                    mem.store_u64(
                        base + (first + list) * page + slot * 8,
                        v,
                        Ordering::Relaxed,
                    )
                })
            };
            match result {
                Ok((p1, p2)) => sqe.set_prps(p1, p2),
                Err(e) => {
                    self.free.push_front(cid);
                    return Err(SubmitError::Prp(e, context));
                }
            }
        }
        sqe.set_cid(cid);
        entries::write_sqe(&self.mem, usize::from(self.sq_tail) * SQE_SIZE, &sqe);
        self.sq_tail = next;
        self.slots[usize::from(cid)] = Slot::Busy {
            context,
            opcode: sqe.opcode(),
            since: Instant::now(),
        };
        self.stats.submitted += 1;
        Ok(cid)
    }

    /// Tells the device about every entry submitted since the last call: one tail write (or
    /// none when nothing is new, or when the shadow EventIdx says the device will look anyway).
    #[inline]
    pub fn ring_doorbell(&mut self) -> Result<(), Error> {
        let (old, new) = (self.rung_tail, self.sq_tail);
        if old == new {
            return Ok(());
        }
        self.rung_tail = new;
        // Release: the SQE stores above must be visible to the device before it can see the
        // new tail (Linux `wmb` before the doorbell; the partner is the device's read of the
        // tail, then of the entries).
        fence(Ordering::Release);
        let db = regs::sq_doorbell(self.layout.qid, self.layout.doorbell_stride);
        if self.shadow_says_skip(db, old, new) {
            self.stats.doorbells_skipped += 1;
            return Ok(());
        }
        self.stats.sq_doorbells += 1;
        Ok(self.regs.write32(self.sq_db, u32::from(new))?)
    }

    /// Updates the shadow slot at `db` to `new`, then reads the EventIdx: true when the MMIO
    /// write can be left out (NVMe 1.4 §7.13; virtio's `vring_need_event`, modulo the queue
    /// size). The shadow is stored before deciding because QEMU re-reads it on the MMIO write
    /// (docs/devices.md#qemu-nvme).
    #[inline]
    fn shadow_says_skip(&self, db: usize, old: u16, new: u16) -> bool {
        let Some(sh) = &self.shadow else {
            return false;
        };
        sh.mem
            .store_u32(sh.base + db, u32::from(new), Ordering::Relaxed);
        // Full barrier (Linux `mb`): the shadow store must be visible before the EventIdx is
        // read, or both sides may each decide the other will act.
        fence(Ordering::SeqCst);
        let n = u32::from(self.layout.entries);
        let event = sh
            .mem
            .load_u32(sh.base + sh.page_size + db, Ordering::Relaxed)
            % n;
        let (new, old) = (u32::from(new), u32::from(old));
        // Ring if the EventIdx lies in [old, new).
        let need = (new + n - event - 1) % n < (new + n - old) % n;
        !need
    }

    /// Consumes up to `max` completions, calling `f` for each, and writes the CQ head doorbell
    /// once if any were consumed. Returns how many entries were consumed (device errors
    /// included, which are counted and not passed to `f`).
    #[inline]
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(Completion<C>)) -> Result<usize, Error> {
        if self.gone || self.regs.removed() {
            return Err(self.gone_error());
        }
        let mut n = 0;
        while n < max {
            let off = self.cq_offset + usize::from(self.cq_head) * CQE_SIZE;
            let Some(cqe) = entries::read_cqe(&self.mem, off, self.phase) else {
                break;
            };
            self.cq_head = self.next(self.cq_head);
            if self.cq_head == 0 {
                self.phase = !self.phase;
            }
            n += 1;
            self.take_sq_head(&cqe);
            if let Some(c) = self.complete(&cqe) {
                f(c);
            }
        }
        if n > 0 {
            self.ring_cq_head()?;
        }
        Ok(n)
    }

    fn take_sq_head(&mut self, cqe: &Cqe) {
        let n = self.layout.entries;
        let head = cqe.sq_head();
        // The new head must lie between the current head and the tail (inclusive).
        if head < n && (head + n - self.sq_head) % n <= (self.sq_tail + n - self.sq_head) % n {
            self.sq_head = head;
        } else {
            self.device_error(QueueFault::BadSqHead(head));
        }
    }

    fn device_error(&mut self, fault: QueueFault) {
        self.stats.device_errors += 1;
        self.fault = Some(fault);
    }

    fn complete(&mut self, cqe: &Cqe) -> Option<Completion<C>> {
        let cid = cqe.cid();
        let Some(slot) = self.slots.get_mut(usize::from(cid)) else {
            self.device_error(QueueFault::UnknownCid(cid));
            return None;
        };
        match std::mem::replace(slot, Slot::Free { used: true }) {
            Slot::Free { used } => {
                *slot = Slot::Free { used };
                self.device_error(if used {
                    QueueFault::DuplicateCid(cid)
                } else {
                    QueueFault::UnknownCid(cid)
                });
                None
            }
            Slot::TimedOut { context } => {
                self.free.push_back(cid);
                self.stats.late_completions += 1;
                drop(context);
                None
            }
            Slot::Busy {
                context, opcode, ..
            } => {
                self.free.push_back(cid);
                self.stats.completed += 1;
                let status = NvmeStatus::decode(cqe.status());
                if status.is_err() {
                    self.stats.errors += 1;
                }
                Some(Completion {
                    cid,
                    opcode,
                    context,
                    result: cqe.result,
                    status,
                })
            }
        }
    }

    fn ring_cq_head(&mut self) -> Result<(), Error> {
        let (old, new) = (self.rung_head, self.cq_head);
        if old == new {
            return Ok(());
        }
        self.rung_head = new;
        let db = regs::cq_doorbell(self.layout.qid, self.layout.doorbell_stride);
        if self.shadow_says_skip(db, old, new) {
            self.stats.doorbells_skipped += 1;
            return Ok(());
        }
        self.stats.cq_doorbells += 1;
        Ok(self.regs.write32(self.cq_db, u32::from(new))?)
    }

    /// Reports every command outstanding for longer than the timeout through `f` (CID,
    /// opcode, context) and marks it timed out. Returns how many. Call it every few
    /// thousand polls; it scans all CIDs.
    pub fn expire(&mut self, now: Instant, mut f: impl FnMut(u16, u8, &C)) -> usize {
        let Some(limit) = self.layout.timeout else {
            return 0;
        };
        let mut n = 0;
        for (cid, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Busy { since, opcode, .. } = slot
                && now.saturating_duration_since(*since) >= limit
            {
                let opcode = *opcode;
                let Slot::Busy { context, .. } = std::mem::replace(slot, Slot::Free { used: true })
                else {
                    continue;
                };
                f(cid as u16, opcode, &context);
                *slot = Slot::TimedOut { context };
                n += 1;
            }
        }
        self.stats.timeouts += n as u64;
        // A command that never completes is how a controller that vanished shows on a queue
        // that only polls memory: CSTS reading all ones says it is gone (not merely slow).
        if n > 0
            && self
                .regs
                .read32(regs::CSTS)
                .is_ok_and(|v| v == regs::CSTS_GONE)
        {
            self.gone = true;
        }
        n
    }

    /// Whether the controller is known to be gone (see [`NvmeError::Removed`]); `poll` then
    /// fails.
    pub fn is_gone(&self) -> bool {
        self.gone || self.regs.removed()
    }

    #[cold]
    fn gone_error(&self) -> Error {
        NvmeError::Removed {
            qid: self.layout.qid,
            why: if self.regs.removed() {
                "the kernel asked for the device back (hot-unplug) and it was released"
            } else {
                "CSTS reads all ones after a command timed out"
            },
            outstanding: self.outstanding(),
        }
        .into()
    }
}

/// Dropping a queue pair whose queue the device may still use (not deleted, controller not
/// disabled) with commands outstanding hands their contexts to the queue's [`DeviceHold`]:
/// their buffers may still be DMA targets, so they go back to a pool only once the controller
/// confirms the queue deleted or the device disabled, and never if it cannot. Delete the
/// queue first ([`Controller::delete_io_qpair`](super::Controller::delete_io_qpair)).
impl<R: Registers, C: Send + 'static> Drop for QueuePair<R, C> {
    fn drop(&mut self) {
        if self.outstanding() == 0 {
            return;
        }
        let outstanding: Vec<C> = self
            .slots
            .iter_mut()
            .filter_map(
                |slot| match std::mem::replace(slot, Slot::Free { used: true }) {
                    Slot::Busy { context, .. } | Slot::TimedOut { context } => Some(context),
                    Slot::Free { .. } => None,
                },
            )
            .collect();
        // Dropped at once when the queue is already confirmed gone.
        self.hold.keep(outstanding);
    }
}

impl<R: Registers, C: Send + 'static> std::fmt::Debug for QueuePair<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePair")
            .field("qid", &self.layout.qid)
            .field("entries", &self.layout.entries)
            .field("sq_tail", &self.sq_tail)
            .field("sq_head", &self.sq_head)
            .field("cq_head", &self.cq_head)
            .field("phase", &self.phase)
            .field("outstanding", &self.outstanding())
            .field("shadow", &self.shadow.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}
