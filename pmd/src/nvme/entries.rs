//! The NVMe entries in [`SharedMemory`]: [`write_sqe`] and [`read_cqe`], the submission and
//! completion queue entries' layout on top of the shared-memory accessors (no unsafe code
//! here; see [`crate::shared_mem`]).

use std::sync::atomic::Ordering;

use super::cmd::{Cqe, Sqe};
use crate::SharedMemory;

/// Copies `sqe` into the 64 bytes at `offset` (64-aligned) as eight `Relaxed` little-endian
/// 8-byte stores with one bounds check. Nothing orders them here: the slot is the driver's
/// until the doorbell past it is rung, and [`QueuePair::ring_doorbell`] fences (`Release`,
/// Linux's `wmb`) before the shadow-doorbell store and the MMIO tail write that hand it over.
///
/// [`QueuePair::ring_doorbell`]: super::QueuePair::ring_doorbell
#[inline]
pub fn write_sqe(mem: &SharedMemory, offset: usize, sqe: &Sqe) {
    let cdw = &sqe.cdw;
    let words: [u64; 8] =
        core::array::from_fn(|i| u64::from(cdw[2 * i]) | u64::from(cdw[2 * i + 1]) << 32);
    mem.store_u64s(offset, words);
}

/// Reads the completion entry at `offset` if its phase tag equals `phase`: DW3 first with
/// `Acquire`, then DW0..2 (NVMe 1.4 §4.6, Phase Tag; Linux's `dma_rmb`).
#[inline]
pub fn read_cqe(mem: &SharedMemory, offset: usize, phase: bool) -> Option<Cqe> {
    let dw3 = mem.load_u32(offset + 12, Ordering::Acquire);
    if (dw3 >> 16 & 1 == 1) != phase {
        return None;
    }
    let [result, dw1, dw2] = mem.load_u32s(offset);
    Some(Cqe {
        result,
        dw1,
        dw2,
        dw3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mempool::{DmaRegion, HugePagePolicy, PageSize};

    #[test]
    fn entries_round_trip_and_phase_gates_reads() {
        let r = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
        let m = SharedMemory::new(r);
        let mut s = Sqe::new(2, 1);
        s.set_cid(9);
        s.cdw[15] = 0xdead_beef;
        write_sqe(&m, 64, &s);
        assert_eq!(m.load_u32(64, Ordering::Relaxed), 0x0009_0002);
        assert_eq!(m.load_u32(64 + 4, Ordering::Relaxed), 1);
        assert_eq!(m.load_u32(64 + 60, Ordering::Relaxed), 0xdead_beef);
        assert_eq!(read_cqe(&m, 128, true), None, "zeroed memory has phase 0");
        m.store_u32(128, 77, Ordering::Relaxed);
        m.store_u32(128 + 12, 1 << 16 | 5, Ordering::Relaxed);
        let c = read_cqe(&m, 128, true).unwrap();
        assert_eq!((c.cid(), c.result), (5, 77));
    }
}
