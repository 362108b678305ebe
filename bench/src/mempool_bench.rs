//! Mempool get+put costs on one core, and the forwarder's cross-core pattern.
//!
//! Pools sit on the run's page size ([`crate::pages`], the same as the DPDK peer's), with
//! 8191 objects of 2176 B (128 B headroom + 2048 B data room).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use sluice_mempool::lcore::{self, LcoreGuard, LcoreId};
use sluice_mempool::ring;
use sluice_mempool::{
    Batch, DmaObj, HugePagePolicy, IdentityMapper, Mempool, PageSize, PktBuf, PktPool,
    PktPoolConfig, PoolConfig,
};

use crate::pin::{CorePair, pin_current};
use crate::stats::median;

/// Objects per pool, as in the DPDK peer (2^n - 1 suits DPDK's ring-backed pools).
pub const POOL_OBJS: u32 = 8191;
/// Per-lcore cache size for the "with cache" rows (DPDK's maximum, sluice's too).
pub const CACHE_SIZE: u32 = 512;
/// Burst of the bulk rows.
pub const BULK: usize = 32;

/// Which cache a single-core measurement uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Thread registered as lcore 0, pool cache of [`CACHE_SIZE`].
    PerLcore,
    /// Cache size 0: every get and put goes to the shared lock-free store.
    None,
}

impl CacheMode {
    fn cache_size(self) -> u32 {
        match self {
            Self::PerLcore => CACHE_SIZE,
            Self::None => 0,
        }
    }
}

/// Repetition knobs.
#[derive(Debug, Clone, Copy)]
pub struct PoolBenchConfig {
    /// Objects moved per run.
    pub objects: u64,
    /// Runs per figure (the median is reported).
    pub reps: usize,
    /// Core for single-core runs (`producer`) and the two forwarder lcores.
    pub cores: CorePair,
    /// Page size and policy of every pool.
    pub pages: (PageSize, HugePagePolicy),
}

fn pkt_pool(bench: &PoolBenchConfig, cache: CacheMode) -> PktPool {
    let mut cfg = PktPoolConfig::new("bench", POOL_OBJS);
    cfg.cache_size = cache.cache_size();
    (cfg.page_size, cfg.huge_pages) = bench.pages;
    PktPool::new(&cfg, Arc::new(IdentityMapper)).expect("the bench pool can be created")
}

/// Runs `body` on a thread pinned to `core`, registered as lcore `lcore` when `register`.
pub fn on_lcore<R: Send>(core: usize, lcore: Option<usize>, body: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_current(core);
            let _guard: Option<LcoreGuard> = lcore.map(|n| {
                lcore::register(LcoreId::new(n).expect("small lcore id"))
                    .expect("bench threads register distinct lcores")
            });
            body()
        })
        .join()
        .expect("bench thread panicked")
    })
}

/// Times `reps` runs of `round` (which moves `per_round` objects) and returns the median
/// ns per object.
fn time_rounds(cfg: &PoolBenchConfig, per_round: usize, mut round: impl FnMut()) -> f64 {
    let rounds = cfg.objects / per_round as u64;
    let mut runs = Vec::with_capacity(cfg.reps);
    for _ in 0..cfg.reps {
        let t0 = Instant::now();
        for _ in 0..rounds {
            round();
        }
        runs.push(t0.elapsed().as_nanos() as f64 / (rounds * per_round as u64) as f64);
    }
    median(&runs).unwrap_or(f64::NAN)
}

/// `PktPool` get+put on one core: `alloc` + drop for `bulk == 1`, `alloc_bulk` +
/// `PktBuf::free_bulk` otherwise. Median ns per object.
pub fn pktpool_get_put(cfg: &PoolBenchConfig, cache: CacheMode, bulk: usize) -> f64 {
    let pool = pkt_pool(cfg, cache);
    let lcore = (cache == CacheMode::PerLcore).then_some(0);
    on_lcore(cfg.cores.producer, lcore, || {
        if bulk == 1 {
            time_rounds(cfg, 1, || {
                drop(black_box(pool.alloc().expect("pool is never drained here")));
            })
        } else {
            let mut batch: Batch<PktBuf, BULK> = Batch::new();
            time_rounds(cfg, bulk, || {
                assert!(
                    pool.alloc_bulk(&mut batch, bulk),
                    "pool is never drained here"
                );
                black_box(&mut batch);
                PktBuf::free_bulk(&mut batch);
            })
        }
    })
}

/// `Mempool` (`DmaObj`, no per-packet metadata; the peer of plain `rte_mempool` get/put) on
/// one core: `get` + drop for `bulk == 1`, `get_bulk` + `DmaObj::free_bulk` otherwise.
/// Median ns per object.
pub fn mempool_get_put(cfg: &PoolBenchConfig, cache: CacheMode, bulk: usize) -> f64 {
    let mut pcfg = PoolConfig::new("bench-dma", POOL_OBJS, 2176);
    pcfg.cache_size = cache.cache_size();
    (pcfg.page_size, pcfg.huge_pages) = cfg.pages;
    let pool = Mempool::new(&pcfg, Arc::new(IdentityMapper)).expect("pool can be created");
    let lcore = (cache == CacheMode::PerLcore).then_some(0);
    on_lcore(cfg.cores.producer, lcore, || {
        let mut batch = Batch::<_, BULK>::new();
        time_rounds(cfg, bulk, || {
            if bulk == 1 {
                drop(black_box(pool.get().expect("pool is never drained here")));
                return;
            }
            assert!(
                pool.get_bulk(&mut batch, bulk),
                "pool is never drained here"
            );
            black_box(&mut batch);
            DmaObj::free_bulk(&mut batch);
        })
    })
}

/// The forwarder's pattern: lcore A (producer core) allocates bursts of [`BULK`] and pushes
/// them through a sluice ring of `ring_capacity` to lcore B (consumer core), which frees
/// them in bulk. Median ns per object, timed on B from the first buffer to the last; `Err`
/// if a buffer went missing.
pub fn forward(cfg: &PoolBenchConfig, ring_capacity: usize) -> Result<f64, String> {
    let pool = pkt_pool(cfg, CacheMode::PerLcore);
    let mut runs = Vec::with_capacity(cfg.reps);
    for _ in 0..cfg.reps {
        let (mut tx, mut rx) = ring::ring::<PktBuf>(ring_capacity).map_err(|e| e.to_string())?;
        let total = cfg.objects;
        let start = Barrier::new(2);
        let (ns, freed) = std::thread::scope(|s| {
            s.spawn(|| {
                on_lcore(cfg.cores.producer, Some(0), || {
                    let mut batch: Batch<PktBuf, BULK> = Batch::new();
                    let mut sent = 0;
                    start.wait();
                    while sent < total {
                        let want = BULK.min((total - sent) as usize);
                        // Pool empty (buffers in flight or in B's cache): try again.
                        if batch.is_empty() && !pool.alloc_bulk(&mut batch, want) {
                            continue;
                        }
                        sent += tx.push_burst(&mut batch) as u64;
                    }
                });
            });
            s.spawn(|| {
                on_lcore(cfg.cores.consumer, Some(1), || {
                    let mut batch: Batch<PktBuf, BULK> = Batch::new();
                    start.wait();
                    while rx.pop_burst(&mut batch, BULK) == 0 {}
                    let mut freed = batch.len() as u64;
                    PktBuf::free_bulk(&mut batch);
                    let t0 = Instant::now();
                    while freed < total {
                        freed += rx.pop_burst(&mut batch, BULK) as u64;
                        PktBuf::free_bulk(&mut batch);
                    }
                    (t0.elapsed().as_nanos() as f64 / total as f64, freed)
                })
            })
            .join()
            .expect("lcore B panicked")
        });
        if freed != total || pool.available() != pool.capacity() {
            return Err(format!(
                "forwarder: freed {freed} of {total}; pool has {} of {} back",
                pool.available(),
                pool.capacity()
            ));
        }
        runs.push(ns);
    }
    Ok(median(&runs).unwrap_or(f64::NAN))
}
