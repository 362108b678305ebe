//! `sluice-blkperf`: block I/O performance and verification, with `spdk_nvme_perf`'s flags.
//!
//! ```text
//! sluice-blkperf -q 32 -o 4096 -w randread -t 10 -c 0x1 --target nvme:00:03.0
//! sluice-blkperf -q 1 -o 4k -w randrw -M 70 -t 5 --target /dev/nvme0n1
//! sluice-blkperf --target ram --verify -w randrw --json
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use clap::Parser;
use sluice_apps::blkperf::{
    BlkperfError, CoreList, JobConfig, LcoreResult, Report, Workload, parse_size, render_json,
    render_text, run_queue,
};
use sluice_mempool::{HugePagePolicy, IdentityMapper, IovaMapper, Mempool, PageSize, PoolConfig};
use sluice_pmd::block::{AnyBlockQueue, BlockQueue, RamDisk, UringConfig, UringQueue};
use sluice_pmd::nvme::{ControllerConfig, VfioNvme};
use sluice_pmd::pci::PciAddr;
use sluice_pmd::vfio::IommuMode;

/// Measure block I/O (IOPS, bandwidth, latency percentiles) on an NVMe controller through
/// Sluice's driver, on a file or block device through io_uring, or on a RAM disk.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Queue depth per lcore.
    #[arg(short = 'q', long = "queue-depth", default_value_t = 32)]
    queue_depth: usize,
    /// I/O size in bytes (k and m suffixes allowed).
    #[arg(short = 'o', long = "io-size", default_value = "4096", value_parser = parse_size)]
    io_size: usize,
    /// Pattern: read, write, randread, randwrite, rw, randrw.
    #[arg(short = 'w', long = "workload", default_value = "randread")]
    workload: Workload,
    /// Read percentage for rw and randrw.
    #[arg(short = 'M', long = "rwmixread", default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    rwmixread: u8,
    /// Seconds to run.
    #[arg(short = 't', long = "time", default_value_t = 5.0)]
    time: f64,
    /// Cores, one lcore each: a hex mask (0x3) or a list (0,2-3).
    #[arg(short = 'c', long = "core-mask", default_value = "0")]
    cores: CoreList,
    /// nvme:BDF (bound to vfio-pci), a file or block device path, or ram.
    #[arg(long, default_value = "ram")]
    target: String,
    /// Write a pattern from the LBA and a seed over each lcore's span first, then check every
    /// block read; mismatches make the run fail.
    #[arg(long)]
    verify: bool,
    /// Seed of the verify pattern and the random offsets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use at most this many MiB per lcore (default: the target split between lcores; 64 MiB
    /// per lcore with --verify, which writes it all first).
    #[arg(long)]
    span_mib: Option<u64>,
    /// RAM disk size in MiB (per lcore).
    #[arg(long, default_value_t = 256)]
    ram_mib: u64,
    /// NVMe: do not configure shadow doorbells.
    #[arg(long)]
    no_shadow_doorbells: bool,
    /// NVMe: VFIO no-IOMMU mode (devices see physical addresses; hugepages required).
    #[arg(long)]
    no_iommu: bool,
    /// Files: buffered I/O instead of O_DIRECT.
    #[arg(long)]
    buffered: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(report) => {
            if cli.json {
                println!("{}", render_json(&report));
            } else {
                print!("{}", render_text(&report));
            }
            if report.failures() > 0 {
                eprintln!(
                    "sluice-blkperf: FAILED: {} errors or mismatches",
                    report.failures()
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-blkperf: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<Report, BlkperfError> {
    if cli.queue_depth == 0 || cli.time.is_nan() || cli.time <= 0.0 {
        return Err(BlkperfError::Usage("-q and -t must be positive".into()));
    }
    let lcores = cli.cores.0.len();
    let span_blocks_bytes = cli.span_mib.or(cli.verify.then_some(64)).map(|m| m << 20);
    let job = |block_size: u32| JobConfig {
        queue_depth: cli.queue_depth,
        io_size: cli.io_size,
        workload: cli.workload,
        read_percent: cli.workload.read_percent(cli.rwmixread),
        duration: Duration::from_secs_f64(cli.time),
        verify: cli.verify,
        seed: cli.seed,
        span_blocks: span_blocks_bytes.map(|b| b / u64::from(block_size)),
    };
    let describe = format!(
        "{} {} B, QD {}, {} s, {} lcore(s){}",
        cli.workload,
        cli.io_size,
        cli.queue_depth,
        cli.time,
        lcores,
        if cli.verify { ", verify" } else { "" }
    );
    if let Some(bdf) = cli.target.strip_prefix("nvme:") {
        let addr: PciAddr = bdf.parse()?;
        let mode = if cli.no_iommu {
            IommuMode::NoIommu
        } else {
            IommuMode::Type1v2
        };
        let cfg = ControllerConfig {
            io_qpairs: lcores as u16,
            io_entries: (cli.queue_depth + 1).clamp(2, 4096) as u16,
            shadow_doorbells: !cli.no_shadow_doorbells,
            huge_pages: if cli.no_iommu {
                HugePagePolicy::Require
            } else {
                HugePagePolicy::Prefer
            },
            ..ControllerConfig::default()
        };
        let mut dev = VfioNvme::open(addr, mode, cfg)?;
        let nsid = dev
            .ctrl
            .namespaces()
            .first()
            .map(|n| n.nsid)
            .ok_or_else(|| BlkperfError::Usage(format!("{addr} has no active namespace")))?;
        let target = format!(
            "nvme {addr} ({}, ns {nsid}, shadow doorbells {})",
            dev.ctrl.info().model,
            if dev.ctrl.shadow_doorbells() {
                "on"
            } else {
                "off"
            }
        );
        let mut queues = Vec::new();
        for _ in 0..lcores {
            queues.push(AnyBlockQueue::Nvme(dev.ctrl.create_io_qpair(nsid)?));
        }
        let mapper: Arc<dyn IovaMapper> = dev.container().clone();
        let bs = queues[0].info().block_size;
        let (results, queues) = run_lcores(cli, queues, &job(bs), mapper);
        for q in queues {
            if let AnyBlockQueue::Nvme(q) = q {
                dev.ctrl.delete_io_qpair(q)?;
            }
        }
        dev.shutdown()?;
        return Ok(Report {
            target,
            job: describe,
            lcores: results?,
        });
    }
    let (queues, target): (Vec<AnyBlockQueue>, String) = if cli.target == "ram" {
        let blocks = (cli.ram_mib << 20) / 512;
        let qs = (0..lcores)
            .map(|_| AnyBlockQueue::Ram(RamDisk::new(512, blocks * lcores as u64, cli.queue_depth)))
            .collect();
        (qs, format!("ram ({} MiB per lcore)", cli.ram_mib))
    } else {
        let path = PathBuf::from(&cli.target);
        let cfg = UringConfig {
            queue_depth: cli.queue_depth as u32,
            direct: !cli.buffered,
            ..UringConfig::default()
        };
        let mut qs = Vec::new();
        for _ in 0..lcores {
            qs.push(AnyBlockQueue::Uring(UringQueue::open(&path, &cfg)?));
        }
        let t = format!(
            "io_uring {} ({})",
            path.display(),
            if cfg.direct { "O_DIRECT" } else { "buffered" }
        );
        (qs, t)
    };
    let bs = queues[0].info().block_size;
    let (results, _) = run_lcores(cli, queues, &job(bs), Arc::new(IdentityMapper));
    Ok(Report {
        target,
        job: describe,
        lcores: results?,
    })
}

type LcoreOutcome = (Result<Vec<LcoreResult>, BlkperfError>, Vec<AnyBlockQueue>);

/// One pinned thread per core, each with its queue and its pool; all start together.
fn run_lcores(
    cli: &Cli,
    queues: Vec<AnyBlockQueue>,
    job: &JobConfig,
    mapper: Arc<dyn IovaMapper>,
) -> LcoreOutcome {
    let lcores = queues.len();
    let barrier = Barrier::new(lcores);
    let outcomes: Vec<(Result<LcoreResult, BlkperfError>, AnyBlockQueue)> = std::thread::scope(
        |s| {
            let handles: Vec<_> = queues
            .into_iter()
            .enumerate()
            .map(|(i, mut q)| {
                let cpu = cli.cores.0[i];
                let (barrier, mapper) = (&barrier, mapper.clone());
                s.spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                        eprintln!("sluice-blkperf: lcore {i}: could not pin to CPU {cpu}; running unpinned");
                    }
                    let pool = make_pool(i, job, mapper);
                    if let (Ok(pool), AnyBlockQueue::Uring(u)) = (&pool, &mut q)
                        && let Err(e) = u.register_pool(pool)
                    {
                        eprintln!("sluice-blkperf: lcore {i}: no fixed buffers ({e}); going on without");
                    }
                    barrier.wait();
                    let r = pool.and_then(|pool| run_queue(&mut q, i, lcores, cpu, job, &pool));
                    (r, q)
                })
            })
            .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| panic!("an lcore thread panicked"))
                })
                .collect()
        },
    );
    let mut results = Vec::new();
    let mut qs = Vec::new();
    let mut err = None;
    for (r, q) in outcomes {
        qs.push(q);
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    }
    (err.map_or(Ok(results), Err), qs)
}

fn make_pool(
    lcore: usize,
    job: &JobConfig,
    mapper: Arc<dyn IovaMapper>,
) -> Result<Mempool, BlkperfError> {
    let mut cfg = PoolConfig::new(
        format!("blkperf-{lcore}"),
        job.queue_depth as u32,
        job.io_size,
    );
    cfg.obj_align = 4096;
    cfg.cache_size = 0;
    cfg.page_size = PageSize::Size2M;
    cfg.huge_pages = HugePagePolicy::Prefer;
    Ok(Mempool::new(&cfg, mapper)?)
}
