//! The model's side of DMA: ring words through atomics, buffer bytes by copy, at IOVA =
//! virtual address (see the module docs of [`super`]).
//!
//! Every function takes an address the driver wrote into a ring or a register. The model
//! trusts them the way a device trusts its driver: the tests keep the memory alive (the
//! driver parks it until the reset) and use the identity mapper.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

fn atomic<A>(addr: u64) -> &'static A {
    assert!(
        addr != 0 && addr.is_multiple_of(core::mem::size_of::<A>() as u64),
        "model: bad DMA address {addr:#x}"
    );
    // SAFETY: the address is an IOVA the driver gave the device, which with the identity
    // mapper is the virtual address of live ring memory (kept until the device is reset);
    // it is aligned (checked). The driver accesses these words only through atomics too.
    unsafe { &*(addr as *const A) }
}

pub(super) fn load_u16(addr: u64, order: Ordering) -> u16 {
    u16::from_le(atomic::<AtomicU16>(addr).load(order))
}

pub(super) fn store_u16(addr: u64, v: u16, order: Ordering) {
    atomic::<AtomicU16>(addr).store(v.to_le(), order);
}

pub(super) fn load_u32(addr: u64) -> u32 {
    u32::from_le(atomic::<AtomicU32>(addr).load(Ordering::Relaxed))
}

pub(super) fn store_u32(addr: u64, v: u32) {
    atomic::<AtomicU32>(addr).store(v.to_le(), Ordering::Relaxed);
}

pub(super) fn load_u64(addr: u64) -> u64 {
    u64::from_le(atomic::<AtomicU64>(addr).load(Ordering::Relaxed))
}

/// Copies `len` bytes from the driver's buffer at `addr`.
pub(super) fn read_bytes(addr: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // SAFETY: a readable descriptor's buffer: the driver owns it and does not write it while
    // it is posted; `len` is the descriptor's length, inside its buffer.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), len) };
    out
}

/// Copies `bytes` into the driver's buffer at `addr`.
pub(super) fn write_bytes(addr: u64, bytes: &[u8]) {
    // SAFETY: a writable descriptor's buffer, posted to the device (the driver does not
    // touch it until the used entry returns it); the caller keeps within its length.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
}
