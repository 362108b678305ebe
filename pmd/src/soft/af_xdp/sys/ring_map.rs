//! The mmap of one XDP ring and the only accesses to its shared memory.

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::NonNull;
use std::io;
#[cfg(any(test, feature = "test-utils"))]
use std::os::fd::FromRawFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;

use libc::c_void;

use super::RingEntry;
#[cfg(any(test, feature = "test-utils"))]
use super::check;

/// One mapped XDP ring: producer, consumer and flags words and `size` entries of `E`, in
/// memory shared with the kernel (or, in unit tests, with a test playing the kernel).
///
/// The index words are only reached as `&AtomicU32`; entries only by volatile reads and
/// writes at a masked slot, so no Rust reference ever points at memory the other side
/// writes.
pub(crate) struct RingMap<E: RingEntry> {
    base: NonNull<u8>,
    map_len: usize,
    producer: usize,
    consumer: usize,
    flags: usize,
    desc: usize,
    mask: u32,
    _entry: PhantomData<E>,
}

// SAFETY: a `RingMap` owns its mapping (unmapped on drop); the shared words are atomics and
// the entries are reached only through volatile accesses, so moving it to another thread
// is sound. It is not `Sync`: each ring has one user-space side, held with `&mut`.
unsafe impl<E: RingEntry> Send for RingMap<E> {}

impl<E: RingEntry> RingMap<E> {
    /// Maps ring `pgoff` of socket `fd` with the kernel's offsets `off` and `size` entries
    /// (a power of two, as set with the ring-size option).
    pub(crate) fn map(
        fd: &OwnedFd,
        pgoff: u64,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Self> {
        let offsets = [off.producer, off.consumer, off.flags, off.desc];
        let [producer, consumer, flags, desc] = offsets.map(|o| o as usize);
        let map_len = desc + size as usize * size_of::<E>();
        // SAFETY: a fresh shared mapping chosen by the kernel (addr NULL); nothing aliases it
        // yet. The kernel checks that `map_len` fits the ring it allocated for `pgoff`.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Self::from_raw(p, map_len, [producer, consumer, flags, desc], size)
    }

    /// An anonymous ring with the kernel's usual layout (words 64 bytes apart, entries from
    /// 192), for tests that play the kernel's side.
    #[cfg(test)]
    pub(crate) fn anonymous(size: u32) -> io::Result<Self> {
        let desc = 192;
        let map_len = desc + size as usize * size_of::<E>();
        // SAFETY: a fresh private anonymous mapping; nothing aliases it.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Self::from_raw(p, map_len, [0, 64, 128, desc], size)
    }

    /// Two views of one ring in shared memory (a memfd mapped twice), for tests in which
    /// one view plays the kernel: like the real rings, each side sees the other's writes
    /// only through the memory, never through a Rust reference.
    #[cfg(any(test, feature = "test-utils"))]
    pub(crate) fn pair(size: u32) -> io::Result<(Self, Self)> {
        let desc = 192;
        let map_len = desc + size as usize * size_of::<E>();
        // SAFETY: a valid C string; the fresh descriptor is owned by `fd` below.
        let raw = unsafe { libc::memfd_create(c"xdp-ring".as_ptr(), libc::MFD_CLOEXEC) };
        check(raw)?;
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: plain syscall on our descriptor.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), map_len as libc::off_t) })?;
        let view = || {
            // SAFETY: a fresh shared mapping of the memfd; the kernel picks the address.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            Self::from_raw(p, map_len, [0, 64, 128, desc], size)
        };
        Ok((view()?, view()?))
    }

    fn from_raw(p: *mut c_void, map_len: usize, at: [usize; 4], size: u32) -> io::Result<Self> {
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        let ring = Self {
            base,
            map_len,
            producer: at[0],
            consumer: at[1],
            flags: at[2],
            desc: at[3],
            mask: size.wrapping_sub(1),
            _entry: PhantomData,
        };
        // From here on `ring` unmaps on drop, also on the error below.
        let words_ok = at[..3].iter().all(|&o| o % 4 == 0 && o + 4 <= at[3]);
        if !size.is_power_of_two() || !words_ok || !at[3].is_multiple_of(align_of::<E>()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "XDP ring offsets or size are not as uapi describes",
            ));
        }
        Ok(ring)
    }

    #[inline(always)]
    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off + 4 <= desc <= map_len` and `off` is 4-aligned (checked in
        // `from_raw`), the mapping lives as long as `self`, and the word is only ever
        // accessed atomically from this side.
        unsafe { &*self.base.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// The producer index.
    #[inline(always)]
    pub(crate) fn producer(&self) -> &AtomicU32 {
        self.word(self.producer)
    }

    /// The consumer index.
    #[inline(always)]
    pub(crate) fn consumer(&self) -> &AtomicU32 {
        self.word(self.consumer)
    }

    /// The flags word (`XDP_RING_NEED_WAKEUP`).
    #[inline(always)]
    pub(crate) fn flags(&self) -> &AtomicU32 {
        self.word(self.flags)
    }

    /// Entries in the ring.
    #[inline(always)]
    pub(crate) fn size(&self) -> u32 {
        self.mask.wrapping_add(1)
    }

    #[inline(always)]
    fn slot(&self, idx: u32) -> *mut E {
        let i = (idx & self.mask) as usize;
        // SAFETY: `i < size`, so the entry lies inside the mapping (`map_len` covers `desc +
        // size * size_of::<E>()`); `desc` is aligned for `E`.
        unsafe { self.base.as_ptr().add(self.desc).cast::<E>().add(i) }
    }

    /// Reads the entry at free-running index `idx`.
    #[inline(always)]
    pub(crate) fn read(&self, idx: u32) -> E {
        // SAFETY: in bounds and aligned (`slot`); any bit pattern is a valid `E` (sealed
        // plain-old-data types). The ring protocol's Acquire orders this read.
        unsafe { self.slot(idx).read_volatile() }
    }

    /// Writes the entry at free-running index `idx`.
    #[inline(always)]
    pub(crate) fn write(&mut self, idx: u32, e: E) {
        // SAFETY: in bounds and aligned (`slot`); the protocol's Release publishes it.
        unsafe { self.slot(idx).write_volatile(e) }
    }
}

impl<E: RingEntry> Drop for RingMap<E> {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map`/`anonymous` with this length and is not
        // reachable after `self` goes.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}
