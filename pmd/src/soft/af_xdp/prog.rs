//! The XDP program that steers frames to the AF_XDP sockets, its XSKMAP, and its
//! attachment by a BPF link.
//!
//! The program is the classic one-liner every AF_XDP user loads (libxdp's default program
//! minus its dispatcher), in C:
//!
//! ```c
//! struct { __uint(type, BPF_MAP_TYPE_XSKMAP); __type(key, __u32); __type(value, __u32); } xsks;
//! SEC("xdp") int sluice_xsk(struct xdp_md *ctx)
//! {
//!         return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
//! }
//! ```
//!
//! It is kept here as its six eBPF instructions (docs/devices.md#af_xdp; verified on the
//! host's 6.18 kernel) and loaded with `bpf(2)`. That needs no clang, libbpf or libxdp at build or
//! run time. Debian's xdp-tools 1.3.1 utilities fail to load their programs on this kernel;
//! its libxdp (as DPDK's `net_af_xdp` uses it) loads its default program here only by
//! falling back from its dispatcher, which wants a bpffs at `/sys/fs/bpf`; and a `build.rs`
//! that compiles C for `-target bpf` would make clang and libbpf headers a build dependency
//! of every CI machine, for six instructions. A frame on a queue with no socket in the map
//! passes to the kernel stack (`XDP_PASS`).
//!
//! The program is attached with `BPF_LINK_CREATE`, not netlink: a link detaches when its
//! last descriptor closes, so nothing stays attached when the process exits, is killed by
//! SIGINT/SIGKILL, or crashes.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::sys::{self, BpfInsn};

/// How long attaching retries an interface that is busy before reporting it.
const LINK_BUSY_WAIT: Duration = Duration::from_secs(2);
/// `XDP_FLAGS_SKB_MODE`: generic XDP (any driver, after the skb is built).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver (veth has it).
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_PASS`, the action when no socket is bound to the frame's queue.
const XDP_PASS: i32 = 2;
/// Helper `bpf_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;

/// The program's instructions with the XSKMAP's descriptor in the map load.
fn instructions(map_fd: i32) -> [BpfInsn; 6] {
    let insn = |code, dst: u8, src: u8, off, imm| BpfInsn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    };
    [
        // r2 = *(u32 *)(r1 + 16)         key = ctx->rx_queue_index
        //   (BPF_LDX | BPF_MEM | BPF_W; xdp_md.rx_queue_index is at offset 16)
        insn(0x61, 2, 1, 16, 0),
        // r1 = map                        &xsks (BPF_LD | BPF_IMM | BPF_DW, two slots;
        //   src = BPF_PSEUDO_MAP_FD: the verifier turns the fd into the map's address)
        insn(0x18, 1, 1, 0, map_fd),
        insn(0x00, 0, 0, 0, 0),
        // r3 = XDP_PASS                   flags: the action when the key holds no socket
        //   (BPF_ALU64 | BPF_MOV | BPF_K)
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map           r0 = bpf_redirect_map(r1, r2, r3)
        //   (BPF_JMP | BPF_CALL)
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // exit                            return r0
        insn(0x95, 0, 0, 0, 0),
    ]
}

/// How the program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Native, in the driver.
    Driver,
    /// Generic, on the skb (slower; used when the driver has no native XDP).
    Generic,
}

/// The XSKMAP, the program, and its link on one interface. Dropping it detaches the
/// program (closing the link) and frees map and program.
#[derive(Debug)]
pub(super) struct XdpProgram {
    // Field order is drop order: the link goes first, so the program detaches before the
    // map it redirects to is released.
    _link: OwnedFd,
    _prog: OwnedFd,
    map: OwnedFd,
    mode: XdpAttachMode,
}

/// Why attaching failed, with the step for the error message.
#[derive(Debug)]
pub(super) struct AttachError {
    pub step: &'static str,
    pub source: io::Error,
    /// The verifier's log, when loading failed.
    pub log: String,
}

impl XdpProgram {
    /// Creates an XSKMAP of `entries` queues, loads the program and attaches it to
    /// `ifindex`, natively when the driver allows and generically otherwise.
    pub(super) fn attach(ifindex: u32, entries: u32) -> Result<Self, AttachError> {
        let err = |step, source| AttachError {
            step,
            source,
            log: String::new(),
        };
        let map = sys::xskmap_create(entries).map_err(|e| err("create the XSKMAP", e))?;
        let insns = instructions(std::os::fd::AsRawFd::as_raw_fd(&map));
        let mut log = vec![0u8; 4096];
        let prog = sys::xdp_prog_load(&insns, &mut log).map_err(|source| AttachError {
            step: "load the XDP program",
            source,
            log: String::from_utf8_lossy(log.split(|&b| b == 0).next().unwrap_or(&[]))
                .trim()
                .to_string(),
        })?;
        // A link closed a moment ago (a port just dropped, a process just killed) may still
        // hold the interface while the kernel tears it down: EBUSY. Retry, bounded.
        let deadline = Instant::now() + LINK_BUSY_WAIT;
        let create = |flags| loop {
            match sys::xdp_link_create(&prog, ifindex, flags) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => break r,
            }
        };
        let (link, mode) = match create(XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, XdpAttachMode::Driver),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
                let l = create(XDP_FLAGS_SKB_MODE)
                    .map_err(|e| err("attach the XDP program (generic mode)", e))?;
                (l, XdpAttachMode::Generic)
            }
            Err(e) => return Err(err("attach the XDP program", e)),
        };
        Ok(Self {
            _link: link,
            _prog: prog,
            map,
            mode,
        })
    }

    /// Steers queue `queue`'s frames to socket `xsk`.
    pub(super) fn set_socket(&self, queue: u32, xsk: &OwnedFd) -> io::Result<()> {
        sys::xskmap_set(&self.map, queue, xsk)
    }

    /// How it is attached.
    pub(super) fn mode(&self) -> XdpAttachMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding_matches_the_c_source_above() {
        let bytes: Vec<[u8; 8]> = instructions(7)
            .iter()
            .map(|i| {
                let mut b = [0u8; 8];
                b[0] = i.code;
                b[1] = i.regs;
                b[2..4].copy_from_slice(&i.off.to_le_bytes());
                b[4..8].copy_from_slice(&i.imm.to_le_bytes());
                b
            })
            .collect();
        assert_eq!(
            bytes,
            [
                [0x61, 0x12, 16, 0, 0, 0, 0, 0],
                [0x18, 0x11, 0, 0, 7, 0, 0, 0],
                [0; 8],
                [0xb7, 0x03, 0, 0, 2, 0, 0, 0],
                [0x85, 0x00, 0, 0, 51, 0, 0, 0],
                [0x95, 0x00, 0, 0, 0, 0, 0, 0],
            ]
        );
    }
}
