//! What the binaries share on their command lines: the configuration they run, the
//! value parsers of their numeric flags (each with a range, checked arithmetic and a
//! message that clap prefixes with the flag), the stop signals they install, and how they
//! print.
//!
//! Each binary's arguments live here ([`fwd::FwdArgs`], [`pktgen::PktgenArgs`]) or beside
//! its app ([`crate::blkperf::BlkperfArgs`]) rather than in `src/bin`, so that tests parse
//! and validate arbitrary command lines in-process.

pub mod fwd;
pub mod pktgen;

/// The line every binary's `--help` opens with.
pub const SUITE: &str =
    "Sluice applications: forwarder, packet generator, block I/O tester, device binder";

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::AppError;
use crate::config::Config;

/// The configuration at `path`, or the built-in loopback one when there is none.
pub fn load_config(path: Option<&Path>) -> Result<Config, AppError> {
    Ok(match path {
        Some(path) => Config::from_file(path)?,
        None => Config::builtin_default(),
    })
}

/// The longest duration a flag accepts: 365 days. Longer runs go without a duration and end
/// on a signal; the cap keeps `Instant + Duration` and TSC deadlines far from overflow.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// A duration flag (`--duration`, `-t`): a positive, finite number of seconds, at least a
/// nanosecond and at most [`MAX_SECONDS`].
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s} is not a positive number of seconds"));
    }
    if secs > MAX_SECONDS as f64 {
        return Err(format!(
            "{s} s is over the maximum of {MAX_SECONDS} s (365 days; leave the duration out to run until a signal)"
        ));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{s} s is under a nanosecond")),
    }
}

/// The highest CPU number a core flag accepts: `CPU_SETSIZE - 1`, the last CPU an affinity
/// mask can name (sched_setaffinity(2)).
pub const MAX_CORE: usize = 1023;

/// A core flag (`--core`, `--rx-core`): a CPU number, `0..=`[`MAX_CORE`].
pub fn parse_core(s: &str) -> Result<usize, String> {
    let core: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a CPU number"))?;
    if core > MAX_CORE {
        return Err(format!("CPU {core} is over the maximum of {MAX_CORE}"));
    }
    Ok(core)
}

/// How long after a first SIGINT/SIGTERM more of them count as copies of it.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// What a stop signal does, by the rule of [`stop_on_signals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// The first one: an orderly stop, with the summary.
    Stop,
    /// Within [`SIGNAL_GRACE`] of the first: a copy of the same stop, ignored.
    Duplicate,
    /// Later: exit at once, with status 130 and no summary.
    Exit,
}

impl OnSignal {
    /// What a signal arriving at `now` does when the first one (if any) came at `first`.
    pub fn at(first: Option<Instant>, now: Instant) -> Self {
        match first {
            None => OnSignal::Stop,
            Some(t) if now.saturating_duration_since(t) < SIGNAL_GRACE => OnSignal::Duplicate,
            Some(_) => OnSignal::Exit,
        }
    }
}

/// Watches SIGINT and SIGTERM: the first sets the returned flag (an orderly stop, with the
/// summary).
///
/// More within [`SIGNAL_GRACE`] of the first are copies of the same stop and ignored: a
/// terminal's Ctrl-C and coreutils `timeout` signal the whole process group, so one stop can
/// reach the process twice (`timeout` signals the process, then its group). One after that
/// is a person insisting while the stop drains, and exits at once with status 130, without
/// the summary. The signals are read on a thread of their own (signal-hook's iterator), so
/// nothing runs in the handler but a write to a pipe.
pub fn stop_on_signals(prog: &'static str) -> Result<Arc<AtomicBool>, AppError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let os = |source| AppError::Os {
        what: "installing the SIGINT/SIGTERM handler",
        source,
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(os)?;
    let flag = interrupt.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first = None;
            for _ in signals.forever() {
                let now = Instant::now();
                match OnSignal::at(first, now) {
                    OnSignal::Stop => {
                        first = Some(now);
                        flag.store(true, Ordering::Release);
                    }
                    OnSignal::Duplicate => {}
                    OnSignal::Exit => {
                        eprintln!("{prog}: stopping again: exiting now, without the summary");
                        std::process::exit(130);
                    }
                }
            }
        })
        .map_err(os)?;
    Ok(interrupt)
}

/// Writes `text` to stdout and flushes it, ignoring a closed stdout (a pipe into `head`
/// must not turn a finished run into a panic).
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Bytes of memory this machine has (`MemTotal` in `/proc/meminfo`), if it can be read.
pub fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// `bytes` as a short human figure (`1.5 GiB`), for messages.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_positive_finite_and_bounded() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds(" 3 "), Ok(Duration::from_secs(3)));
        assert_eq!(
            parse_seconds(&MAX_SECONDS.to_string()),
            Ok(Duration::from_secs(MAX_SECONDS))
        );
        for bad in [
            "0", "-1", "NaN", "inf", "-inf", "1e300", "31536001", "1e-300", "", "x", "1s",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cores_stop_at_the_last_cpu_an_affinity_mask_names() {
        assert_eq!(parse_core("0"), Ok(0));
        assert_eq!(parse_core("1023"), Ok(1023));
        for bad in ["1024", "-1", "18446744073709551616", "x", ""] {
            assert!(parse_core(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_second_signal_is_a_copy_within_the_grace_and_an_exit_after() {
        let t0 = Instant::now();
        assert_eq!(OnSignal::at(None, t0), OnSignal::Stop);
        assert_eq!(OnSignal::at(Some(t0), t0), OnSignal::Duplicate);
        let just_before = t0 + SIGNAL_GRACE - Duration::from_nanos(1);
        assert_eq!(OnSignal::at(Some(t0), just_before), OnSignal::Duplicate);
        assert_eq!(OnSignal::at(Some(t0), t0 + SIGNAL_GRACE), OnSignal::Exit);
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert!(human_bytes(u128::MAX).ends_with(" EiB"));
    }
}
