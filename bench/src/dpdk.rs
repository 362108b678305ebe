//! DPDK as a peer in the same run: `bench/dpdk/peer.c` (rte_ring SP/SC and rte_mempool,
//! measured like the Rust side) compiled at run time against the installed `libdpdk`, and
//! `dpdk-test`'s `ring_perf_autotest` as an outside reference.
//!
//! Both run without hugepages or PCI (`--no-huge -m 512 --no-pci`) on the same two cores
//! as the Rust threads, with a file prefix of their own so that runs never share EAL state.
//! Only lines the parsers recognise are used; when DPDK is missing the caller prints `n/a`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pages::Pages;
use crate::pin::CorePair;
use crate::stats::median;

/// The C peer, built into the binary so that the bench runs from any directory.
const PEER_SOURCE: &str = include_str!("../dpdk/peer.c");

/// How to install what is missing.
pub const INSTALL_HINT: &str = "apt-get install libdpdk-dev dpdk";

/// What the peer program is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct PeerArgs {
    /// Items per ring run at burst 1.
    pub items_burst1: u64,
    /// Items per ring run at bursts 8 and 32.
    pub items: u64,
    /// Runs per figure.
    pub reps: usize,
    /// Ring capacity.
    pub capacity: usize,
    /// Objects per mempool run.
    pub pool_objects: u64,
}

/// One `SLUICE_PEER ring ...` line.
#[derive(Debug, Clone, PartialEq)]
pub struct RingSample {
    /// `burst` (best effort) or `bulk` (all or nothing).
    pub mode: String,
    /// Burst size.
    pub burst: usize,
    /// Consumer ns per item.
    pub ns_per_obj: f64,
    /// Every item arrived in order.
    pub ok: bool,
}

/// One `SLUICE_PEER mempool ...` (rte_mempool get+put) or `SLUICE_PEER pktmbuf ...`
/// (rte_pktmbuf alloc+free) line.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSample {
    /// Which API: `mempool` or `pktmbuf`.
    pub api: String,
    /// Per-lcore cache size (0: none).
    pub cache: u32,
    /// Objects per get and per put.
    pub bulk: usize,
    /// ns per object, get + put.
    pub ns_per_obj: f64,
    /// Every get succeeded.
    pub ok: bool,
}

/// Everything the peer printed, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerReport {
    /// `rte_get_tsc_hz()`.
    pub tsc_hz: Option<u64>,
    /// `rte_version()`, e.g. `DPDK 22.11.11`.
    pub version: Option<String>,
    /// Ring runs.
    pub ring: Vec<RingSample>,
    /// Mempool runs.
    pub pool: Vec<PoolSample>,
}

impl PeerReport {
    /// Median ns/obj of the ring runs in `mode` at `burst`; `None` if there were none or any
    /// of them lost data (a figure from a run that loses data is void).
    pub fn ring_ns(&self, mode: &str, burst: usize) -> Option<f64> {
        let runs: Vec<&RingSample> = self
            .ring
            .iter()
            .filter(|s| s.mode == mode && s.burst == burst)
            .collect();
        if runs.iter().any(|s| !s.ok) {
            return None;
        }
        median(&runs.iter().map(|s| s.ns_per_obj).collect::<Vec<_>>())
    }

    /// Median ns/obj of the rte_mempool runs with `cache` at `bulk`, as for
    /// [`Self::ring_ns`].
    pub fn pool_ns(&self, cache: u32, bulk: usize) -> Option<f64> {
        self.api_ns("mempool", cache, bulk)
    }

    /// Median ns/obj of the rte_pktmbuf runs with `cache` at `bulk`, as for
    /// [`Self::ring_ns`].
    pub fn pktmbuf_ns(&self, cache: u32, bulk: usize) -> Option<f64> {
        self.api_ns("pktmbuf", cache, bulk)
    }

    fn api_ns(&self, api: &str, cache: u32, bulk: usize) -> Option<f64> {
        let runs: Vec<&PoolSample> = self
            .pool
            .iter()
            .filter(|s| s.api == api && s.cache == cache && s.bulk == bulk)
            .collect();
        if runs.iter().any(|s| !s.ok) {
            return None;
        }
        median(&runs.iter().map(|s| s.ns_per_obj).collect::<Vec<_>>())
    }
}

/// `key=value` fields of a line, in order.
fn fields(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split_whitespace().filter_map(|f| f.split_once('='))
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    fields(line).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Parses the peer's stdout; unknown or malformed lines are skipped.
pub fn parse_peer_output(text: &str) -> PeerReport {
    let mut report = PeerReport::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("SLUICE_PEER ") else {
            continue;
        };
        let num = |key| field(rest, key).and_then(|v| v.parse::<f64>().ok());
        let int = |key| field(rest, key).and_then(|v| v.parse::<usize>().ok());
        let ok = field(rest, "ok") == Some("1");
        if let Some(hz) = field(rest, "tsc_hz") {
            report.tsc_hz = hz.parse().ok();
            // The version is the rest of the line ("DPDK 22.11.11" has a space).
            report.version = rest.split_once("dpdk=").map(|(_, v)| v.trim().to_string());
        } else if rest.starts_with("ring ")
            && let (Some(mode), Some(burst), Some(ns)) =
                (field(rest, "mode"), int("burst"), num("ns_per_obj"))
        {
            report.ring.push(RingSample {
                mode: mode.to_string(),
                burst,
                ns_per_obj: ns,
                ok,
            });
        } else if let Some(api) = ["mempool", "pktmbuf"]
            .into_iter()
            .find(|api| rest.starts_with(&format!("{api} ")))
            && let (Some(cache), Some(bulk), Some(ns)) =
                (int("cache"), int("bulk"), num("ns_per_obj"))
        {
            report.pool.push(PoolSample {
                api: api.to_string(),
                cache: cache as u32,
                bulk,
                ns_per_obj: ns,
                ok,
            });
        }
    }
    report
}

/// `dpdk-test ring_perf_autotest`, "Testing using two physical cores", legacy (8-byte
/// pointer) API, SP/SC bulk: cycles per element as printed, which DPDK computes as the
/// producer's plus the consumer's cycles per element.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RingPerfReference {
    /// Bulk 8.
    pub bulk8_cycles: Option<f64>,
    /// Bulk 32.
    pub bulk32_cycles: Option<f64>,
}

/// Parses `dpdk-test` output: the first "two physical cores" section, legacy API lines.
pub fn parse_ring_perf(text: &str) -> RingPerfReference {
    let mut out = RingPerfReference::default();
    let Some((_, section)) = text.split_once("### Testing using two physical cores ###") else {
        return out;
    };
    // The section ends at the next heading.
    let section = section.split("###").next().unwrap_or_default();
    for line in section.lines() {
        let Some(rest) = line.trim().strip_prefix("legacy APIs: SP/SC: bulk (size: ") else {
            continue;
        };
        let Some((size, value)) = rest.split_once("):") else {
            continue;
        };
        let value = value.trim().parse::<f64>().ok();
        match size.trim() {
            "8" => out.bulk8_cycles = value,
            "32" => out.bulk32_cycles = value,
            _ => {}
        }
    }
    out
}

/// EAL arguments: the run's page size, no PCI, our two cores, a file prefix of our own.
fn eal_args(cores: CorePair, pages: &Pages) -> Vec<String> {
    let lcores = if cores.distinct() {
        format!("{},{}", cores.producer, cores.consumer)
    } else {
        cores.producer.to_string()
    };
    let mut args = pages.eal_memory();
    args.extend([
        "--no-pci".into(),
        "-l".into(),
        lcores,
        "--file-prefix".into(),
        format!("sluice-bench-{}", std::process::id()),
        "--log-level=lib.*:error".into(),
    ]);
    args
}

/// Why a DPDK figure is missing, for the one line the report prints instead.
pub fn missing_reason() -> Option<String> {
    let pkg = Command::new("pkg-config")
        .args(["--exists", "libdpdk"])
        .status();
    if !matches!(pkg, Ok(s) if s.success()) {
        return Some(format!(
            "DPDK peer missing: `pkg-config --exists libdpdk` fails; install it with `{INSTALL_HINT}`"
        ));
    }
    None
}

/// Compiles `peer.c` into `dir` and returns the executable's path.
fn build_peer(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let src = dir.join("peer.c");
    let exe = dir.join("peer");
    std::fs::write(&src, PEER_SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libdpdk"])
        .output()
        .map_err(|e| format!("pkg-config: {e}"))?;
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    let out = Command::new("cc")
        .args(["-O3", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(flags.split_whitespace())
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc failed building the DPDK peer:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(exe)
}

/// Runs `cmd` with `stdin` fed in, killing it after `limit`; returns its stdout.
fn run_with_limit(mut cmd: Command, stdin: &str, limit: Duration) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut input) = child.stdin.take() {
        // A child that exits without reading its input is not an error here.
        let _ = input.write_all(stdin.as_bytes());
    }
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                return Err(format!("killed after {} s", limit.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(stdout)
}

/// Builds and runs the C peer; `Err` explains why there are no DPDK figures.
pub fn run_peer(args: &PeerArgs, cores: CorePair, pages: &Pages) -> Result<PeerReport, String> {
    if let Some(why) = missing_reason() {
        return Err(why);
    }
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    let exe = build_peer(&dir)?;
    let mut cmd = Command::new(&exe);
    cmd.args(eal_args(cores, pages)).arg("--").args([
        args.items_burst1.to_string(),
        args.items.to_string(),
        args.reps.to_string(),
        args.capacity.to_string(),
        args.pool_objects.to_string(),
    ]);
    let result = run_with_limit(cmd, "", Duration::from_secs(300));
    let _ = std::fs::remove_dir_all(&dir);
    let report = parse_peer_output(&result.map_err(|e| format!("DPDK peer: {e}"))?);
    if report.tsc_hz.is_none() {
        return Err("DPDK peer printed no SLUICE_PEER header line".into());
    }
    Ok(report)
}

/// Runs `dpdk-test` with `ring_perf_autotest` if it is installed.
pub fn run_ring_perf(cores: CorePair, pages: &Pages) -> Result<RingPerfReference, String> {
    let mut cmd = Command::new("dpdk-test");
    cmd.args(eal_args(cores, pages));
    let out =
        run_with_limit(cmd, "ring_perf_autotest\n", Duration::from_secs(120)).map_err(|e| {
            format!(
                "dpdk-test ring_perf_autotest unavailable ({e}); install it with `{INSTALL_HINT}`"
            )
        })?;
    let parsed = parse_ring_perf(&out);
    if parsed.bulk32_cycles.is_none() {
        return Err("dpdk-test printed no two-core SP/SC figures".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests;
