//! The validated configuration: what downstream crates take.
//!
//! Nothing here can be built except through [`Config::from_file`] or
//! [`Config::from_str_named`], so holding a `Config` means every rule of the schema held when
//! it was read. Indices ([`PortId`], [`MempoolId`]) are only handed out by a `Config` and index
//! that same config's slices.

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::addr::{MacAddr, PciAddr};

/// Index of a port in [`Config::ports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub(crate) usize);

impl PortId {
    /// The position of the port in [`Config::ports`] (and in the file's `[[ports]]` list).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Index of a mempool in [`Config::mempools`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MempoolId(pub(crate) usize);

impl MempoolId {
    /// The position of the mempool in [`Config::mempools`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// Page size backing a mempool's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PageSize {
    /// 2 MiB huge pages (`"2M"`, the default).
    #[serde(rename = "2M")]
    Huge2M,
    /// 1 GiB huge pages (`"1G"`).
    #[serde(rename = "1G")]
    Huge1G,
    /// Ordinary 4 KiB pages (`"none"`): works without hugepage setup, slower (more TLB misses).
    #[serde(rename = "none")]
    Small4K,
}

/// A pool of packet buffers (`[[mempools]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mempool {
    /// Unique name, referred to by `ports[].mempool`.
    pub name: String,
    /// Number of buffers in the pool.
    pub buffers: u32,
    /// Data room of each buffer in bytes, `64..=16384`; the pool adds headroom on top.
    pub buffer_size: u16,
    /// Buffers each lcore caches locally, `0..=512` and at most `buffers / 2`.
    pub cache_size: u16,
    /// Page size of the pool's memory.
    pub hugepages: PageSize,
}

/// AF_XDP bind mode (`xdp_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpMode {
    /// `XDP_COPY`: works on every driver, frames are copied into the UMEM.
    Copy,
    /// `XDP_ZEROCOPY`: the NIC DMAs into the UMEM; needs driver support.
    ZeroCopy,
    /// Try zero-copy, fall back to copy (the default).
    Auto,
}

/// The driver behind a port and its driver-specific address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortDriver {
    /// In-memory port pair: what one port transmits on queue `i`, its peer receives on queue
    /// `i`. Peers name each other and have the same number of queues.
    Ring {
        /// The other end of the pair.
        peer: PortId,
    },
    /// An AF_XDP socket per queue on a Linux network interface.
    AfXdp {
        /// Interface name, e.g. `veth-a`.
        interface: String,
        /// Copy or zero-copy.
        mode: XdpMode,
    },
    /// A virtio-net PCI device (modern, 1.x) bound to vfio-pci.
    Virtio {
        /// The device's PCI address.
        pci: PciAddr,
    },
    /// A virtio-net device implemented by a vhost-user backend on this host (DPDK's
    /// `net_vhost`, ...), reached through its unix socket: no VFIO, no root. The backend
    /// listens; start it first.
    VirtioUser {
        /// The backend's socket, e.g. `/run/sluice/vhost-net0.sock`.
        path: std::path::PathBuf,
        /// `packed` (default true): take packed virtqueues when the backend offers them
        /// (`VIRTIO_F_RING_PACKED`); false keeps split rings, as DPDK's `packed_vq=0`.
        packed: bool,
    },
    /// This process as a vhost-user backend: the virtio-net device of a QEMU guest or a
    /// virtio-user container, which connects to the socket this port listens on. A stale
    /// socket file at the path is replaced; one a live process listens on is an error.
    VhostUser {
        /// The socket to listen on, e.g. `/run/sluice/vm1.sock`.
        path: std::path::PathBuf,
    },
}

/// A network port (`[[ports]]`): `queues` rx/tx queue pairs on one driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Unique name, used in queue references (`port0/q1`) and forwarding rules.
    pub name: String,
    /// Driver and address.
    pub driver: PortDriver,
    /// Number of rx/tx queue pairs, `1..=` the driver's limit ([`Port::max_queues`]).
    pub queues: u16,
    /// Descriptors per rx queue: a power of two in `64..=32768`.
    pub rx_descriptors: u16,
    /// Descriptors per tx queue: a power of two in `64..=32768`.
    pub tx_descriptors: u16,
    /// The pool rx buffers come from.
    pub mempool: MempoolId,
    /// MAC address override; `None` keeps the one the device (or driver) provides.
    pub mac: Option<MacAddr>,
}

impl Port {
    /// Fewest descriptors a ring may have.
    pub const MIN_DESCRIPTORS: u16 = 64;
    /// Most descriptors a ring may have: 32768 is the virtio split-virtqueue maximum (virtio 1.2
    /// §2.7); a device may offer fewer (QEMU: 256 by default, at most 1024), which the driver
    /// reports when the port is opened.
    pub const MAX_DESCRIPTORS: u16 = 32768;

    /// Most queue pairs the driver supports: 16 for ring and virtio ports, 64 for AF_XDP.
    pub fn max_queues(&self) -> u16 {
        driver_max_queues(&self.driver)
    }
}

pub(crate) fn driver_max_queues(driver: &PortDriver) -> u16 {
    match driver {
        PortDriver::Ring { .. }
        | PortDriver::Virtio { .. }
        | PortDriver::VirtioUser { .. }
        | PortDriver::VhostUser { .. } => 16,
        PortDriver::AfXdp { .. } => 64,
    }
}

/// One queue pair of one port (`"port0/q3"` in the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueRef {
    /// The port.
    pub port: PortId,
    /// Queue index, below the port's `queues`.
    pub queue: u16,
}

/// What an lcore does (`role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LcoreRole {
    /// `"rtc"`: run to completion: receive, forward and transmit on the same core.
    #[serde(rename = "rtc")]
    RunToCompletion,
    /// `"rx"`: pipeline stage 1: receive and hand batches to the workers.
    #[serde(rename = "rx")]
    Rx,
    /// `"worker"`: pipeline stage 2: apply the forwarding rules, hand batches to tx lcores.
    #[serde(rename = "worker")]
    Worker,
    /// `"tx"`: pipeline stage 3: transmit.
    #[serde(rename = "tx")]
    Tx,
}

/// What an lcore does with a burst its outlet (a tx queue or a pipeline ring) keeps refusing
/// (`tx_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxPolicy {
    /// `"drop"` (the default): hold the refused burst and back-pressure, but drop it (counted
    /// in the outlet's `drops`) once the outlet has taken nothing for 100 µs, so that a dead
    /// link costs frames, not an ever-growing delay.
    #[default]
    Drop,
    /// `"lossless"`: hold and back-pressure for as long as it takes; nothing is dropped while
    /// the lcore runs (exact-count tests, peers that drain slowly).
    Lossless,
}

/// A polling thread pinned to one CPU (`[[lcores]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lcore {
    /// CPU id the thread is pinned to; unique among lcores, the generator and the sink.
    pub core: u32,
    /// Its job.
    pub role: LcoreRole,
    /// Rx queues it polls, each owned by this lcore alone. Empty for workers and tx lcores.
    pub rx: Vec<QueueRef>,
    /// Tx queues it sends on, each owned by this lcore alone. Empty for rx lcores and workers.
    /// For a run-to-completion lcore without `tx` in the file, one per rx queue: the same queue
    /// index on that rx port's forwarding destination.
    pub tx: Vec<QueueRef>,
    /// What it does with bursts its outlets keep refusing.
    pub tx_policy: TxPolicy,
}

/// What a forwarding rule does to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// `"io"`: send the frame unchanged.
    Io,
    /// `"mac-swap"`: swap the source and destination MAC addresses.
    MacSwap,
    /// `"l2"`: rewrite the destination (and source) MAC address.
    L2 {
        /// New destination MAC (`dst_mac`).
        dst: MacAddr,
        /// New source MAC (`src_mac`); `None` means the egress port's MAC at run time.
        src: Option<MacAddr>,
    },
}

/// A forwarding rule (`[[forward]]`): every frame received on `from` goes out on `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardRule {
    /// Ingress port; at most one rule per ingress port.
    pub from: PortId,
    /// Egress port.
    pub to: PortId,
    /// Frame rewrite.
    pub mode: ForwardMode,
}

/// Settings of the rx → worker → tx pipeline (`[pipeline]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pipeline {
    /// Capacity in packets of each SPSC ring between two stages: a power of two in
    /// `64..=65536`, at least `burst`.
    pub ring_size: u32,
    /// Packets moved per ring operation, `1..=256`.
    pub burst: u16,
}

/// The built-in traffic generator (`[generator]`): transmits on queue 0 of its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generator {
    /// Port it transmits on; no lcore or forwarding rule may use it.
    pub port: PortId,
    /// CPU it runs on; may equal the sink's, not an lcore's.
    pub core: u32,
    /// Frame size in bytes as on the wire, 4-byte FCS included (so 64 is the minimum Ethernet
    /// frame); `64..=` the port's mempool `buffer_size + 4` (the buffer holds the frame
    /// without its FCS). Default 64.
    pub frame_size: u16,
    /// Frames per second; `None` sends as fast as it can.
    pub rate_pps: Option<NonZeroU64>,
    /// Number of distinct flows (UDP source ports) to cycle through, `1..=65536`.
    pub flows: u32,
}

/// The built-in traffic sink (`[sink]`): receives on queue 0 of its port, counts and drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sink {
    /// Port it receives on; no lcore or forwarding rule may use it. May be the generator's
    /// port (the generator transmits, the sink receives).
    pub port: PortId,
    /// CPU it runs on; may equal the generator's, not an lcore's.
    pub core: u32,
}

/// A validated configuration. See the [crate docs](crate) for the schema and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) name: String,
    pub(crate) burst: u16,
    pub(crate) mempools: Vec<Mempool>,
    pub(crate) ports: Vec<Port>,
    pub(crate) lcores: Vec<Lcore>,
    pub(crate) forward: Vec<ForwardRule>,
    pub(crate) pipeline: Option<Pipeline>,
    pub(crate) stats_interval: Option<Duration>,
    pub(crate) generator: Option<Generator>,
    pub(crate) sink: Option<Sink>,
    pub(crate) prometheus: Option<std::net::SocketAddr>,
}

impl Config {
    /// The file name the config was read from (as given), used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets per rx/tx burst for run-to-completion lcores, `1..=256` (default 32).
    pub fn burst(&self) -> u16 {
        self.burst
    }

    /// Mempools, in file order.
    pub fn mempools(&self) -> &[Mempool] {
        &self.mempools
    }

    /// Ports, in file order; [`PortId::index`] indexes this slice.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// Lcores, in file order.
    pub fn lcores(&self) -> &[Lcore] {
        &self.lcores
    }

    /// Forwarding rules, in file order.
    pub fn forward(&self) -> &[ForwardRule] {
        &self.forward
    }

    /// Pipeline settings; present exactly when some lcore has role rx, worker or tx.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// How often to print counters; `None` when `[stats] interval_ms = 0`. Default 1 s.
    pub fn stats_interval(&self) -> Option<Duration> {
        self.stats_interval
    }

    /// The built-in generator, if configured.
    pub fn generator(&self) -> Option<&Generator> {
        self.generator.as_ref()
    }

    /// The built-in sink, if configured.
    pub fn sink(&self) -> Option<&Sink> {
        self.sink.as_ref()
    }

    /// Where to serve Prometheus metrics (`[telemetry] prometheus`), if anywhere.
    pub fn prometheus(&self) -> Option<std::net::SocketAddr> {
        self.prometheus
    }

    /// The port with this id.
    ///
    /// # Panics
    /// If `id` came from a different `Config` with fewer ports.
    pub fn port(&self, id: PortId) -> &Port {
        &self.ports[id.0]
    }

    /// The mempool with this id.
    ///
    /// # Panics
    /// If `id` came from a different `Config` with fewer mempools.
    pub fn mempool(&self, id: MempoolId) -> &Mempool {
        &self.mempools[id.0]
    }

    /// The id of the port named `name`.
    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports.iter().position(|p| p.name == name).map(PortId)
    }

    /// Ids of all ports, in file order.
    pub fn port_ids(&self) -> impl Iterator<Item = PortId> + '_ {
        (0..self.ports.len()).map(PortId)
    }

    /// The forwarding rule for frames received on `from`, if any.
    pub fn forward_from(&self, from: PortId) -> Option<&ForwardRule> {
        self.forward.iter().find(|r| r.from == from)
    }

    /// The lcore that polls rx queue `queue`; `None` for an unpolled queue.
    pub fn rx_owner(&self, queue: QueueRef) -> Option<&Lcore> {
        self.lcores.iter().find(|l| l.rx.contains(&queue))
    }

    /// `queue` as written in the file: `port0/q3`.
    pub fn queue_name(&self, queue: QueueRef) -> String {
        format!("{}/q{}", self.port(queue.port).name, queue.queue)
    }
}
