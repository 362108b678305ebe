//! The model's side of DMA: PRP walking and copies, and the atomic words of queue entries.
//! IOVA = virtual address (see the module docs of [`super`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::PAGE;
use crate::nvme::cmd::Sqe;
use crate::nvme::status::NvmeStatus;

/// The (IOVA, length) pieces PRP1/PRP2 describe for `len` bytes (NVMe 1.4 §4.3), or the status
/// a controller returns for a malformed list.
pub(super) fn prp_segments(prp1: u64, prp2: u64, len: usize) -> Result<Vec<(u64, usize)>, u16> {
    let bad = NvmeStatus::generic(0x13, true).to_raw();
    if prp1 == 0 || !prp1.is_multiple_of(4) {
        return Err(bad);
    }
    let first = (PAGE - prp1 % PAGE).min(len as u64) as usize;
    let mut segs = vec![(prp1, first)];
    let mut rem = len - first;
    if rem == 0 {
        return Ok(segs);
    }
    if rem <= PAGE as usize {
        if prp2 == 0 || !prp2.is_multiple_of(PAGE) {
            return Err(bad);
        }
        segs.push((prp2, rem));
        return Ok(segs);
    }
    if prp2 == 0 || !prp2.is_multiple_of(8) {
        return Err(bad);
    }
    let mut entry = prp2;
    let mut hops = 0;
    while rem > 0 {
        let slots_left = (PAGE - entry % PAGE) / 8;
        let v = load_u64(entry);
        if slots_left == 1 && rem > PAGE as usize {
            if v == 0 || !v.is_multiple_of(PAGE) || hops > 4096 {
                return Err(bad);
            }
            entry = v;
            hops += 1;
            continue;
        }
        if v == 0 || !v.is_multiple_of(PAGE) {
            return Err(bad);
        }
        let n = rem.min(PAGE as usize);
        segs.push((v, n));
        rem -= n;
        entry += 8;
    }
    Ok(segs)
}

pub(super) fn scatter(segs: &[(u64, usize)], src: &[u8]) {
    let mut at = 0;
    for &(iova, n) in segs {
        let n = n.min(src.len() - at);
        // SAFETY: the model's contract (module docs): IOVA = VA of live DMA memory the driver
        // handed over for this command, at least `n` bytes from `iova`.
        unsafe { std::ptr::copy_nonoverlapping(src[at..].as_ptr(), iova as *mut u8, n) };
        at += n;
    }
}

pub(super) fn gather(segs: &[(u64, usize)], dst: &mut [u8]) {
    let mut at = 0;
    for &(iova, n) in segs {
        let n = n.min(dst.len() - at);
        // SAFETY: as in `scatter`; the driver does not write the buffer while the device owns it.
        unsafe { std::ptr::copy_nonoverlapping(iova as *const u8, dst[at..].as_mut_ptr(), n) };
        at += n;
    }
}

pub(super) fn atomic_u32(iova: u64) -> &'static AtomicU32 {
    assert!(
        iova.is_multiple_of(4) && iova != 0,
        "model: misaligned DMA word {iova:#x}"
    );
    // SAFETY: IOVA = VA of live, 4-byte aligned DMA memory (module contract); the driver only
    // accesses these words atomically. The 'static lifetime is not relied upon past this call.
    unsafe { AtomicU32::from_ptr(iova as *mut u32) }
}

pub(super) fn store_u32(iova: u64, v: u32) {
    atomic_u32(iova).store(v.to_le(), Ordering::Relaxed);
}

pub(super) fn load_u32(iova: u64) -> u32 {
    u32::from_le(atomic_u32(iova).load(Ordering::Acquire))
}

pub(super) fn load_u64(iova: u64) -> u64 {
    assert!(
        iova.is_multiple_of(8) && iova != 0,
        "model: misaligned DMA word {iova:#x}"
    );
    // SAFETY: as in `atomic_u32`, 8-byte aligned.
    let a = unsafe { AtomicU64::from_ptr(iova as *mut u64) };
    u64::from_le(a.load(Ordering::Acquire))
}

pub(super) fn read_sqe(iova: u64) -> Sqe {
    let mut s = Sqe::default();
    for (i, dw) in s.cdw.iter_mut().enumerate() {
        *dw = load_u32(iova + 4 * i as u64);
    }
    s
}
