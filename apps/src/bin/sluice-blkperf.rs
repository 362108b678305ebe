//! `sluice-blkperf`: block I/O performance and verification, with `spdk_nvme_perf`'s flags.
//!
//! ```text
//! sluice-blkperf -q 32 -o 4096 -w randread -t 10 -c 0x1 --target nvme:00:03.0
//! sluice-blkperf -q 1 -o 4k -w randrw -M 70 -t 5 --target /dev/nvme0n1
//! sluice-blkperf --target ram --verify -w randrw --json
//! ```
//!
//! Every numeric flag has a range, and what the flags ask for together (buffers, RAM disk)
//! is checked against the machine's memory before anything is allocated. Once the lcores
//! run, a line says so (on stderr with `--json`); SIGINT or SIGTERM then stops them: each
//! drains what it has in flight, the report of what was done is printed (marked
//! interrupted), and an NVMe controller's queues are deleted and the controller shut down
//! as at the end of a timed run. More signals within a second are the same stop; one after
//! that exits at once (status 130), as `sluice-fwd` does.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use clap::Parser;
use sluice_apps::AppError;
use sluice_apps::blkperf::{
    BlkperfArgs, BlkperfError, JobConfig, LcoreResult, Progress, ProgressFormat, RAM_BLOCK, Report,
    histogram_json, render_histogram, render_json, render_text, run_queue_live,
};
use sluice_apps::cli;
use sluice_apps::telemetry::{BlockQueueCounters, Endpoints, Running, Sources};
use sluice_mempool::{HugePagePolicy, IdentityMapper, IovaMapper, Mempool, PageSize, PoolConfig};
use sluice_pmd::block::{AnyBlockQueue, BlockQueue, RamDisk, UringConfig, UringQueue};
use sluice_pmd::nvme::{ControllerConfig, VfioNvme};
use sluice_pmd::pci::PciAddr;
use sluice_pmd::vfio::IommuMode;

fn main() -> ExitCode {
    let cli = BlkperfArgs::parse();
    match run(&cli) {
        Ok(report) => {
            if cli.json {
                if cli.latency >= 2 {
                    println!("{}", histogram_json(&report));
                }
                println!("{}", render_json(&report));
            } else {
                print!("{}", render_text(&report));
                if cli.latency >= 2 {
                    print!("{}", render_histogram(&report));
                }
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

fn run(cli: &BlkperfArgs) -> Result<Report, BlkperfError> {
    cli.check(cli::memory_bytes())?;
    // Before any device is touched: a signal from here on stops the run in order.
    let stop = cli::stop_on_signals("sluice-blkperf")?;
    // Bound before any device is touched; served once the queues exist.
    let endpoints = Endpoints::bind(&cli.telemetry.options(None)).map_err(AppError::from)?;
    if let Some(d) = endpoints.describe() {
        eprintln!("sluice-blkperf: {d}");
    }
    let lcores = cli.lcores();
    let live: Vec<Arc<BlockQueueCounters>> = (0..lcores).map(|_| Arc::default()).collect();
    let describe = cli.describe();
    if let Some(bdf) = cli.target.strip_prefix("nvme:") {
        let addr: PciAddr = bdf.parse()?;
        let mode = if cli.no_iommu {
            IommuMode::NoIommu
        } else {
            IommuMode::Type1v2
        };
        let cfg = ControllerConfig {
            // At most 1024 lcores (CPUs 0..=1023).
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
        let job = cli.job(queues[0].info().block_size)?;
        let started = || announce(cli, &describe, &target);
        let _telemetry = serve(cli, endpoints, &live, &target)?;
        let (results, queues) = run_lcores(cli, queues, &job, mapper, &stop, &started, &live);
        // Interrupted or not, the lcores drained their queues: delete them and shut the
        // controller down (NVMe 1.4 §7.6.2) before reporting.
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
            interrupted: stop.load(Ordering::Acquire),
        });
    }
    let (queues, target): (Vec<AnyBlockQueue>, String) = if cli.is_ram() {
        let qs = (0..lcores)
            .map(|_| {
                AnyBlockQueue::Ram(RamDisk::new(
                    RAM_BLOCK,
                    cli.ram_blocks(),
                    cli.queue_depth as usize,
                ))
            })
            .collect();
        (qs, format!("ram ({} MiB per lcore)", cli.ram_mib))
    } else {
        let path = PathBuf::from(&cli.target);
        let cfg = UringConfig {
            queue_depth: cli.queue_depth,
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
    let job = cli.job(queues[0].info().block_size)?;
    let started = || announce(cli, &describe, &target);
    let _telemetry = serve(cli, endpoints, &live, &target)?;
    let mapper = Arc::new(IdentityMapper);
    let (results, _) = run_lcores(cli, queues, &job, mapper, &stop, &started, &live);
    Ok(Report {
        target,
        job: describe,
        lcores: results?,
        interrupted: stop.load(Ordering::Acquire),
    })
}

/// Serves the endpoints over the queues' live counters (`/sluice/nvme/queues`).
fn serve(
    cli: &BlkperfArgs,
    endpoints: Endpoints,
    live: &[Arc<BlockQueueCounters>],
    target: &str,
) -> Result<Running, BlkperfError> {
    let sources = Sources {
        block_queues: live
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("lcore {i} (cpu {})", cli.cores.0[i]), c.clone()))
            .collect(),
        block_target: target.to_string(),
        ..Sources::default()
    };
    Ok(endpoints.serve(sources).map_err(AppError::from)?)
}

/// Says that every lcore is ready: on stdout, or on stderr with `--json` (whose stdout is
/// one JSON object).
fn announce(cli: &BlkperfArgs, describe: &str, target: &str) {
    let line = format!(
        "sluice-blkperf: running {describe} on {target}; Ctrl-C stops it with the report so far"
    );
    if cli.json {
        eprintln!("{line}");
    } else {
        cli::say(&format!("{line}\n"));
    }
}

type LcoreOutcome = (Result<Vec<LcoreResult>, BlkperfError>, Vec<AnyBlockQueue>);

/// One pinned thread per core, each with its queue and its pool; all start together, and
/// `started` runs once they have. Each stops at the job's end or once `stop` is set.
fn run_lcores(
    cli: &BlkperfArgs,
    queues: Vec<AnyBlockQueue>,
    job: &JobConfig,
    mapper: Arc<dyn IovaMapper>,
    stop: &AtomicBool,
    started: &dyn Fn(),
    live: &[Arc<BlockQueueCounters>],
) -> LcoreOutcome {
    let lcores = queues.len();
    // The lcores and this thread, which says when they are all ready.
    let barrier = Barrier::new(lcores + 1);
    let format = if cli.json {
        Some(ProgressFormat::Json)
    } else if cli.progress_lines() {
        Some(ProgressFormat::Text)
    } else {
        None
    };
    let outcomes: Vec<(Result<LcoreResult, BlkperfError>, AnyBlockQueue)> = std::thread::scope(
        |s| {
            let handles: Vec<_> = queues
            .into_iter()
            .enumerate()
            .map(|(i, mut q)| {
                let cpu = cli.cores.0[i];
                let (barrier, mapper, live) = (&barrier, mapper.clone(), live[i].clone());
                s.spawn(move || {
                    // CPUs are at most 1023 (`CoreList`), inside an affinity mask.
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
                    let r = pool.and_then(|pool| run_queue_live(&mut q, (i, lcores, cpu), job, &pool, stop, &live));
                    (r, q)
                })
            })
            .collect();
            barrier.wait();
            started();
            let progress = format.and_then(|f| {
                Progress::spawn(live.to_vec(), Duration::from_secs(1), f)
                    .map_err(|e| eprintln!("sluice-blkperf: no progress lines: {e}"))
                    .ok()
            });
            let outcomes = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| panic!("an lcore thread panicked"))
                })
                .collect();
            if let Some(p) = progress {
                p.finish();
            }
            outcomes
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
    // At most `MAX_QUEUE_DEPTH` objects, and `BlkperfArgs::check` found the memory.
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
