//! The syscall seam of the AF_XDP driver: sockets, socket options, the rings' mmaps, the
//! TX kick and FILL wakeup, and `bpf(2)`. This is the only module of the driver with
//! `unsafe`; everything above it is safe code over the small types defined here.
//!
//! Layouts and constants are uapi's `if_xdp.h` and `bpf.h` (REFERENCE §D); `libc` supplies
//! the `if_xdp.h` structs.

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::NonNull;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;

use libc::{c_int, c_void, socklen_t};

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
    #[cfg(test)]
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

fn check(rc: c_int) -> io::Result<()> {
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

// ---- bpf(2) ----

/// One eBPF instruction (`struct bpf_insn`): opcode, dst and src registers, offset,
/// immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BpfInsn {
    /// Opcode (class | size/op | mode/source).
    pub code: u8,
    /// `dst | src << 4`.
    pub regs: u8,
    /// Offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}
const _: () = assert!(size_of::<BpfInsn>() == 8);

/// A zeroed `union bpf_attr` (144 bytes on 6.1; the kernel accepts a shorter or equal size
/// whose tail it does not know as long as that tail is zero).
#[repr(C, align(8))]
pub(super) struct BpfAttr([u8; 144]);

impl BpfAttr {
    pub(super) fn new() -> Self {
        Self([0; 144])
    }

    pub(super) fn u32_at(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    pub(super) fn u64_at(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

const BPF_MAP_CREATE: c_int = 0;
const BPF_MAP_UPDATE_ELEM: c_int = 2;
const BPF_PROG_LOAD: c_int = 5;
const BPF_LINK_CREATE: c_int = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP`, the attach type of XDP links.
const BPF_XDP: u32 = 37;

fn bpf(cmd: c_int, attr: &mut BpfAttr) -> io::Result<c_int> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` of the size passed; pointers inside
    // it (set by the callers below) point at live buffers for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            size_of::<BpfAttr>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as c_int)
    }
}

fn bpf_fd(cmd: c_int, attr: &mut BpfAttr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the bpf commands used here return a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_MAP_CREATE` of an XSKMAP with `entries` slots (key and value: u32).
pub(super) fn xskmap_create(entries: u32) -> io::Result<OwnedFd> {
    let mut a = BpfAttr::new();
    a.u32_at(0, BPF_MAP_TYPE_XSKMAP)
        .u32_at(4, 4)
        .u32_at(8, 4)
        .u32_at(12, entries);
    bpf_fd(BPF_MAP_CREATE, &mut a)
}

/// `BPF_MAP_UPDATE_ELEM`: `map[key] = fd`.
pub(super) fn xskmap_set(map: &OwnedFd, key: u32, xsk: &OwnedFd) -> io::Result<()> {
    let value = xsk.as_raw_fd() as u32;
    let mut a = BpfAttr::new();
    a.u32_at(0, map.as_raw_fd() as u32)
        .u64_at(8, &key as *const u32 as u64)
        .u64_at(16, &value as *const u32 as u64)
        .u64_at(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// `BPF_PROG_LOAD` of an XDP program under the GPL; the verifier's log goes to `log`.
pub(super) fn xdp_prog_load(insns: &[BpfInsn], log: &mut [u8]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut a = BpfAttr::new();
    a.u32_at(0, BPF_PROG_TYPE_XDP)
        .u32_at(4, insns.len() as u32)
        .u64_at(8, insns.as_ptr() as u64)
        .u64_at(16, license.as_ptr() as u64)
        .u32_at(24, u32::from(!log.is_empty()))
        .u32_at(28, log.len() as u32)
        .u64_at(32, log.as_mut_ptr() as u64)
        .u32_at(68, BPF_XDP);
    bpf_fd(BPF_PROG_LOAD, &mut a)
}

/// `BPF_LINK_CREATE`: attaches XDP program `prog` to `ifindex` in mode `flags`
/// (`XDP_FLAGS_DRV_MODE` 4, `XDP_FLAGS_SKB_MODE` 2). The program detaches when the last
/// descriptor of the returned link closes — also when the process dies.
pub(super) fn xdp_link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = BpfAttr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(4, ifindex)
        .u32_at(8, BPF_XDP)
        .u32_at(12, flags);
    bpf_fd(BPF_LINK_CREATE, &mut a)
}
