//! Submission and completion queue entries (NVMe 1.4 §4.2, §4.6) and builders for the admin
//! (NVMe 1.4 §5) and NVM I/O (NVMe 1.4 §6) commands this driver issues.
//!
//! An [`Sqe`] is built in ordinary memory and copied into the queue with volatile stores by
//! [`entries`](super::entries); a [`Cqe`] is a copy read out of the queue after the phase check.
//! Neither is ever a reference into device-shared memory.

/// A 64-byte submission queue entry, as sixteen little-endian dwords.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Sqe {
    /// Command dwords 0..=15.
    pub cdw: [u32; 16],
}

/// A 16-byte completion queue entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Cqe {
    /// DW0: command-specific result.
    pub result: u32,
    /// DW1: reserved (command-specific in later versions).
    pub dw1: u32,
    /// DW2: SQHD 15:0 (submission queue head), SQID 31:16.
    pub dw2: u32,
    /// DW3: CID 15:0, phase tag bit 16, status 31:17.
    pub dw3: u32,
}

const _: () = assert!(core::mem::size_of::<Sqe>() == 64);
const _: () = assert!(core::mem::size_of::<Cqe>() == 16);

impl Cqe {
    /// Command identifier.
    #[inline]
    pub const fn cid(&self) -> u16 {
        self.dw3 as u16
    }
    /// Phase tag.
    #[inline]
    pub const fn phase(&self) -> bool {
        self.dw3 >> 16 & 1 == 1
    }
    /// Status field (bits 31:17 of DW3, i.e. Linux's `status >> 1`).
    #[inline]
    pub const fn status(&self) -> u16 {
        (self.dw3 >> 17) as u16
    }
    /// Submission queue head pointer at the time of completion.
    #[inline]
    pub const fn sq_head(&self) -> u16 {
        self.dw2 as u16
    }
    /// Submission queue the command came from.
    #[inline]
    pub const fn sq_id(&self) -> u16 {
        (self.dw2 >> 16) as u16
    }
}

/// Admin opcodes, features and Identify CNS values (NVMe 1.4 §5; Number of Queues
/// §5.21.1.7, CNS §5.15.1).
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0A;
    /// Doorbell Buffer Config.
    pub const DOORBELL_BUFFER_CONFIG: u8 = 0x7C;
    /// Feature 07h: Number of Queues.
    pub const FID_NUM_QUEUES: u8 = 0x07;
    /// Identify CNS 00h: namespace.
    pub const CNS_NAMESPACE: u8 = 0x00;
    /// Identify CNS 01h: controller.
    pub const CNS_CONTROLLER: u8 = 0x01;
    /// Identify CNS 02h: active namespace IDs.
    pub const CNS_ACTIVE_NS_LIST: u8 = 0x02;
}

/// NVM I/O opcodes (NVMe 1.4 §6: Flush §6.8, Read §6.9, Dataset Management §6.7).
pub mod io {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management.
    pub const DSM: u8 = 0x09;
}

impl Sqe {
    /// An entry with opcode `opc` and namespace `nsid`; the CID is set at submission.
    #[inline]
    pub const fn new(opc: u8, nsid: u32) -> Self {
        let mut cdw = [0u32; 16];
        cdw[0] = opc as u32;
        cdw[1] = nsid;
        Sqe { cdw }
    }
    /// Opcode.
    #[inline]
    pub const fn opcode(&self) -> u8 {
        self.cdw[0] as u8
    }
    /// Command identifier.
    #[inline]
    pub const fn cid(&self) -> u16 {
        (self.cdw[0] >> 16) as u16
    }
    /// Sets the command identifier (DW0 31:16).
    #[inline]
    pub fn set_cid(&mut self, cid: u16) {
        self.cdw[0] = (self.cdw[0] & 0xffff) | u32::from(cid) << 16;
    }
    /// PRP entry 1 (DW6–7).
    #[inline]
    pub const fn prp1(&self) -> u64 {
        self.cdw[6] as u64 | (self.cdw[7] as u64) << 32
    }
    /// PRP entry 2 (DW8–9).
    #[inline]
    pub const fn prp2(&self) -> u64 {
        self.cdw[8] as u64 | (self.cdw[9] as u64) << 32
    }
    /// Sets PRP1 and PRP2.
    #[inline]
    pub fn set_prps(&mut self, prp1: u64, prp2: u64) {
        self.cdw[6] = prp1 as u32;
        self.cdw[7] = (prp1 >> 32) as u32;
        self.cdw[8] = prp2 as u32;
        self.cdw[9] = (prp2 >> 32) as u32;
    }

    /// Identify with `cns` for `nsid`; the 4 KiB answer goes to PRP1 (set by the caller).
    pub const fn identify(cns: u8, nsid: u32) -> Self {
        let mut s = Sqe::new(admin::IDENTIFY, nsid);
        s.cdw[10] = cns as u32;
        s
    }

    /// Set Features, Number of Queues: ask for `sq` submission and `cq` completion queues
    /// (1-based here).
    pub const fn set_num_queues(sq: u16, cq: u16) -> Self {
        let mut s = Sqe::new(admin::SET_FEATURES, 0);
        s.cdw[10] = admin::FID_NUM_QUEUES as u32;
        s.cdw[11] = (cq as u32 - 1) << 16 | (sq as u32 - 1);
        s
    }

    /// Create I/O Completion Queue `qid` of `entries` at `base`, physically contiguous,
    /// interrupts off (IEN = 0, IV = 0: QEMU refuses any other IV while MSI-X is off).
    pub const fn create_cq(qid: u16, entries: u16, base: u64) -> Self {
        let mut s = Sqe::new(admin::CREATE_CQ, 0);
        s.cdw[6] = base as u32;
        s.cdw[7] = (base >> 32) as u32;
        s.cdw[10] = (entries as u32 - 1) << 16 | qid as u32;
        s.cdw[11] = 1; // PC
        s
    }

    /// Create I/O Submission Queue `qid` of `entries` at `base`, feeding completion queue
    /// `cqid`, physically contiguous, priority 0.
    pub const fn create_sq(qid: u16, entries: u16, base: u64, cqid: u16) -> Self {
        let mut s = Sqe::new(admin::CREATE_SQ, 0);
        s.cdw[6] = base as u32;
        s.cdw[7] = (base >> 32) as u32;
        s.cdw[10] = (entries as u32 - 1) << 16 | qid as u32;
        s.cdw[11] = (cqid as u32) << 16 | 1; // PC
        s
    }

    /// Delete I/O Submission Queue `qid`.
    pub const fn delete_sq(qid: u16) -> Self {
        let mut s = Sqe::new(admin::DELETE_SQ, 0);
        s.cdw[10] = qid as u32;
        s
    }

    /// Delete I/O Completion Queue `qid`.
    pub const fn delete_cq(qid: u16) -> Self {
        let mut s = Sqe::new(admin::DELETE_CQ, 0);
        s.cdw[10] = qid as u32;
        s
    }

    /// Doorbell Buffer Config: shadow doorbells at `shadow`, EventIdx at `eventidx` (both
    /// page-aligned).
    pub const fn doorbell_buffer_config(shadow: u64, eventidx: u64) -> Self {
        let mut s = Sqe::new(admin::DOORBELL_BUFFER_CONFIG, 0);
        s.cdw[6] = shadow as u32;
        s.cdw[7] = (shadow >> 32) as u32;
        s.cdw[8] = eventidx as u32;
        s.cdw[9] = (eventidx >> 32) as u32;
        s
    }

    /// Read or Write of `nlb` blocks (1-based here, 0's based on the wire; 1..=65536) from
    /// `slba`; PRPs are set by the caller.
    pub const fn rw(opc: u8, nsid: u32, slba: u64, nlb: u32) -> Self {
        let mut s = Sqe::new(opc, nsid);
        s.cdw[10] = slba as u32;
        s.cdw[11] = (slba >> 32) as u32;
        s.cdw[12] = (nlb - 1) & 0xffff;
        s
    }

    /// Write Zeroes of `nlb` blocks (1-based) from `slba`.
    pub const fn write_zeroes(nsid: u32, slba: u64, nlb: u32) -> Self {
        Sqe::rw(io::WRITE_ZEROES, nsid, slba, nlb)
    }

    /// Dataset Management, deallocate, with `ranges` 16-byte ranges at PRP1 (1..=256).
    pub const fn dsm_deallocate(nsid: u32, ranges: u16) -> Self {
        let mut s = Sqe::new(io::DSM, nsid);
        s.cdw[10] = (ranges as u32 - 1) & 0xff;
        s.cdw[11] = 1 << 2; // AD
        s
    }

    /// Starting LBA of a read/write (DW10–11).
    #[inline]
    pub const fn slba(&self) -> u64 {
        self.cdw[10] as u64 | (self.cdw[11] as u64) << 32
    }

    /// Number of blocks of a read/write, 1-based.
    #[inline]
    pub const fn nlb(&self) -> u32 {
        (self.cdw[12] & 0xffff) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(core::mem::align_of::<Sqe>(), 64);
        assert_eq!(core::mem::offset_of!(Cqe, dw3), 12);
    }

    #[test]
    fn cqe_fields() {
        let c = Cqe {
            result: 7,
            dw1: 0,
            dw2: 3 << 16 | 17,
            dw3: (0x4002 << 17) | 1 << 16 | 0x1234,
        };
        assert_eq!(c.cid(), 0x1234);
        assert!(c.phase());
        assert_eq!(c.status(), 0x4002);
        assert_eq!(c.sq_head(), 17);
        assert_eq!(c.sq_id(), 3);
    }

    #[test]
    fn builders() {
        let mut s = Sqe::rw(io::READ, 1, 0x1_0000_0002, 8);
        s.set_cid(0xbeef);
        s.set_prps(0x1000, 0x2_0000_3000);
        assert_eq!(s.cdw[0], 0xbeef_0002);
        assert_eq!(
            (s.slba(), s.nlb(), s.prp1(), s.prp2()),
            (0x1_0000_0002, 8, 0x1000, 0x2_0000_3000)
        );
        assert_eq!(s.cdw[12], 7);
        let s = Sqe::create_cq(3, 256, 0x5000);
        assert_eq!((s.cdw[10], s.cdw[11]), (255 << 16 | 3, 1));
        let s = Sqe::create_sq(3, 256, 0x6000, 3);
        assert_eq!(s.cdw[11], 3 << 16 | 1);
        assert_eq!(Sqe::set_num_queues(2, 2).cdw[11], 0x0001_0001);
        assert_eq!(Sqe::rw(io::WRITE, 1, 0, 65536).cdw[12], 0xffff);
    }
}
