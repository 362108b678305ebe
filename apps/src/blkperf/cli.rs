//! `sluice-blkperf`'s command line, with `spdk_nvme_perf`'s flags, and the checks that run
//! before any device is opened.

use std::time::Duration;

use clap::Parser;

use super::args::{CoreList, Workload, parse_size};
use super::{BlkperfError, JobConfig};
use crate::cli::{human_bytes, parse_seconds};

/// The deepest queue (`-q`): 65536, an NVMe queue's most entries (NVMe 1.4 §3.1.1,
/// CAP.MQES is 16 bits, zero-based).
pub const MAX_QUEUE_DEPTH: u32 = 65536;
/// The largest `--span-mib`: 2^40 MiB (an exbibyte), so that the byte count fits 64 bits.
pub const MAX_SPAN_MIB: u64 = 1 << 40;
/// The largest `--ram-mib`: 2^20 MiB (1 TiB); what the machine has is checked too.
pub const MAX_RAM_MIB: u64 = 1 << 20;
/// Buffers are page-aligned objects (the pool's alignment, what NVMe PRPs need).
const BUF_ALIGN: u128 = 4096;
/// The RAM disk's block size.
pub const RAM_BLOCK: u32 = 512;

/// Examples at the end of `sluice-blkperf --help`.
const BLKPERF_EXAMPLES: &str = "\
Examples:
  sluice-blkperf -q 32 -o 4096 -w randread -t 5 -L
      4 KiB random reads at queue depth 32 on a RAM disk for 5 s, with latency percentiles
  sluice-blkperf --target /tmp/disk.img -w randrw -M 70 -t 10 -LL --json
      a file (io_uring, O_DIRECT), 70 % reads, a latency histogram, a JSON record each second
  sluice-blkperf --target nvme:0000:00:04.0 -c 0,1 -t 30
      an NVMe controller bound to vfio-pci (sluice-devbind bind 0000:00:04.0), two lcores";

/// Sluice block I/O tester: measures block I/O (IOPS, bandwidth, latency) on an NVMe
/// controller through Sluice's driver, on a file or block device through io_uring, or on a
/// RAM disk.
#[derive(Parser, Debug)]
#[command(name = "sluice-blkperf", version, before_help = crate::cli::SUITE, after_help = BLKPERF_EXAMPLES)]
pub struct BlkperfArgs {
    /// Queue depth per lcore, 1..=65536.
    #[arg(short = 'q', long = "queue-depth", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_QUEUE_DEPTH)))]
    pub queue_depth: u32,
    /// I/O size in bytes (k and m suffixes allowed), up to 1 GiB.
    #[arg(short = 'o', long = "io-size", default_value = "4096", value_parser = parse_size)]
    pub io_size: usize,
    /// Pattern: read, write, randread, randwrite, rw, randrw.
    #[arg(short = 'w', long = "workload", default_value = "randread")]
    pub workload: Workload,
    /// Read percentage for rw and randrw.
    #[arg(short = 'M', long = "rwmixread", default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub rwmixread: u8,
    /// Seconds to run, up to 365 days.
    #[arg(short = 't', long = "time", value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub time: Duration,
    /// Cores, one lcore each: a hex mask (0x3) or a list (0,2-3), CPUs 0..=1023.
    #[arg(short = 'c', long = "core-mask", default_value = "0")]
    pub cores: CoreList,
    /// nvme:BDF (bound to vfio-pci), a file or block device path, or ram.
    #[arg(long, default_value = "ram")]
    pub target: String,
    /// Write a pattern from the LBA and a seed over each lcore's span first, then check every
    /// block read; mismatches make the run fail.
    #[arg(long)]
    pub verify: bool,
    /// Seed of the verify pattern and the random offsets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use at most this many MiB per lcore, 1..=2^40 (default: the target split between
    /// lcores; 64 MiB per lcore with --verify, which writes it all first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_SPAN_MIB))]
    pub span_mib: Option<u64>,
    /// RAM disk size in MiB (per lcore), 1..=2^20 and what the machine has.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=MAX_RAM_MIB))]
    pub ram_mib: u64,
    /// NVMe: do not configure shadow doorbells.
    #[arg(long)]
    pub no_shadow_doorbells: bool,
    /// NVMe: VFIO no-IOMMU mode (devices see physical addresses; hugepages required).
    #[arg(long)]
    pub no_iommu: bool,
    /// Files: buffered I/O instead of O_DIRECT.
    #[arg(long)]
    pub buffered: bool,
    /// Print JSON instead of the table: one object per line, a record each second
    /// (`"type":"interval"`), then the report (`"type":"summary"`).
    #[arg(long)]
    pub json: bool,
    /// Latency: -L the percentile summary (printed in any case), -LL also a bucketed
    /// histogram, as spdk_nvme_perf's -LL.
    #[arg(short = 'L', action = clap::ArgAction::Count)]
    pub latency: u8,
    /// A progress line each second (default: on when stdout is a terminal).
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// No progress lines.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
    /// Telemetry socket (`/sluice/nvme/queues`) and Prometheus endpoint.
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,
}

impl BlkperfArgs {
    /// How many lcores (one per core).
    pub fn lcores(&self) -> usize {
        self.cores.0.len()
    }

    /// Whether progress lines are printed: as asked, else when stdout is a terminal. (With
    /// `--json` the records each second replace them.)
    pub fn progress_lines(&self) -> bool {
        use std::io::IsTerminal;
        !self.json && !self.no_progress && (self.progress || std::io::stdout().is_terminal())
    }

    /// Whether the target is the RAM disk.
    pub fn is_ram(&self) -> bool {
        self.target == "ram"
    }

    /// Blocks of each lcore's RAM disk. Each lcore has a disk of the whole size and uses its
    /// own share of it, `--ram-mib`.
    pub fn ram_blocks(&self) -> u64 {
        // In range: at most 2^40 bytes times 1024 lcores over 512, far inside 64 bits.
        (self.ram_mib << 20) / u64::from(RAM_BLOCK) * self.lcores() as u64
    }

    /// Bytes of buffers (and RAM disks) the run allocates: page-aligned `-q` × `-o` per
    /// lcore, plus the RAM disks' share each lcore touches.
    pub fn memory_needed(&self) -> u128 {
        let lcores = self.lcores() as u128;
        let stride = (self.io_size as u128).div_ceil(BUF_ALIGN) * BUF_ALIGN;
        let bufs = lcores * u128::from(self.queue_depth) * stride;
        let ram = if self.is_ram() {
            lcores * (u128::from(self.ram_mib) << 20)
        } else {
            0
        };
        bufs + ram
    }

    /// Checks what the flags ask for against each other and against `memory` bytes (the
    /// machine's, when known), before anything is allocated or opened.
    ///
    /// # Errors
    /// [`BlkperfError::Usage`], naming the flags.
    pub fn check(&self, memory: Option<u64>) -> Result<(), BlkperfError> {
        let need = self.memory_needed();
        if let Some(have) = memory
            && need > u128::from(have)
        {
            let ram = if self.is_ram() {
                format!(" plus --ram-mib {} per lcore", self.ram_mib)
            } else {
                String::new()
            };
            return Err(BlkperfError::Usage(format!(
                "-q {} × -o {} B buffers on {} lcore(s){ram} need {}, more than this machine's {} of memory",
                self.queue_depth,
                self.io_size,
                self.lcores(),
                human_bytes(need),
                human_bytes(u128::from(have)),
            )));
        }
        Ok(())
    }

    /// The job every lcore runs on a target of `block_size`-byte blocks.
    ///
    /// # Errors
    /// A block size of 0 (from the device).
    pub fn job(&self, block_size: u32) -> Result<JobConfig, BlkperfError> {
        if block_size == 0 {
            return Err(BlkperfError::Usage(format!(
                "{} reports a block size of 0",
                self.target
            )));
        }
        // `--span-mib` is at most 2^40, so the shift cannot wrap.
        let span_bytes = self.span_mib.or(self.verify.then_some(64)).map(|m| m << 20);
        Ok(JobConfig {
            queue_depth: self.queue_depth as usize,
            io_size: self.io_size,
            workload: self.workload,
            read_percent: self.workload.read_percent(self.rwmixread),
            duration: self.time,
            verify: self.verify,
            seed: self.seed,
            span_blocks: span_bytes.map(|b| b / u64::from(block_size)),
        })
    }

    /// The job for the report's header.
    pub fn describe(&self) -> String {
        format!(
            "{} {} B, QD {}, {} s, {} lcore(s){}",
            self.workload,
            self.io_size,
            self.queue_depth,
            self.time.as_secs_f64(),
            self.lcores(),
            if self.verify { ", verify" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<BlkperfArgs, clap::Error> {
        BlkperfArgs::try_parse_from(std::iter::once("sluice-blkperf").chain(extra.iter().copied()))
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_flag() {
        // clap names a flag by its long form, whichever was typed.
        for (flag, long, value) in [
            ("-q", "--queue-depth", "4000000000"),
            ("-q", "--queue-depth", "0"),
            ("-q", "--queue-depth", "65537"),
            ("-t", "--time", "inf"),
            ("-t", "--time", "1e300"),
            ("-t", "--time", "0"),
            ("-o", "--io-size", "1e30k"),
            ("-o", "--io-size", "2048m"),
            ("-o", "--io-size", "18446744073709551615k"),
            ("--span-mib", "--span-mib", "18446744073709551615"),
            ("--ram-mib", "--ram-mib", "2000000"),
            ("-c", "--core-mask", "0-99999999999"),
            ("-M", "--rwmixread", "101"),
        ] {
            let e = args(&[flag, value]).unwrap_err().to_string();
            assert!(e.contains(&format!("'{long} ")), "{flag} {value}: {e}");
        }
    }

    #[test]
    fn memory_is_checked_before_anything_is_allocated() {
        let a = args(&[
            "-q", "65536", "-o", "1024m", "-c", "0-3", "--target", "/dev/x",
        ])
        .unwrap();
        assert_eq!(a.memory_needed(), 4 * 65536 * (1u128 << 30));
        let e = a.check(Some(8 << 30)).unwrap_err().to_string();
        assert!(e.contains("-q 65536 × -o 1073741824 B"), "{e}");
        assert!(e.contains("256.0 TiB") && e.contains("8.0 GiB"), "{e}");
        assert!(a.check(None).is_ok(), "unknown memory: not checked");
        let ram = args(&["--ram-mib", "1048576", "-q", "1", "-o", "4k"]).unwrap();
        let e = ram.check(Some(8 << 30)).unwrap_err().to_string();
        assert!(e.contains("--ram-mib 1048576"), "{e}");
        assert!(args(&[]).unwrap().check(Some(8 << 30)).is_ok());
    }

    #[test]
    fn the_job_follows_the_flags() {
        let a = args(&[
            "-q", "8", "-o", "8k", "-t", "2.5", "--verify", "-w", "randrw",
        ])
        .unwrap();
        let job = a.job(4096).unwrap();
        assert_eq!((job.queue_depth, job.io_size), (8, 8192));
        assert_eq!(job.duration, Duration::from_millis(2500));
        assert_eq!(job.span_blocks, Some((64 << 20) / 4096));
        assert!(a.job(0).is_err());
        assert_eq!(
            a.describe(),
            "randrw 8192 B, QD 8, 2.5 s, 1 lcore(s), verify"
        );
    }
}
