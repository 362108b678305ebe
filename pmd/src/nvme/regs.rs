//! NVMe controller registers (BAR0): offsets and bit fields. The driver reaches them through
//! [`Registers`](crate::regs::Registers).
//!
//! NVMe Base 1.4 §3.1. Every field helper here is a pure function over the
//! value read, so the decoding is unit-tested without a device.

/// Controller Capabilities (64-bit, read low half first).
pub const CAP: usize = 0x00;
/// Version.
pub const VS: usize = 0x08;
/// Controller Configuration.
pub const CC: usize = 0x14;
/// Controller Status.
pub const CSTS: usize = 0x1C;
/// Admin Queue Attributes (ASQS 11:0, ACQS 27:16, both 0's based).
pub const AQA: usize = 0x24;
/// Admin Submission Queue base address (64-bit, page-aligned).
pub const ASQ: usize = 0x28;
/// Admin Completion Queue base address (64-bit, page-aligned).
pub const ACQ: usize = 0x30;
/// First doorbell register.
pub const DOORBELL_BASE: usize = 0x1000;

const _: () = assert!(ASQ.is_multiple_of(8) && ACQ.is_multiple_of(8) && CAP.is_multiple_of(8));
const _: () = assert!(CSTS == CC + 8 && AQA == CSTS + 8);

/// Byte offset of submission queue `qid`'s tail doorbell, for doorbell stride `dstrd`
/// (CAP.DSTRD), relative to [`DOORBELL_BASE`] (the layout of the shadow doorbell page too).
#[inline]
pub const fn sq_doorbell(qid: u16, dstrd: u8) -> usize {
    (2 * qid as usize) * (4usize << dstrd)
}

/// Byte offset of completion queue `qid`'s head doorbell relative to [`DOORBELL_BASE`].
#[inline]
pub const fn cq_doorbell(qid: u16, dstrd: u8) -> usize {
    (2 * qid as usize + 1) * (4usize << dstrd)
}

const _: () = assert!(sq_doorbell(1, 0) == 8 && cq_doorbell(0, 0) == 4 && cq_doorbell(1, 2) == 48);

/// Controller Capabilities, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub u64);

impl Cap {
    /// MQES + 1: the largest queue size in entries.
    pub const fn max_queue_entries(self) -> u32 {
        (self.0 & 0xffff) as u32 + 1
    }
    /// CQR: queues must be physically contiguous.
    pub const fn contiguous_queues_required(self) -> bool {
        self.0 >> 16 & 1 == 1
    }
    /// TO: worst-case time for CSTS.RDY to follow CC.EN, in milliseconds (500 ms units).
    pub const fn timeout_ms(self) -> u64 {
        (self.0 >> 24 & 0xff) * 500
    }
    /// DSTRD: doorbell stride exponent (stride = 4 << DSTRD bytes).
    pub const fn doorbell_stride(self) -> u8 {
        (self.0 >> 32 & 0xf) as u8
    }
    /// CSS bit 37: the NVM command set is supported.
    pub const fn supports_nvm(self) -> bool {
        self.0 >> 37 & 1 == 1
    }
    /// MPSMIN: smallest memory page size, as log2 bytes.
    pub const fn min_page_shift(self) -> u32 {
        12 + (self.0 >> 48 & 0xf) as u32
    }
    /// MPSMAX: largest memory page size, as log2 bytes.
    pub const fn max_page_shift(self) -> u32 {
        12 + (self.0 >> 52 & 0xf) as u32
    }
}

/// CC.EN: enable.
pub const CC_EN: u32 = 1 << 0;
/// CC.CSS shift (000 = NVM command set).
pub const CC_CSS_SHIFT: u32 = 4;
/// CC.MPS shift (page = 2^(12 + MPS)).
pub const CC_MPS_SHIFT: u32 = 7;
/// CC.SHN mask (bits 15:14).
pub const CC_SHN_MASK: u32 = 0b11 << 14;
/// CC.SHN = 01: normal shutdown.
pub const CC_SHN_NORMAL: u32 = 0b01 << 14;
/// CC.IOSQES = 6: 64-byte submission entries.
pub const CC_IOSQES_64: u32 = 6 << 16;
/// CC.IOCQES = 4: 16-byte completion entries.
pub const CC_IOCQES_16: u32 = 4 << 20;

const _: () = assert!(CC_SHN_NORMAL & CC_SHN_MASK == CC_SHN_NORMAL);
const _: () = assert!(CC_IOSQES_64 & CC_IOCQES_16 == 0 && CC_IOSQES_64 & CC_SHN_MASK == 0);

/// CC for an NVM controller with `2^page_shift`-byte pages and standard entry sizes, not yet
/// enabled (NVMe 1.4 §7.6.1; QEMU refuses EN without IOSQES = 6 and IOCQES = 4:
/// docs/devices.md#qemu-nvme).
pub const fn cc_config(page_shift: u32) -> u32 {
    ((page_shift - 12) << CC_MPS_SHIFT) | CC_IOSQES_64 | CC_IOCQES_16
}

const _: () = assert!(cc_config(12) == 0x0046_0000);

/// CSTS.RDY: ready.
pub const CSTS_RDY: u32 = 1 << 0;
/// CSTS.CFS: controller fatal status.
pub const CSTS_CFS: u32 = 1 << 1;
/// CSTS.SHST mask (bits 3:2).
pub const CSTS_SHST_MASK: u32 = 0b11 << 2;
/// CSTS.SHST = 10: shutdown processing complete.
pub const CSTS_SHST_COMPLETE: u32 = 0b10 << 2;
/// What reads of a surprise-removed device return.
pub const CSTS_GONE: u32 = u32::MAX;

const _: () = assert!(CSTS_SHST_COMPLETE & CSTS_SHST_MASK == CSTS_SHST_COMPLETE);

/// AQA for admin queues of `sq_entries` and `cq_entries` (1-based here, 0's based in the
/// register).
pub const fn aqa(sq_entries: u16, cq_entries: u16) -> u32 {
    ((cq_entries as u32 - 1) << 16) | (sq_entries as u32 - 1)
}

const _: () = assert!(aqa(32, 32) == 0x001F_001F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_cap_decodes() {
        // QEMU 7.2's CAP, as read in the guest (docs/devices.md#qemu-nvme).
        let cap = Cap(0x0040_1820_0F01_07FF);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.contiguous_queues_required());
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.doorbell_stride(), 0);
        assert!(cap.supports_nvm());
        assert_eq!(cap.min_page_shift(), 12);
        assert_eq!(cap.max_page_shift(), 16);
    }
}
