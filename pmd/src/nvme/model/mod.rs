//! A software NVMe controller for tests (feature `test-utils`): registers in memory behind
//! [`Registers`], the admin commands bring-up needs, a RAM namespace, shadow doorbells
//! with EventIdx as QEMU 7.2 implements them, and fault injection.
//!
//! It plays the device on the driver's real queue memory: it reads SQEs from the submission
//! queue, walks PRPs and PRP lists, moves data, and posts CQEs with the phase tag, DW3 last
//! with a release store. By default a doorbell write processes the queue at once (inline,
//! deterministic); with [`SoftNvme::set_auto`]`(false)` nothing happens until
//! [`SoftNvme::step`], which reads every queue's tail as a polling device would.
//!
//! **IOVA = virtual address**: the model dereferences the addresses the driver gives it, so
//! use it only with memory from the identity mapper (`IdentityMapper`), kept alive while the
//! model may still touch it (the driver's controller does that until it disables the device).

mod commands;
#[allow(unsafe_code)]
mod mem;

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::cmd::Sqe;
use super::regs;
use super::status::NvmeStatus;
use crate::mmio::MmioError;
use crate::regs::Registers;
use mem::{atomic_u32, load_u32, read_sqe, store_u32};

const PAGE: u64 = 4096;

/// The model's shape.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Namespace 1 size in blocks.
    pub blocks: u64,
    /// Block size (512 or 4096).
    pub block_size: u32,
    /// MDTS (2^mdts × 4 KiB per command; 0 = unlimited).
    pub mdts: u8,
    /// I/O queue pairs offered.
    pub max_ioqpairs: u16,
    /// CAP.MQES + 1.
    pub max_queue_entries: u16,
    /// Offer Doorbell Buffer Config (OACS bit 8).
    pub doorbell_buffer: bool,
    /// CAP.TO in 500 ms units.
    pub timeout_units: u8,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            blocks: 8192,
            block_size: 512,
            mdts: 7,
            max_ioqpairs: 4,
            max_queue_entries: 2048,
            doorbell_buffer: true,
            timeout_units: 1,
        }
    }
}

/// Faults to inject; set them with [`SoftNvme::faults`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// CSTS.RDY never follows CC.EN = 1.
    pub never_ready: bool,
    /// Enabling sets CSTS.CFS instead of RDY.
    pub fatal_on_enable: bool,
    /// Shutdown never reports SHST = complete.
    pub ignore_shutdown: bool,
    /// The next command with this opcode on an I/O queue completes with this status.
    pub fail_next_io: Option<(u8, NvmeStatus)>,
    /// The next completion is posted twice.
    pub duplicate_next: bool,
    /// The next I/O command with this opcode is consumed and never completed.
    pub swallow_next_io: Option<u8>,
    /// The next read returns its data with the first byte inverted (silent corruption).
    pub corrupt_next_read: bool,
}

/// Counters of what the driver did to the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// MMIO writes to SQ tail doorbells of I/O queues.
    pub io_sq_doorbells: u64,
    /// MMIO writes to CQ head doorbells of I/O queues.
    pub io_cq_doorbells: u64,
    /// Commands executed (admin and I/O).
    pub commands: u64,
    /// Times processing stopped because a CQ was full.
    pub cq_full_stalls: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sq {
    base: u64,
    size: u16,
    head: u16,
    tail: u16,
    cqid: u16,
}

#[derive(Clone, Copy, Debug)]
struct Cq {
    base: u64,
    size: u16,
    tail: u16,
    head: u16,
    phase: bool,
}

struct State {
    cfg: ModelConfig,
    cc: u32,
    csts: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    sqs: Vec<Option<Sq>>,
    cqs: Vec<Option<Cq>>,
    dbbuf: Option<(u64, u64)>,
    disk: Vec<u8>,
    faults: Faults,
    /// Commands swallowed by [`Faults::swallow_next_io`], as (CQ, SQ, CID), until
    /// [`SoftNvme::complete_swallowed`] completes them late.
    swallowed: Vec<(u16, u16, u16)>,
    auto: bool,
    stats: ModelStats,
}

/// The software controller. Share it as `Arc<SoftNvme>` between the driver (as its
/// registers) and the test.
pub struct SoftNvme {
    state: Mutex<State>,
}

impl SoftNvme {
    /// A disabled controller with a zeroed namespace 1.
    pub fn new(cfg: ModelConfig) -> Self {
        let n = usize::from(cfg.max_ioqpairs) + 1;
        let disk = vec![0u8; (cfg.blocks * u64::from(cfg.block_size)) as usize];
        SoftNvme {
            state: Mutex::new(State {
                cc: 0,
                csts: 0,
                aqa: 0,
                asq: 0,
                acq: 0,
                sqs: vec![None; n],
                cqs: vec![None; n],
                dbbuf: None,
                disk,
                faults: Faults::default(),
                swallowed: Vec::new(),
                auto: true,
                stats: ModelStats::default(),
                cfg,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Edits the faults to inject.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.lock().faults);
    }

    /// Whether doorbell writes process queues at once (default) or wait for [`step`](Self::step).
    /// Admin submissions are processed at once either way.
    pub fn set_auto(&self, auto: bool) {
        self.lock().auto = auto;
    }

    /// Processes every queue once, reading tails from the shadow doorbells when configured
    /// (as a polling controller would). Returns the commands executed.
    pub fn step(&self) -> u64 {
        let mut s = self.lock();
        let before = s.stats.commands;
        s.refresh_from_shadow();
        s.process();
        s.stats.commands - before
    }

    /// Counters.
    pub fn stats(&self) -> ModelStats {
        self.lock().stats
    }

    /// Sets CSTS.CFS now.
    pub fn set_fatal(&self) {
        self.lock().csts |= regs::CSTS_CFS;
    }

    /// Posts a completion for `cid` on CQ `qid` as if a command had finished (for faults:
    /// a CID the driver never issued).
    pub fn inject_completion(&self, qid: u16, cid: u16) {
        let mut s = self.lock();
        let sqhd = s
            .sqs
            .get(usize::from(qid))
            .copied()
            .flatten()
            .map_or(0, |q| q.head);
        s.post(qid, qid, sqhd, cid, 0, 0);
    }

    /// Posts a completion with SQ head `sqhd` for `cid` on CQ `qid` (for faults: a head
    /// outside the queue, or one that moves backwards).
    pub fn inject_completion_sqhd(&self, qid: u16, cid: u16, sqhd: u16) {
        self.lock().post(qid, qid, sqhd, cid, 0, 0);
    }

    /// Fault: writes `bytes` into completion queue `qid`'s memory at `offset` modulo its
    /// length, cut at its end, as a broken or hostile controller would (any CID, status,
    /// SQ head and phase). Returns how many bytes were written (0 for a queue not created).
    pub fn scribble_cq(&self, qid: u16, offset: usize, bytes: &[u8]) -> usize {
        let s = self.lock();
        let Some(cq) = s.cqs.get(usize::from(qid)).copied().flatten() else {
            return 0;
        };
        let len = 16 * usize::from(cq.size);
        if len == 0 {
            return 0;
        }
        let at = offset % len;
        let n = bytes.len().min(len - at);
        mem::scatter(&[(cq.base + at as u64, n)], &bytes[..n]);
        n
    }

    /// The CIDs of the commands swallowed so far and not yet completed.
    pub fn swallowed(&self) -> Vec<u16> {
        self.lock()
            .swallowed
            .iter()
            .map(|&(_, _, cid)| cid)
            .collect()
    }

    /// Completes, successfully and late, every command that [`Faults::swallow_next_io`]
    /// swallowed (as a device that was only slow would); returns how many.
    pub fn complete_swallowed(&self) -> usize {
        let mut s = self.lock();
        let done = std::mem::take(&mut s.swallowed);
        for &(cqid, sqid, cid) in &done {
            let sqhd = s
                .sqs
                .get(usize::from(sqid))
                .copied()
                .flatten()
                .map_or(0, |q| q.head);
            s.post(cqid, sqid, sqhd, cid, 0, 0);
        }
        done.len()
    }

    /// Whether shadow doorbells are on.
    pub fn doorbell_buffer_enabled(&self) -> bool {
        self.lock().dbbuf.is_some()
    }

    /// Copies `len` bytes of namespace 1 from byte offset `at`.
    pub fn disk_read(&self, at: usize, len: usize) -> Vec<u8> {
        self.lock().disk[at..at + len].to_vec()
    }

    /// Writes into namespace 1 at byte offset `at`.
    pub fn disk_write(&self, at: usize, data: &[u8]) {
        self.lock().disk[at..at + data.len()].copy_from_slice(data);
    }

    /// Live I/O submission queues.
    pub fn io_queues(&self) -> usize {
        self.lock().sqs.iter().skip(1).flatten().count()
    }
}

/// NVMe 1.4 §3.1 defines its registers as 32 bits wide (64-bit ones as two halves): the
/// model refuses narrower accesses rather than guess what a controller would do with them.
fn dwords_only<T>(offset: usize, width: usize) -> Result<T, MmioError> {
    Err(MmioError::Width {
        offset,
        width,
        takes: 4,
    })
}

impl Registers for SoftNvme {
    fn read8(&self, offset: usize) -> Result<u8, MmioError> {
        dwords_only(offset, 1)
    }

    fn read16(&self, offset: usize) -> Result<u16, MmioError> {
        dwords_only(offset, 2)
    }

    fn write8(&self, offset: usize, _value: u8) -> Result<(), MmioError> {
        dwords_only(offset, 1)
    }

    fn write16(&self, offset: usize, _value: u16) -> Result<(), MmioError> {
        dwords_only(offset, 2)
    }

    fn read32(&self, offset: usize) -> Result<u32, MmioError> {
        let s = self.lock();
        let cap = s.cap();
        Ok(match offset {
            regs::CAP => cap as u32,
            0x04 => (cap >> 32) as u32,
            regs::VS => 0x0001_0400,
            regs::CC => s.cc,
            regs::CSTS => s.csts,
            regs::AQA => s.aqa,
            regs::ASQ => s.asq as u32,
            0x2C => (s.asq >> 32) as u32,
            regs::ACQ => s.acq as u32,
            0x34 => (s.acq >> 32) as u32,
            _ => 0,
        })
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        let mut s = self.lock();
        match offset {
            regs::CC => s.write_cc(value),
            regs::AQA => s.aqa = value,
            regs::ASQ => s.asq = (s.asq & !0xffff_ffff) | u64::from(value),
            0x2C => s.asq = (s.asq & 0xffff_ffff) | u64::from(value) << 32,
            regs::ACQ => s.acq = (s.acq & !0xffff_ffff) | u64::from(value),
            0x34 => s.acq = (s.acq & 0xffff_ffff) | u64::from(value) << 32,
            o if o >= regs::DOORBELL_BASE && o % 4 == 0 => {
                let idx = (o - regs::DOORBELL_BASE) / 4;
                s.doorbell((idx / 2) as u16, idx.is_multiple_of(2), value as u16);
            }
            _ => {}
        }
        Ok(())
    }
}

impl State {
    fn cap(&self) -> u64 {
        u64::from(self.cfg.max_queue_entries - 1)
            | 1 << 16
            | u64::from(self.cfg.timeout_units) << 24
            | 1 << 37
            | 4 << 52
    }

    fn write_cc(&mut self, value: u32) {
        let was = self.cc;
        self.cc = value;
        if was & regs::CC_EN == 0 && value & regs::CC_EN != 0 {
            let sizes_ok = value & (0xff << 16) == regs::CC_IOSQES_64 | regs::CC_IOCQES_16;
            let aligned =
                self.asq.is_multiple_of(PAGE) && self.acq.is_multiple_of(PAGE) && self.asq != 0;
            if self.faults.fatal_on_enable || !sizes_ok || !aligned {
                self.csts |= regs::CSTS_CFS;
                return;
            }
            if self.faults.never_ready {
                return;
            }
            let sq = (self.aqa & 0xfff) as u16 + 1;
            let cq = (self.aqa >> 16 & 0xfff) as u16 + 1;
            self.sqs[0] = Some(Sq {
                base: self.asq,
                size: sq,
                head: 0,
                tail: 0,
                cqid: 0,
            });
            self.cqs[0] = Some(Cq {
                base: self.acq,
                size: cq,
                tail: 0,
                head: 0,
                phase: true,
            });
            self.csts = regs::CSTS_RDY;
        } else if was & regs::CC_EN != 0 && value & regs::CC_EN == 0 {
            // Controller reset: queues and the doorbell buffer go (QEMU turns dbbuf off).
            self.sqs.iter_mut().for_each(|q| *q = None);
            self.cqs.iter_mut().for_each(|q| *q = None);
            self.dbbuf = None;
            self.csts = 0;
        } else if value & regs::CC_SHN_MASK != 0
            && was & regs::CC_SHN_MASK == 0
            && !self.faults.ignore_shutdown
        {
            self.csts = (self.csts & !regs::CSTS_SHST_MASK) | regs::CSTS_SHST_COMPLETE;
        }
    }

    fn doorbell(&mut self, qid: u16, is_sq: bool, value: u16) {
        let q = usize::from(qid);
        if qid > 0 {
            if is_sq {
                self.stats.io_sq_doorbells += 1;
            } else {
                self.stats.io_cq_doorbells += 1;
            }
        }
        let shadow = self.dbbuf.is_some() && qid > 0;
        if is_sq {
            let Some(Some(sq)) = self.sqs.get_mut(q) else {
                return;
            };
            if value >= sq.size {
                return; // invalid doorbell value: ignored (QEMU raises an AER if one is posted)
            }
            if !shadow {
                sq.tail = value;
            }
        } else {
            let Some(Some(cq)) = self.cqs.get_mut(q) else {
                return;
            };
            if value >= cq.size {
                return;
            }
            if !shadow {
                cq.head = value;
            }
        }
        if shadow {
            // QEMU: an MMIO write to an I/O doorbell makes it re-read the shadow.
            self.refresh_from_shadow();
        }
        if self.auto {
            self.process();
        } else if qid == 0 {
            // Manual mode holds I/O queues only: bring-up and teardown still work.
            self.process_sq(0);
        }
    }

    /// Reads I/O queues' tails and heads from the shadow page and publishes EventIdx = the
    /// value read (QEMU 7.2.1+).
    fn refresh_from_shadow(&mut self) {
        let Some((db, ei)) = self.dbbuf else { return };
        for qid in 1..self.sqs.len() {
            let sqo = u64::from(regs::sq_doorbell(qid as u16, 0) as u32);
            let cqo = u64::from(regs::cq_doorbell(qid as u16, 0) as u32);
            if let Some(sq) = &mut self.sqs[qid] {
                let t = load_u32(db + sqo) as u16;
                if t < sq.size {
                    sq.tail = t;
                }
                store_u32(ei + sqo, u32::from(sq.tail));
            }
            if let Some(cq) = &mut self.cqs[qid] {
                let h = load_u32(db + cqo) as u16;
                if h < cq.size {
                    cq.head = h;
                }
                store_u32(ei + cqo, u32::from(cq.head));
            }
        }
    }

    fn process(&mut self) {
        if self.csts & regs::CSTS_RDY == 0 || self.csts & regs::CSTS_CFS != 0 {
            return;
        }
        for qid in 0..self.sqs.len() {
            self.process_sq(qid);
        }
    }

    fn process_sq(&mut self, qid: usize) {
        if self.csts & regs::CSTS_RDY == 0 || self.csts & regs::CSTS_CFS != 0 {
            return;
        }
        while let Some(sq) = self.sqs[qid] {
            if sq.head == sq.tail {
                break;
            }
            let Some(cq) = self.cqs.get(usize::from(sq.cqid)).copied().flatten() else {
                break;
            };
            if (cq.tail + 1) % cq.size == cq.head {
                self.stats.cq_full_stalls += 1;
                break;
            }
            let sqe = read_sqe(sq.base + u64::from(sq.head) * 64);
            let head = (sq.head + 1) % sq.size;
            if let Some(q) = &mut self.sqs[qid] {
                q.head = head;
            }
            self.stats.commands += 1;
            let (status, result) = if qid == 0 {
                self.admin(&sqe)
            } else {
                match self.io_fault(&sqe) {
                    Some(Some(st)) => (st.to_raw(), 0),
                    Some(None) => {
                        self.swallowed.push((sq.cqid, qid as u16, sqe.cid()));
                        continue;
                    }
                    None => (self.io(&sqe), 0),
                }
            };
            self.post(sq.cqid, qid as u16, head, sqe.cid(), status, result);
            if std::mem::take(&mut self.faults.duplicate_next) {
                self.post(sq.cqid, qid as u16, head, sqe.cid(), status, result);
            }
        }
    }

    /// `Some(Some(status))`: fail; `Some(None)`: swallow; `None`: run normally.
    fn io_fault(&mut self, sqe: &Sqe) -> Option<Option<NvmeStatus>> {
        if let Some((op, st)) = self.faults.fail_next_io
            && op == sqe.opcode()
        {
            self.faults.fail_next_io = None;
            return Some(Some(st));
        }
        if self.faults.swallow_next_io == Some(sqe.opcode()) {
            self.faults.swallow_next_io = None;
            return Some(None);
        }
        None
    }

    fn post(&mut self, cqid: u16, sqid: u16, sqhd: u16, cid: u16, status: u16, result: u32) {
        let Some(Some(cq)) = self.cqs.get_mut(usize::from(cqid)) else {
            return;
        };
        let at = cq.base + u64::from(cq.tail) * 16;
        store_u32(at, result);
        store_u32(at + 4, 0);
        store_u32(at + 8, u32::from(sqid) << 16 | u32::from(sqhd));
        let dw3 = u32::from(status) << 17 | u32::from(cq.phase) << 16 | u32::from(cid);
        // Release: the data and DW0..2 above are visible before the phase tag flips (the
        // partner is the driver's Acquire load of DW3).
        atomic_u32(at + 12).store(dw3.to_le(), Ordering::Release);
        cq.tail = (cq.tail + 1) % cq.size;
        if cq.tail == 0 {
            cq.phase = !cq.phase;
        }
    }
}
