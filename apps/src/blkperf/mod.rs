//! `sluice-blkperf`: a block I/O load generator in the manner of SPDK's `spdk_nvme_perf`,
//! over any [`BlockQueue`](sluice_pmd::block::BlockQueue) (the NVMe driver, io_uring, the RAM disk).
//!
//! Each lcore owns one queue and one buffer pool, keeps `queue_depth` requests in flight,
//! and records every request's latency in an HdrHistogram. With `verify`, each lcore first
//! writes a pattern derived from the LBA and a seed over its span, then writes only that
//! pattern and checks every block it reads. A stop flag (the binary's SIGINT/SIGTERM) ends
//! the run early: each lcore drains what it has in flight and reports what it did.

mod args;
mod cli;
mod progress;
mod report;
mod worker;

pub use args::{CoreList, MAX_IO_SIZE, Workload, parse_size};
pub use cli::{BlkperfArgs, MAX_QUEUE_DEPTH, MAX_RAM_MIB, MAX_SPAN_MIB, RAM_BLOCK};
pub use progress::{Progress, ProgressFormat, histogram_buckets, histogram_json, render_histogram};
pub use report::{Report, render_json, render_text};
pub use worker::{
    JobConfig, LcoreResult, pattern_word, run_queue, run_queue_live, run_queue_until,
};

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum BlkperfError {
    /// A driver or device error.
    #[error(transparent)]
    Pmd(#[from] sluice_pmd::Error),
    /// Buffer memory could not be had.
    #[error("buffer pool: {0}")]
    Pool(#[from] sluice_mempool::Error),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// What the apps share failed (installing the signal handlers).
    #[error(transparent)]
    App(#[from] crate::AppError),
    /// The device misbehaved or stopped answering during the run.
    #[error("lcore {lcore}: {why}")]
    Device {
        /// The lcore that saw it.
        lcore: usize,
        /// What happened.
        why: String,
    },
}
