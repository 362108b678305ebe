//! The virtio-net driver's own cost per packet on the host, against the software device
//! (`SoftVirtioNet`, feature `test-utils` of `sluice-pmd`), on split and on packed rings,
//! beside the in-memory ring port doing the same loop.
//!
//! The device model runs in loopback with automatic processing off, so it does nothing
//! until it is stepped. Each iteration steps it (untimed: the device's work, which takes
//! what the driver transmitted, completes it and writes the same frames into the receive
//! buffers), then times only the driver, reading the TSC around each call: `rx_burst` of up
//! to B frames, then `tx_burst` of the very buffers received (io forward). B frames
//! circulate, so every burst is full. The ring port runs the same loop; its "device" is the
//! other end of the ring pair, which sends back whatever it receives.
//!
//! Both the device and the driver run on one core here, so the ring's cache lines never
//! move between cores as they do with vhost or QEMU on another CPU: these figures are the
//! driver's instructions and its own memory traffic, a floor for what it costs on a real
//! device.

use std::sync::Arc;

use sluice_dataplane::tsc;
use sluice_mempool::{
    Batch, HugePagePolicy, IdentityMapper, PageSize, PktBuf, PktPool, PktPoolConfig,
};
use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
use sluice_pmd::soft::ring_port::{RingPairConfig, RingRxQueue, RingTxQueue, ring_pair};
use sluice_pmd::virtio::model::{ModelConfig, SoftVirtioNet};
use sluice_pmd::virtio::{
    PciTransport, RingKind, VirtioConfig, VirtioPort, VirtioRxQueue, VirtioTxQueue, feature,
};

use crate::mempool_bench::on_lcore;
use crate::stats::{Summary, summarize};
use crate::table::Table;

/// Descriptors per virtio ring (the driver's default) and slots per ring-port ring.
const RING_SIZE: u16 = 256;
/// Buffers per pool: a full receive ring, a burst in flight, and room for the cache.
const POOL_BUFS: u32 = 2047;
/// Per-lcore cache of each pool (the forwarder's default).
const POOL_CACHE: u32 = 256;
/// 64 B on the wire: 60 B in the buffer (the FCS is not stored).
const FRAME_LEN: usize = 60;
/// Packets moved before the first timed round (caches, pool cache, branch predictors).
const WARMUP_PACKETS: u64 = 4096;

/// Sizes of a run; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Packets per round at bursts 8 and 32.
    pub packets: u64,
    /// Packets per round at burst 1 (each burst pays a device step too).
    pub packets_burst1: u64,
    /// Rounds; cells give the best and the median.
    pub rounds: usize,
    /// Core the single bench thread is pinned to.
    pub core: usize,
    /// Page size and policy of the pools and the virtio rings.
    pub pages: (PageSize, HugePagePolicy),
}

impl Plan {
    /// The default run or the CI smoke run (8× fewer packets, 5 rounds).
    pub fn new(quick: bool, core: usize, pages: (PageSize, HugePagePolicy)) -> Self {
        let scale = if quick { 8 } else { 1 };
        Self {
            packets: (1 << 18) / scale,
            packets_burst1: (1 << 16) / scale,
            rounds: if quick { 5 } else { 11 },
            core,
            pages,
        }
    }
}

/// A driver's queue pair with the device behind it.
trait Rig {
    /// The device's turn (untimed): take what the driver sent, hand it back to receive.
    fn device(&mut self);
    /// The driver's receive burst.
    fn rx<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize;
    /// Reclaim of completed transmit buffers, when the driver has a separate step for it.
    fn reclaim(&mut self);
    /// The driver's transmit burst.
    fn tx<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize;
    /// `Err` if the driver counted errors or drops, or lost count of the packets moved.
    fn check(&self, moved: u64) -> Result<(), String>;
}

fn frame() -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f
}

fn pool(name: &str, pages: (PageSize, HugePagePolicy)) -> Result<PktPool, String> {
    let mut cfg = PktPoolConfig::new(name, POOL_BUFS);
    cfg.cache_size = POOL_CACHE;
    (cfg.page_size, cfg.huge_pages) = pages;
    PktPool::new(&cfg, Arc::new(IdentityMapper)).map_err(|e| format!("{name} pool: {e}"))
}

/// The virtio driver on the software device.
struct VirtioRig {
    dev: Arc<SoftVirtioNet>,
    rx: VirtioRxQueue<PciTransport<SoftVirtioNet>>,
    tx: VirtioTxQueue<PciTransport<SoftVirtioNet>>,
    // After the queues: the last handle resets the device before its memory goes.
    _port: VirtioPort<PciTransport<SoftVirtioNet>>,
    // Last: every buffer is back before the pool goes.
    _pool: PktPool,
}

impl VirtioRig {
    /// `packed`: the device also offers RING_PACKED, which the driver then takes.
    fn new(frames: usize, pages: (PageSize, HugePagePolicy), packed: bool) -> Result<Self, String> {
        let pool = pool("virtio-bench", pages)?;
        let defaults = ModelConfig::default();
        let dev = SoftVirtioNet::new(ModelConfig {
            loopback: true,
            features: defaults.features | if packed { feature::RING_PACKED } else { 0 },
            ..defaults
        });
        let cfg = VirtioConfig {
            name: "bench".into(),
            rx_descriptors: RING_SIZE,
            tx_descriptors: RING_SIZE,
            dma_page: pages.0,
            huge_pages: HugePagePolicy::Prefer,
            ..VirtioConfig::default()
        };
        let d = dev.clone();
        let mut port = PciTransport::new(
            "model".into(),
            &dev.caps(),
            move |_| Ok(d.clone()),
            cfg.timeout,
        )
        .and_then(|t| VirtioPort::with_transport(t, &cfg, &pool, Arc::new(IdentityMapper)))
        .map_err(|e| format!("virtio port on the model: {e}"))?;
        let want = if packed {
            RingKind::Packed
        } else {
            RingKind::Split
        };
        if port.ring_kind() != want {
            return Err(format!(
                "virtio port on {:?} rings, not {want:?}",
                port.ring_kind()
            ));
        }
        // Bring-up needed the device to answer control commands; from here it moves only
        // when stepped.
        dev.set_auto(false);
        let q = port.take_queues().ok_or("virtio port without queues")?;
        let (Some(rx), Some(tx)) = (q.rx.into_iter().next(), q.tx.into_iter().next()) else {
            return Err("virtio port without queue 0".into());
        };
        for _ in 0..frames {
            dev.inject(0, &frame());
        }
        Ok(Self {
            dev,
            rx,
            tx,
            _port: port,
            _pool: pool,
        })
    }

    fn doorbells(&self) -> u64 {
        self.dev.stats().notifies
    }
}

impl Rig for VirtioRig {
    fn device(&mut self) {
        self.dev.step();
        // The model keeps a copy of every frame sent; drop them, or memory grows.
        drop(self.dev.take_sent());
    }

    #[inline]
    fn rx<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        self.rx.rx_burst(out)
    }

    #[inline]
    fn reclaim(&mut self) {
        self.tx.reclaim();
    }

    #[inline]
    fn tx<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        self.tx.tx_burst(pkts)
    }

    fn check(&self, moved: u64) -> Result<(), String> {
        let (rx, tx) = (self.rx.counters().snapshot(), self.tx.counters().snapshot());
        if rx.errors + rx.drops + rx.rx_nombuf + tx.errors + tx.full > 0
            || rx.packets != moved
            || tx.packets != moved
        {
            return Err(format!(
                "virtio: moved {moved}, counters rx {rx:?} tx {tx:?}"
            ));
        }
        Ok(())
    }
}

/// The ring port: the driver's side receives what the other end sends, and sends it back.
struct RingRig {
    rx: RingRxQueue,
    tx: RingTxQueue,
    peer_rx: RingRxQueue,
    peer_tx: RingTxQueue,
    carry: Batch<PktBuf>,
    // Last: see `VirtioRig`.
    _pool: PktPool,
}

impl RingRig {
    fn new(frames: usize, pages: (PageSize, HugePagePolicy)) -> Result<Self, String> {
        let pool = pool("ring-bench", pages)?;
        let cfg = RingPairConfig {
            ring_size: usize::from(RING_SIZE),
            ..RingPairConfig::default()
        };
        let (mut peer, mut port) = ring_pair("peer", "bench", &cfg).map_err(|e| e.to_string())?;
        let (Some(p), Some(q)) = (peer.take_queues(), port.take_queues()) else {
            return Err("ring port without queues".into());
        };
        let mut rig = Self {
            peer_rx: p.rx.into_iter().next().ok_or("ring port without queue 0")?,
            peer_tx: p.tx.into_iter().next().ok_or("ring port without queue 0")?,
            rx: q.rx.into_iter().next().ok_or("ring port without queue 0")?,
            tx: q.tx.into_iter().next().ok_or("ring port without queue 0")?,
            carry: Batch::new(),
            _pool: pool.clone(),
        };
        for _ in 0..frames {
            let mut p = pool.alloc().ok_or("ring bench pool empty")?;
            p.extend_from_slice(&frame())
                .ok_or("frame longer than a buffer")?;
            rig.carry
                .push(p)
                .map_err(|_| "more frames than a burst".to_string())?;
        }
        rig.peer_tx.tx_burst(&mut rig.carry);
        Ok(rig)
    }
}

impl Rig for RingRig {
    fn device(&mut self) {
        while self.peer_rx.rx_burst(&mut self.carry) > 0 {
            self.peer_tx.tx_burst(&mut self.carry);
        }
    }

    #[inline]
    fn rx<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        self.rx.rx_burst(out)
    }

    /// Nothing to reclaim: the buffer itself went into the ring.
    fn reclaim(&mut self) {}

    #[inline]
    fn tx<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        self.tx.tx_burst(pkts)
    }

    fn check(&self, moved: u64) -> Result<(), String> {
        let (rx, tx) = (self.rx.counters().snapshot(), self.tx.counters().snapshot());
        if rx.packets != moved || tx.packets != moved || tx.full > 0 {
            return Err(format!("ring: moved {moved}, counters rx {rx:?} tx {tx:?}"));
        }
        Ok(())
    }
}

/// TSC ticks spent in each driver call over a round.
#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    rx: u64,
    reclaim: u64,
    tx: u64,
    packets: u64,
}

/// The least of many back-to-back TSC reads: what each timed interval carries besides the
/// call it brackets (subtracted).
fn timer_overhead() -> u64 {
    (0..10_000)
        .map(|_| {
            let t0 = tsc::now();
            tsc::now().wrapping_sub(t0)
        })
        .min()
        .unwrap_or(0)
}

/// Moves `packets` through `rig` in bursts of `N`, timing the driver's calls. With `split`,
/// the transmit reclaim is called (and timed) on its own before `tx_burst`, which then
/// finds nothing to reclaim.
fn round<R: Rig, const N: usize>(
    rig: &mut R,
    packets: u64,
    split: bool,
    overhead: u64,
) -> Result<Ticks, String> {
    let mut burst: Batch<PktBuf, N> = Batch::new();
    let mut t = Ticks::default();
    let lap = |from: u64, to: u64| to.wrapping_sub(from).saturating_sub(overhead);
    while t.packets < packets {
        rig.device();
        let t0 = tsc::now();
        let got = rig.rx(&mut burst);
        let t1 = tsc::now();
        let t2 = if split {
            rig.reclaim();
            tsc::now()
        } else {
            t1
        };
        let sent = rig.tx(&mut burst);
        let t3 = tsc::now();
        if got != N || sent != got {
            return Err(format!(
                "burst {N}: received {got}, sent {sent} (every burst should be full)"
            ));
        }
        t.rx += lap(t0, t1);
        if split {
            t.reclaim += lap(t1, t2);
        }
        t.tx += lap(t2, t3);
        t.packets += got as u64;
    }
    Ok(t)
}

/// Per-round figures of one (port, burst), in ns per packet.
#[derive(Debug, Default)]
struct Rounds {
    rx: Vec<f64>,
    reclaim: Vec<f64>,
    tx: Vec<f64>,
    total: Vec<f64>,
}

impl Rounds {
    fn add(&mut self, t: Ticks, ns_per_tick: f64) {
        let per = |ticks: u64| ticks as f64 * ns_per_tick / t.packets as f64;
        self.rx.push(per(t.rx));
        self.reclaim.push(per(t.reclaim));
        self.tx.push(per(t.tx));
        self.total.push(per(t.rx + t.reclaim + t.tx));
    }
}

/// `best ~median` of ns figures.
fn cell(s: Option<Summary>) -> String {
    s.map_or("n/a".into(), |s| format!("{:.1} ~{:.1}", s.best, s.median))
}

/// `best ~median` of ns figures converted to ticks.
fn cycles(s: Option<Summary>, ticks_per_ns: f64) -> String {
    s.map_or("n/a".into(), |s| {
        format!(
            "{:.0} ~{:.0}",
            s.best * ticks_per_ns,
            s.median * ticks_per_ns
        )
    })
}

/// Runs the virtio driver-cost benchmark and returns its report (or why it could not run).
pub fn virtio_section(plan: &Plan) -> String {
    let plan = *plan;
    on_lcore(plan.core, Some(0), move || {
        measure(&plan).unwrap_or_else(|e| format!("virtio driver bench failed: {e}\n"))
    })
}

/// What [`measure_burst`] found for one burst size.
struct BurstFigures {
    virtio: Rounds,
    /// The same on packed rings.
    packed: Rounds,
    ring: Rounds,
    /// Virtio with the reclaim timed on its own (burst 32 only).
    split: Option<Rounds>,
    /// Doorbells the virtio driver rang per burst (split, packed).
    doorbells: (f64, f64),
}

fn measure_burst<const N: usize>(
    plan: &Plan,
    overhead: u64,
    ns_per_tick: f64,
) -> Result<BurstFigures, String> {
    let packets = if N == 1 {
        plan.packets_burst1
    } else {
        plan.packets
    };
    let mut virtio = VirtioRig::new(N, plan.pages, false)?;
    let mut packed = VirtioRig::new(N, plan.pages, true)?;
    let mut ring = RingRig::new(N, plan.pages)?;
    let mut moved = (0u64, 0u64, 0u64);
    moved.0 += round::<_, N>(&mut virtio, WARMUP_PACKETS, false, overhead)?.packets;
    moved.2 += round::<_, N>(&mut packed, WARMUP_PACKETS, false, overhead)?.packets;
    moved.1 += round::<_, N>(&mut ring, WARMUP_PACKETS, false, overhead)?.packets;
    let mut figs = BurstFigures {
        virtio: Rounds::default(),
        packed: Rounds::default(),
        ring: Rounds::default(),
        split: (N == 32).then(Rounds::default),
        doorbells: (0.0, 0.0),
    };
    let (mut bells, mut packed_bells, mut bursts) = (0u64, 0u64, 0u64);
    // The ports take turns within each round, so that a noisy stretch hits both alike.
    for _ in 0..plan.rounds {
        let before = virtio.doorbells();
        let t = round::<_, N>(&mut virtio, packets, false, overhead)?;
        bells += virtio.doorbells() - before;
        bursts += t.packets / N as u64;
        moved.0 += t.packets;
        figs.virtio.add(t, ns_per_tick);
        let before = packed.doorbells();
        let t = round::<_, N>(&mut packed, packets, false, overhead)?;
        packed_bells += packed.doorbells() - before;
        moved.2 += t.packets;
        figs.packed.add(t, ns_per_tick);
        let t = round::<_, N>(&mut ring, packets, false, overhead)?;
        moved.1 += t.packets;
        figs.ring.add(t, ns_per_tick);
        if let Some(split) = figs.split.as_mut() {
            let t = round::<_, N>(&mut virtio, packets, true, overhead)?;
            moved.0 += t.packets;
            split.add(t, ns_per_tick);
        }
    }
    figs.doorbells = (
        bells as f64 / bursts.max(1) as f64,
        packed_bells as f64 / bursts.max(1) as f64,
    );
    virtio.check(moved.0)?;
    packed.check(moved.2)?;
    ring.check(moved.1)?;
    Ok(figs)
}

fn measure(plan: &Plan) -> Result<String, String> {
    let clock = tsc::Clock::calibrate();
    let ticks_per_ns = clock.hz() / 1e9;
    let ns_per_tick = 1.0 / ticks_per_ns;
    let overhead = timer_overhead();
    let bursts = [
        (32, measure_burst::<32>(plan, overhead, ns_per_tick)?),
        (8, measure_burst::<8>(plan, overhead, ns_per_tick)?),
        (1, measure_burst::<1>(plan, overhead, ns_per_tick)?),
    ];

    let mut out = format!(
        "virtio-net driver cost per packet, host, software device (SoftVirtioNet in loopback, stepped between bursts, untimed)\n    \
         io forward of 64 B frames (60 B in the buffer): rx_burst(B), then tx_burst of the same buffers; only the driver's calls are timed;\n    \
         {} packets per round ({} at burst 1), {} rounds, the three ports taking turns in each; one thread pinned to core {}, lcore 0, pool cache {};\n    \
         {RING_SIZE}-entry rings; cells: best ns/packet ~median; cycles are TSC ticks at {:.3} GHz (ixy counts core cycles), \
         {overhead} ticks of timer overhead subtracted per call\n\n",
        plan.packets,
        plan.packets_burst1,
        plan.rounds,
        plan.core,
        POOL_CACHE,
        clock.hz() / 1e9,
    );
    let mut t = Table::new([
        "burst",
        "port",
        "rx_burst ns/pkt",
        "tx_burst ns/pkt",
        "rx+tx ns/pkt",
        "rx+tx cycles/pkt",
        "doorbells/burst",
    ]);
    for (burst, figs) in &bursts {
        for (name, r, bells) in [
            (
                "virtio (model)",
                &figs.virtio,
                format!("{:.2}", figs.doorbells.0),
            ),
            (
                "virtio packed",
                &figs.packed,
                format!("{:.2}", figs.doorbells.1),
            ),
            ("ring port", &figs.ring, "-".to_string()),
        ] {
            t.row([
                burst.to_string(),
                name.to_string(),
                cell(summarize(&r.rx)),
                cell(summarize(&r.tx)),
                cell(summarize(&r.total)),
                cycles(summarize(&r.total), ticks_per_ns),
                bells,
            ]);
        }
    }
    out.push_str(&t.render());
    if let Some(split) = bursts[0].1.split.as_ref() {
        out.push_str(
            "\nvirtio at burst 32, transmit reclaim timed on its own before tx_burst (same rounds, interleaved):\n\n",
        );
        let mut b = Table::new(["part", "ns/pkt", "cycles/pkt"]);
        for (name, v) in [
            ("rx_burst (pop used, rx refill, alloc)", &split.rx),
            ("tx reclaim (pop used, free_bulk)", &split.reclaim),
            ("tx_burst (header, post, publish, doorbell)", &split.tx),
            ("sum", &split.total),
        ] {
            b.row([
                name.to_string(),
                cell(summarize(v)),
                cycles(summarize(v), ticks_per_ns),
            ]);
        }
        out.push_str(&b.render());
    }
    Ok(out)
}
