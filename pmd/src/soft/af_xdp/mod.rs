//! An AF_XDP port on any Linux interface (DPDK's `net_af_xdp`).
//!
//! # Model
//! Each queue of the port is one AF_XDP socket bound to that queue of the interface, with
//! its four rings mapped into this process (kernel `Documentation/networking/af_xdp.rst`):
//!
//! ```text
//!            FILL  (we produce: empty chunks)      ──► kernel writes frames into them
//!  RX queue  RX    (kernel produces: filled chunks) ──► rx_burst hands out PktBufs
//!            TX    (we produce: frames to send)     ──► kernel transmits (after a kick)
//!  TX queue  COMPLETION (kernel produces: sent)     ──► buffers go back to the pool
//! ```
//!
//! The UMEM — the memory the frames live in — is a [`Umem`]: a packet pool whose buffers
//! are exactly the UMEM's chunks, so a received frame is already in a [`PktBuf`](crate::PktBuf) and a
//! `PktBuf` of that pool is transmitted from where its data lies. Every queue of a port
//! shares one UMEM registration (`XDP_SHARED_UMEM`, each socket with its own FILL and
//! COMPLETION rings); ports opened on the same `Umem` share it too, so forwarding between
//! them copies nothing in user space. A `PktBuf` of another pool is copied into a chunk on
//! transmit.
//!
//! A small XDP program, attached to the interface with a BPF link for the port's lifetime,
//! redirects each frame to the socket of its receive queue through an XSKMAP; it is kept
//! as six eBPF instructions loaded with `bpf(2)` (`prog.rs` says why and maps each to its
//! C). The link detaches when the last handle goes, or when the process dies, SIGKILL
//! included.
//!
//! The burst paths make no syscall except the TX kick (`sendto(MSG_DONTWAIT)`) and the FILL
//! wakeup, each only when the kernel's need-wakeup flag asks (in copy mode, TX always asks).
//!
//! # Modes
//! Copy mode works on every interface (on veth it is the only one). Zero-copy needs a driver
//! that supports it; [`XdpMode::Auto`] lets the kernel try zero-copy and fall back.
//!
//! # Example
//! ```no_run
//! use sluice_pmd::net::{NetPort, RxQueue};
//! use sluice_pmd::soft::af_xdp::{AfXdpConfig, AfXdpPort};
//! use sluice_pmd::{Batch, PktPoolConfig};
//!
//! let cfg = AfXdpConfig::new("veth0");
//! let mut port = AfXdpPort::open_with_pool("p0", &cfg, &PktPoolConfig::new("p0", 8192))?;
//! let mut q = port.take_queues().unwrap();
//! let mut pkts: Batch<_> = Batch::new();
//! let n = q.rx[0].rx_burst(&mut pkts);
//! # let _ = n;
//! # Ok::<(), sluice_pmd::Error>(())
//! ```

mod error;
#[cfg(feature = "test-utils")]
pub mod fake_kernel;
mod prog;
mod ring;
mod rx;
#[allow(unsafe_code)]
mod sys;
mod tx;
mod umem;
mod xsk;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_mempool::PktPoolConfig;

use crate::error::Error;
use crate::net::{LinkStatus, MacAddr, NetPort, PortCounters, PortInfo, Queues};
use prog::XdpProgram;
use xsk::{QueueSetup, Xsk};

pub use error::AfXdpError;
pub use prog::XdpAttachMode;
pub use rx::AfXdpRxQueue;
pub use tx::AfXdpTxQueue;
pub use umem::{Umem, XDP_PACKET_HEADROOM};

/// Copy or zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// The kernel copies frames between the driver's buffers and the UMEM (any interface).
    Copy,
    /// The driver DMAs into the UMEM; opening fails where the driver cannot.
    ZeroCopy,
    /// Zero-copy where the driver can, copy otherwise.
    #[default]
    Auto,
}

/// How an AF_XDP port is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// The Linux interface, e.g. `veth0`.
    pub interface: String,
    /// Queues 0..`queues` of the interface, one socket each.
    pub queues: u16,
    /// RX ring size (a power of two); the FILL ring is twice that, and so is the most
    /// buffers posted per queue.
    pub rx_descs: u32,
    /// TX ring size, also the COMPLETION ring's (a power of two).
    pub tx_descs: u32,
    /// Copy, zero-copy, or either.
    pub mode: XdpMode,
    /// UMEM chunk size, 2048 or 4096 (used by [`AfXdpPort::open_with_pool`]).
    pub chunk: u32,
    /// The port id written into received packets' metadata.
    pub port_id: u16,
}

impl AfXdpConfig {
    /// One queue, 2048-entry rings, 2048-byte chunks, mode auto.
    pub fn new(interface: impl Into<String>) -> Self {
        Self {
            interface: interface.into(),
            queues: 1,
            rx_descs: 2048,
            tx_descs: 2048,
            mode: XdpMode::Auto,
            chunk: 2048,
            port_id: 0,
        }
    }

    /// UMEM chunks a port of this shape needs at least: a full FILL ring (twice the RX
    /// ring) and a full TX ring per queue, plus two bursts per queue in the application's
    /// hands.
    pub fn min_chunks(&self) -> u32 {
        u32::from(self.queues)
            * (2 * self.rx_descs + self.tx_descs + 2 * crate::DEFAULT_BURST as u32)
    }
}

/// An AF_XDP port; see the [module docs](self).
#[derive(Debug)]
pub struct AfXdpPort {
    info: PortInfo,
    /// `/sys/class/net/IF`, when sysfs shows this network namespace.
    sysfs: Option<PathBuf>,
    queues: Option<Queues<AfXdpRxQueue, AfXdpTxQueue>>,
    counters: PortCounters,
    sockets: Vec<Arc<Xsk>>,
    umem: Arc<Umem>,
    attach_mode: XdpAttachMode,
}

/// Kernel-side drop counters of a port's sockets (`XDP_STATISTICS`), summed over queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpKernelStats {
    /// Frames dropped for reasons other than the ones below.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the FILL ring was empty when a frame arrived.
    pub fill_ring_empty: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
}

impl AfXdpPort {
    /// Opens `cfg.interface` as port `name`, with a UMEM of its own made from `pool`
    /// (page size, hugepage policy, cache; count raised to [`AfXdpConfig::min_chunks`] if
    /// lower).
    pub fn open_with_pool(
        name: &str,
        cfg: &AfXdpConfig,
        pool: &PktPoolConfig,
    ) -> Result<Self, Error> {
        let mut pool = pool.clone();
        pool.count = pool.count.max(cfg.min_chunks());
        let umem = Umem::new(&pool, cfg.chunk)?;
        Self::open(name, cfg, &umem)
    }

    /// Opens `cfg.interface` as port `name` on `umem` (which other ports may share).
    /// Attaches the XDP program, then binds one socket per queue.
    pub fn open(name: &str, cfg: &AfXdpConfig, umem: &Arc<Umem>) -> Result<Self, Error> {
        validate(name, cfg)?;
        let ifname = cfg.interface.as_str();
        let ifindex =
            sys::if_nametoindex(ifname).map_err(|source| AfXdpError::NoSuchInterface {
                interface: ifname.to_string(),
                source,
            })?;
        let sysfs = sysfs_dir(ifname, ifindex)?;
        let available = sysfs.as_deref().and_then(queue_count);
        if let Some(n) = available.filter(|&n| u32::from(cfg.queues) > n) {
            return Err(AfXdpError::QueueOutOfRange {
                interface: ifname.to_string(),
                queue: u32::from(cfg.queues) - 1,
                available: n,
            }
            .into());
        }
        let prog = XdpProgram::attach(ifindex, u32::from(cfg.queues)).map_err(|e| {
            match e.source.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => AfXdpError::Permission {
                    interface: ifname.to_string(),
                    step: e.step,
                    needs: "CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)",
                    source: e.source,
                },
                Some(libc::EBUSY | libc::EEXIST) if e.log.is_empty() => {
                    AfXdpError::ProgramAttached {
                        interface: ifname.to_string(),
                        step: e.step,
                        source: e.source,
                    }
                }
                _ => AfXdpError::Program {
                    interface: ifname.to_string(),
                    step: e.step,
                    verifier_log: (!e.log.is_empty()).then_some(e.log),
                    source: e.source,
                },
            }
        })?;
        let prog = Arc::new(prog);
        let attach_mode = prog.mode();

        let counters = PortCounters::new(cfg.queues.into(), cfg.queues.into());
        let (mut rx, mut tx, mut sockets) = (Vec::new(), Vec::new(), Vec::new());
        for q in 0..cfg.queues {
            let setup = QueueSetup {
                interface: ifname,
                ifindex,
                queue: q,
                port_id: cfg.port_id,
                rx_descs: cfg.rx_descs,
                tx_descs: cfg.tx_descs,
                mode: cfg.mode,
                umem,
                prog: &prog,
            };
            let qi = usize::from(q);
            let (xsk, r, t) = setup
                .open(counters.rx[qi].clone(), counters.tx[qi].clone())
                .map_err(|e| match e {
                    // bind's EINVAL for a queue the sysfs count could not rule out.
                    AfXdpError::Setup { source, .. }
                        if source.raw_os_error() == Some(libc::EINVAL) && available.is_none() =>
                    {
                        AfXdpError::Setup {
                            interface: ifname.to_string(),
                            queue: u32::from(q),
                            step: "bind (is the queue id beyond the interface's queues?)",
                            source,
                        }
                    }
                    e => e,
                })?;
            sockets.push(xsk);
            rx.push(r);
            tx.push(t);
        }
        let info = PortInfo {
            name: name.to_string(),
            driver: "af_xdp",
            mac: sysfs.as_deref().and_then(read_mac).unwrap_or_default(),
            rx_queues: cfg.queues,
            tx_queues: cfg.queues,
            max_frame: umem.chunk() as usize - XDP_PACKET_HEADROOM,
        };
        Ok(Self {
            info,
            sysfs,
            queues: Some(Queues { rx, tx }),
            counters,
            sockets,
            umem: umem.clone(),
            attach_mode,
        })
    }

    /// The UMEM the port's buffers come from.
    pub fn umem(&self) -> &Arc<Umem> {
        &self.umem
    }

    /// Whether the sockets run in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.sockets.iter().all(|s| s.zero_copy())
    }

    /// How the XDP program is attached.
    pub fn attach_mode(&self) -> XdpAttachMode {
        self.attach_mode
    }

    /// The kernel's drop counters for the port's sockets (one getsockopt per queue: for
    /// the stats thread, not the data path).
    pub fn kernel_stats(&self) -> XdpKernelStats {
        let mut t = XdpKernelStats::default();
        for s in &self.sockets {
            if let Ok([dropped, rx_inv, tx_inv, ring_full, fill_empty, _]) = sys::statistics(s.fd())
            {
                t.rx_dropped += dropped;
                t.rx_invalid_descs += rx_inv;
                t.tx_invalid_descs += tx_inv;
                t.rx_ring_full += ring_full;
                t.fill_ring_empty += fill_empty;
            }
        }
        t
    }
}

fn validate(name: &str, cfg: &AfXdpConfig) -> Result<(), Error> {
    let bad = |what, value: String| {
        Err(Error::InvalidConfig {
            port: name.to_string(),
            what,
            value,
        })
    };
    if cfg.queues == 0 {
        return bad("queues", "0".into());
    }
    // The kernel takes ring sizes up to 2^31; 2^16 is far beyond any use and keeps the
    // shadow bookkeeping small.
    for (what, n) in [
        ("rx descriptors (a power of two, 64..=65536)", cfg.rx_descs),
        ("tx descriptors (a power of two, 64..=65536)", cfg.tx_descs),
    ] {
        if !n.is_power_of_two() || !(64..=65536).contains(&n) {
            return bad(what, n.to_string());
        }
    }
    Ok(())
}

/// The interface's sysfs directory, checked to be this network namespace's view (sysfs
/// shows the namespace of whoever mounted it; `ip netns exec` remounts it). `None` when
/// there is no sysfs at all.
fn sysfs_dir(ifname: &str, ifindex: u32) -> Result<Option<PathBuf>, AfXdpError> {
    let net = Path::new("/sys/class/net");
    if !net.is_dir() {
        return Ok(None);
    }
    let dir = net.join(ifname);
    let seen = std::fs::read_to_string(dir.join("ifindex"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if seen == Some(ifindex) {
        Ok(Some(dir))
    } else {
        Err(AfXdpError::SysfsOtherNamespace {
            interface: ifname.to_string(),
            ifindex,
            sysfs_ifindex: seen,
        })
    }
}

/// The interface's queue count as bind checks it (the larger of RX and TX).
fn queue_count(dir: &Path) -> Option<u32> {
    let (mut rx, mut tx) = (0u32, 0u32);
    for e in std::fs::read_dir(dir.join("queues")).ok()?.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with("rx-") {
            rx += 1;
        } else if n.starts_with("tx-") {
            tx += 1;
        }
    }
    (rx.max(tx) > 0).then_some(rx.max(tx))
}

fn read_mac(dir: &Path) -> Option<MacAddr> {
    parse_mac(std::fs::read_to_string(dir.join("address")).ok()?.trim())
}

fn parse_mac(s: &str) -> Option<MacAddr> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(m))
}

impl NetPort for AfXdpPort {
    type Rx = AfXdpRxQueue;
    type Tx = AfXdpTxQueue;

    fn info(&self) -> &PortInfo {
        &self.info
    }

    /// From `/sys/class/net/IF/operstate` (and `speed` when the driver reports one);
    /// `unknown` (drivers without carrier reporting) counts as up, and so does a machine
    /// without sysfs.
    fn link(&self) -> LinkStatus {
        let Some(dir) = &self.sysfs else {
            return LinkStatus::Up { speed_mbps: None };
        };
        let state = std::fs::read_to_string(dir.join("operstate")).unwrap_or_default();
        match state.trim() {
            "up" | "unknown" => LinkStatus::Up {
                speed_mbps: std::fs::read_to_string(dir.join("speed"))
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .filter(|&s| s > 0)
                    .and_then(|s| u32::try_from(s).ok()),
            },
            _ => LinkStatus::Down,
        }
    }

    fn take_queues(&mut self) -> Option<Queues<AfXdpRxQueue, AfXdpTxQueue>> {
        self.queues.take()
    }

    fn counters(&self) -> PortCounters {
        self.counters.clone()
    }
}

#[cfg(test)]
mod datapath_tests;
#[cfg(test)]
mod tests;
