//! The three sections of a report: each runs its measurements and prints its table.

use std::time::Duration;

use crate::dpdk::{PeerReport, RingPerfReference};
use crate::latency::{self, Load};
use crate::mempool_bench::{self, CACHE_SIZE, CacheMode, PoolBenchConfig};
use crate::pages::Pages;
use crate::peers::{CrossbeamArrayQueue, Ringbuf, Rtrb, SluiceBatch, SluiceInPlace, SluiceSlice};
use crate::pin::CorePair;
use crate::ring_bench::{BURSTS, Runner, TransferConfig, measure_interleaved, transfer_once};
use crate::table::{Table, best_median, ns, ns_mops};
use crate::targets::Figures;

/// Sizes of a run; `--quick` shrinks them.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Ring capacity for every ring (a power of two).
    pub capacity: usize,
    /// Items per ring run at bursts 8 and 32.
    pub items: u64,
    /// Items per ring run at burst 1 (each item costs a cache-line round trip there).
    pub items_burst1: u64,
    /// Runs per figure; the median is reported.
    pub reps: usize,
    /// Bursts per latency load.
    pub latency_bursts: u64,
    /// Objects per mempool run.
    pub pool_objects: u64,
    /// Where the threads run.
    pub cores: CorePair,
}

impl Plan {
    /// The default run (about 40 s here) or the CI smoke run (about 10 s).
    pub fn new(quick: bool, cores: CorePair) -> Self {
        let scale = if quick { 8 } else { 1 };
        Self {
            // This machine is a 2-vCPU KVM guest whose figures swing by 2x between runs; more
            // rounds by default make the medians steadier, five is the floor.
            capacity: 4096,
            items: (1 << 23) / scale,
            items_burst1: (1 << 21) / scale,
            reps: if quick { 5 } else { 11 },
            latency_bursts: 200_000 / scale,
            pool_objects: (1 << 23) / scale,
            cores,
        }
    }

    fn transfer(&self, burst: usize) -> TransferConfig {
        TransferConfig {
            capacity: self.capacity,
            items: if burst == 1 {
                self.items_burst1
            } else {
                self.items
            },
            reps: self.reps,
            cores: self.cores,
        }
    }
}

/// Section (a): the ring table. Fills the ring fields of `figures`.
pub fn ring_section(
    plan: &Plan,
    peer: Option<&PeerReport>,
    reference: Option<&RingPerfReference>,
    figures: &mut Figures,
) -> String {
    let mut t = Table::new([
        "burst",
        "sluice (slice)",
        "sluice (in place)",
        "sluice (Batch)",
        "ArrayQueue",
        "rtrb",
        "ringbuf",
        "rte_ring SP/SC burst",
        "rte_ring SP/SC bulk",
    ]);
    for burst in BURSTS {
        let mut rings: Vec<Runner> = vec![
            transfer_once::<SluiceSlice>,
            transfer_once::<CrossbeamArrayQueue>,
            transfer_once::<Rtrb>,
            transfer_once::<Ringbuf>,
            transfer_once::<SluiceInPlace>,
        ];
        // The owned-item API is the forwarder's path; it is shown at the default burst only.
        if burst == 32 {
            rings.push(transfer_once::<SluiceBatch>);
        }
        let figs = measure_interleaved(&plan.transfer(burst), burst, &rings);
        let best = |i: usize| figs.get(i).copied().flatten().map(|s| s.best);
        let (sluice, aq, rtrb, ringbuf, in_place) = (best(0), best(1), best(2), best(3), best(4));
        let dpdk_burst = peer.and_then(|p| p.ring_ns("burst", burst));
        let dpdk_bulk = peer.and_then(|p| p.ring_ns("bulk", burst));
        if burst == 32 {
            *figures = Figures {
                sluice_ring32: sluice,
                sluice_in_place32: in_place,
                rtrb32: rtrb,
                ringbuf32: ringbuf,
                array_queue32: aq,
                rte_ring_bulk32: dpdk_bulk,
                ..*figures
            };
        }
        let batch_cell = if burst == 32 {
            best_median(figs.get(5).copied().flatten())
        } else {
            "-".into()
        };
        t.row([
            burst.to_string(),
            best_median(figs[0]),
            best_median(figs[4]),
            batch_cell,
            best_median(figs[1]),
            best_median(figs[2]),
            best_median(figs[3]),
            ns_mops(dpdk_burst),
            ns_mops(dpdk_bulk),
        ]);
    }
    let mut out = format!(
        "(a) SPSC ring, u64 items, capacity {}, {} items per run ({} at burst 1), {} runs (Rust rings take turns within each round)\n    \
         cells: best ns/object (its Mops/s) ~median ns/object, consumer wall time from first to last item, every item checked in order;\n    \
         best run = least interference from the machine's other tenants, which only ever add time\n\n",
        plan.capacity, plan.items, plan.items_burst1, plan.reps
    );
    out.push_str(&t.render());
    let hz = peer.and_then(|p| p.tsc_hz).map(|hz| hz as f64 / 1e9);
    match (reference, hz) {
        (Some(r), Some(ghz)) => {
            let cell = |c: Option<f64>| {
                c.map_or("n/a".into(), |c| {
                    format!(
                        "{c:.1} cycles = {:.2} ns, /2 = {:.2} ns",
                        c / ghz,
                        c / ghz / 2.0
                    )
                })
            };
            out.push_str(&format!(
                "\ndpdk-test ring_perf_autotest, two physical cores, SP/SC bulk (its figure sums producer and \
                 consumer cycles/elt; /2 compares with wall time above):\n    bulk 8: {}\n    bulk 32: {}\n",
                cell(r.bulk8_cycles),
                cell(r.bulk32_cycles)
            ));
        }
        _ => out.push_str("\ndpdk-test ring_perf_autotest: n/a\n"),
    }
    out
}

/// Section (b): latency of a burst of 32 in the sluice ring.
pub fn latency_section(plan: &Plan) -> String {
    let mut t = Table::new(["load", "bursts", "p50 ns", "p99 ns", "p99.9 ns", "max ns"]);
    let loads = [
        ("saturated (ring kept full)", Load::Saturated),
        (
            "paced, 1 burst / 2 us (16 Mpps)",
            Load::Paced(Duration::from_micros(2)),
        ),
    ];
    for (name, load) in loads {
        let p = latency::measure(plan.capacity, plan.latency_bursts, load, plan.cores);
        t.row([
            name.to_string(),
            p.count.to_string(),
            p.p50.to_string(),
            p.p99.to_string(),
            p.p999.to_string(),
            p.max.to_string(),
        ]);
    }
    format!(
        "(b) Sluice ring latency, burst of 32 u64 (push_slice_bulk / pop_slice_bulk), capacity {}, \
         HdrHistogram of pop time - stamp time\n\n{}",
        plan.capacity,
        t.render()
    )
}

/// Section (c): mempool get+put on one core and the forwarder pattern. Fills the pool
/// fields of `figures`.
pub fn mempool_section(
    plan: &Plan,
    pages: &Pages,
    peer: Option<&PeerReport>,
    figures: &mut Figures,
) -> String {
    let cfg = PoolBenchConfig {
        objects: plan.pool_objects,
        reps: plan.reps,
        cores: plan.cores,
        pages: pages.pool_pages(),
    };
    // Like beside like: raw object pools (no per-object reset) and packet-buffer pools
    // (both reset each buffer's header on alloc).
    let mut t = Table::new([
        "cache",
        "Mempool 1",
        "rte_mempool 1",
        "Mempool 32",
        "rte_mempool 32",
        "PktPool 1",
        "rte_pktmbuf 1",
        "PktPool 32",
        "rte_pktmbuf 32",
    ]);
    for (name, mode, dpdk_cache) in [
        (
            format!("per-lcore, {CACHE_SIZE}"),
            CacheMode::PerLcore,
            CACHE_SIZE,
        ),
        ("none (shared store)".to_string(), CacheMode::None, 0),
    ] {
        let bulk = mempool_bench::BULK;
        let dma1 = mempool_bench::mempool_get_put(&cfg, mode, 1);
        let dma32 = mempool_bench::mempool_get_put(&cfg, mode, bulk);
        let pkt1 = mempool_bench::pktpool_get_put(&cfg, mode, 1);
        let pkt32 = mempool_bench::pktpool_get_put(&cfg, mode, bulk);
        let mp = |b| peer.and_then(|p| p.pool_ns(dpdk_cache, b));
        let mb = |b| peer.and_then(|p| p.pktmbuf_ns(dpdk_cache, b));
        if mode == CacheMode::PerLcore {
            figures.pktbuf_alloc_drop = Some(pkt1);
            figures.sluice_mempool32 = Some(dma32);
            figures.rte_mempool32 = mp(32);
            figures.sluice_pool32 = Some(pkt32);
            figures.rte_pktmbuf32 = mb(32);
        }
        t.row([
            name,
            ns(Some(dma1)),
            ns(mp(1)),
            ns(Some(dma32)),
            ns(mp(32)),
            ns(Some(pkt1)),
            ns(mb(1)),
            ns(Some(pkt32)),
            ns(mb(32)),
        ]);
    }
    let fwd_ring = 1024;
    let fwd = mempool_bench::forward(&cfg, fwd_ring).map_err(|why| eprintln!("VOID: {why}"));
    format!(
        "(c) Mempool get+put, ns/object, one core (core {}), {} objects of 2176 B, {}, {} objects per run, \
         median of {} runs\n    1 = one get/alloc + drop/free; 32 = get_bulk/alloc_bulk + free_bulk (DPDK: get_bulk + put_bulk, pktmbuf_alloc_bulk + pktmbuf_free_bulk)\n\n{}\n\
         Forwarder pattern: alloc_bulk 32 on lcore A (core {}) -> sluice ring ({fwd_ring}, push_burst/pop_burst) -> \
         free_bulk on lcore B (core {}), cache {CACHE_SIZE}: {} ns/object end to end\n",
        plan.cores.producer,
        mempool_bench::POOL_OBJS,
        pages.short(),
        plan.pool_objects,
        plan.reps,
        t.render(),
        plan.cores.producer,
        plan.cores.consumer,
        ns(fwd.ok()),
    )
}
