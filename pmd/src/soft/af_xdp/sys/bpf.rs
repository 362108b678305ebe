//! `bpf(2)`: the XSKMAP, the XDP program and its link.

use core::mem::size_of;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::c_int;

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
struct BpfAttr([u8; 144]);

impl BpfAttr {
    fn new() -> Self {
        Self([0; 144])
    }

    fn u32_at(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, off: usize, v: u64) -> &mut Self {
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
pub(crate) fn xskmap_create(entries: u32) -> io::Result<OwnedFd> {
    let mut a = BpfAttr::new();
    a.u32_at(0, BPF_MAP_TYPE_XSKMAP)
        .u32_at(4, 4)
        .u32_at(8, 4)
        .u32_at(12, entries);
    bpf_fd(BPF_MAP_CREATE, &mut a)
}

/// `BPF_MAP_UPDATE_ELEM`: `map[key] = fd`.
pub(crate) fn xskmap_set(map: &OwnedFd, key: u32, xsk: &OwnedFd) -> io::Result<()> {
    let value = xsk.as_raw_fd() as u32;
    let mut a = BpfAttr::new();
    a.u32_at(0, map.as_raw_fd() as u32)
        .u64_at(8, &key as *const u32 as u64)
        .u64_at(16, &value as *const u32 as u64)
        .u64_at(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// `BPF_PROG_LOAD` of an XDP program under the GPL; the verifier's log goes to `log`.
pub(crate) fn xdp_prog_load(insns: &[BpfInsn], log: &mut [u8]) -> io::Result<OwnedFd> {
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
pub(crate) fn xdp_link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = BpfAttr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(4, ifindex)
        .u32_at(8, BPF_XDP)
        .u32_at(12, flags);
    bpf_fd(BPF_LINK_CREATE, &mut a)
}
