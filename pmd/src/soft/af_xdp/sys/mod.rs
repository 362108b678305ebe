//! The syscall seam of the AF_XDP driver: sockets, socket options, the rings' mmaps, the
//! TX kick and FILL wakeup, and `bpf(2)`. This is the only module of the driver with
//! `unsafe`; everything above it is safe code over the small types defined here.
//!
//! Layouts and constants are uapi's `if_xdp.h` and `bpf.h`; `libc` supplies
//! the `if_xdp.h` structs.

mod bpf;
mod ring_map;

use core::mem::size_of;
use core::ptr::NonNull;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_int, socklen_t};

pub(crate) use bpf::{BpfInsn, xdp_link_create, xdp_prog_load, xskmap_create, xskmap_set};
pub(crate) use ring_map::RingMap;

/// `SOL_XDP` (uapi `linux/socket.h`); `libc` does not export it.
pub(super) const SOL_XDP: c_int = 283;
/// `XDP_RING_NEED_WAKEUP`: the ring's flags word asks for a syscall.
pub(super) const NEED_WAKEUP: u32 = libc::XDP_RING_NEED_WAKEUP;

/// One RX or TX descriptor (`struct xdp_desc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    /// Offset of the frame's first byte in the UMEM.
    pub addr: u64,
    /// Frame length.
    pub len: u32,
    /// Zero here (multi-buffer and TX metadata are not used).
    pub options: u32,
}
const _: () = assert!(size_of::<XdpDesc>() == 16);

mod sealed {
    pub trait Sealed {}
    impl Sealed for u64 {}
    impl Sealed for super::XdpDesc {}
}

/// What an XDP ring holds: a UMEM address (FILL, COMPLETION) or a descriptor (RX, TX).
/// Sealed: only plain-old-data types whose every bit pattern is valid.
pub(crate) trait RingEntry: sealed::Sealed + Copy {}
impl RingEntry for u64 {}
impl RingEntry for XdpDesc {}

pub(super) fn check(rc: c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`.
pub(super) fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: &OwnedFd, opt: c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points at a live `T` of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as socklen_t,
        )
    })
}

fn getsockopt<T: Default>(fd: &OwnedFd, opt: c_int) -> io::Result<(T, usize)> {
    let mut val = T::default();
    let mut len = size_of::<T>() as socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `val` and updates `len`.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok((val, len as usize))
}

/// Sets the size of ring `opt` (`XDP_RX_RING`, `XDP_TX_RING`, `XDP_UMEM_FILL_RING`,
/// `XDP_UMEM_COMPLETION_RING`).
pub(super) fn set_ring_size(fd: &OwnedFd, opt: c_int, entries: u32) -> io::Result<()> {
    setsockopt(fd, opt, &(entries as c_int))
}

/// `XDP_UMEM_REG` over `len` bytes at `addr` in chunks of `chunk` with `headroom`.
///
/// The caller passes memory that stays mapped for as long as any socket uses the UMEM:
/// the kernel pins the pages, so a later unmap cannot make it write into freed pages, but
/// user space would then no longer see the frames.
pub(super) fn umem_reg(
    fd: &OwnedFd,
    addr: NonNull<u8>,
    len: usize,
    chunk: u32,
    headroom: u32,
) -> io::Result<()> {
    let reg = libc::xdp_umem_reg {
        addr: addr.as_ptr() as u64,
        len: len as u64,
        chunk_size: chunk,
        headroom,
        flags: 0,
        tx_metadata_len: 0,
    };
    setsockopt(fd, libc::XDP_UMEM_REG, &reg)
}

/// The rings' offsets in their mmaps (`XDP_MMAP_OFFSETS`; never hardcode them).
pub(super) fn mmap_offsets(fd: &OwnedFd) -> io::Result<libc::xdp_mmap_offsets> {
    let (off, len) = getsockopt::<MmapOffsets>(fd, libc::XDP_MMAP_OFFSETS)?;
    if len != size_of::<libc::xdp_mmap_offsets>() {
        // Kernels before 5.4 lack the flags word, which need_wakeup requires.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel's XDP_MMAP_OFFSETS lacks ring flags (Linux 5.4 or later needed)",
        ));
    }
    Ok(off.0)
}

struct MmapOffsets(libc::xdp_mmap_offsets);

impl Default for MmapOffsets {
    fn default() -> Self {
        let z = libc::xdp_ring_offset {
            producer: 0,
            consumer: 0,
            desc: 0,
            flags: 0,
        };
        Self(libc::xdp_mmap_offsets {
            rx: z,
            tx: z,
            fr: z,
            cr: z,
        })
    }
}

/// `bind` to queue `queue` of interface `ifindex` with `flags`, sharing the UMEM of
/// `shared` when given (then `flags` must be `XDP_SHARED_UMEM` alone).
pub(super) fn bind(
    fd: &OwnedFd,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared: Option<&OwnedFd>,
) -> io::Result<()> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared.map_or(0, |s| s.as_raw_fd() as u32),
    };
    // SAFETY: `sa` is a valid `sockaddr_xdp` of the length passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_xdp).cast(),
            size_of::<libc::sockaddr_xdp>() as socklen_t,
        )
    })
}

/// Whether the bound socket runs in zero-copy mode (`XDP_OPTIONS`).
pub(super) fn is_zero_copy(fd: &OwnedFd) -> io::Result<bool> {
    let (flags, _) = getsockopt::<u32>(fd, libc::XDP_OPTIONS)?;
    Ok(flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// The kernel's drop counters for the socket (`XDP_STATISTICS`): rx_dropped,
/// rx_invalid_descs, tx_invalid_descs, rx_ring_full, fill_ring_empty, tx_ring_empty.
pub(super) fn statistics(fd: &OwnedFd) -> io::Result<[u64; 6]> {
    let (s, _) = getsockopt::<[u64; 6]>(fd, libc::XDP_STATISTICS)?;
    Ok(s)
}

/// The TX kick: `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`. Returns the errno on
/// failure, without formatting anything (data path). EAGAIN, EBUSY and ENOBUFS mean
/// "try again at the next burst".
#[inline]
pub(super) fn kick_tx(fd: RawFd) -> Result<(), i32> {
    // SAFETY: no buffers are passed; the kernel only transmits what the TX ring holds.
    let rc = unsafe {
        libc::sendto(
            fd,
            core::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            core::ptr::null(),
            0,
        )
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

/// The FILL wakeup when the FILL ring asks for one: `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`
/// (what DPDK and libxdp do). Returns the errno on failure (EAGAIN is normal).
#[inline]
pub(super) fn wakeup_fill(fd: RawFd) -> Result<(), i32> {
    // SAFETY: no buffer is passed (length 0); no address is asked for.
    let rc = unsafe {
        libc::recvfrom(
            fd,
            core::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

#[inline]
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `if_nametoindex`.
pub(super) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}
