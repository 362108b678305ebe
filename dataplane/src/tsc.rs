//! A cheap timestamp for the data path: the CPU's time-stamp counter on x86-64, a monotonic
//! clock elsewhere.
//!
//! [`now`] is one `rdtsc` (about 7 ns here, no syscall and no vDSO call); [`Clock`] converts
//! tick differences to nanoseconds with a ratio measured once at start against
//! [`Instant`]. The TSC is invariant (constant rate, synchronised across cores) on every x86-64
//! CPU of the last decade, which is what lets a generator on one core stamp a frame and a sink
//! on another subtract the stamp.
//!
//! ```
//! use sluice_dataplane::tsc;
//!
//! let clock = tsc::Clock::calibrate();
//! let t0 = tsc::now();
//! let t1 = tsc::now();
//! assert!(clock.ticks_to_ns(t1.wrapping_sub(t0)) < 1_000_000_000);
//! ```
#![allow(unsafe_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The counter now, in ticks.
#[inline(always)]
#[cfg(target_arch = "x86_64")]
pub fn now() -> u64 {
    // SAFETY: `rdtsc` reads a register; it has no preconditions and touches no memory. (It is
    // an `unsafe fn` on older toolchains, safe on newer ones; hence the allow.)
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// The counter now, in ticks (here: nanoseconds since the first call in this process).
#[inline]
#[cfg(not(target_arch = "x86_64"))]
pub fn now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Converts between ticks and time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    ticks_per_ns: f64,
}

impl Clock {
    /// Measures the tick rate against [`Instant`] over 20 ms, once per process (later calls
    /// return the same value).
    pub fn calibrate() -> Clock {
        static CLOCK: OnceLock<Clock> = OnceLock::new();
        *CLOCK.get_or_init(|| {
            if cfg!(not(target_arch = "x86_64")) {
                return Clock { ticks_per_ns: 1.0 };
            }
            let (i0, t0) = (Instant::now(), now());
            // A sleep, not a spin: the ratio only needs both clocks read at both ends.
            std::thread::sleep(Duration::from_millis(20));
            let (i1, t1) = (Instant::now(), now());
            let ns = (i1 - i0).as_nanos().max(1) as f64;
            Clock {
                ticks_per_ns: (t1.wrapping_sub(t0)) as f64 / ns,
            }
        })
    }

    /// Ticks per second.
    pub fn hz(&self) -> f64 {
        self.ticks_per_ns * 1e9
    }

    /// `ticks` in nanoseconds.
    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 / self.ticks_per_ns) as u64
    }

    /// `d` in ticks (at least 1 for a non-zero duration).
    pub fn ticks(&self, d: Duration) -> u64 {
        let t = (d.as_nanos() as f64 * self.ticks_per_ns) as u64;
        if t == 0 && !d.is_zero() { 1 } else { t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_is_plausible_and_round_trips() {
        let c = Clock::calibrate();
        // Any machine this runs on ticks between 100 MHz and 10 GHz.
        assert!((1e8..1e10).contains(&c.hz()), "{} Hz", c.hz());
        let ms = c.ticks(Duration::from_millis(1));
        let back = c.ticks_to_ns(ms);
        assert!((999_000..=1_001_000).contains(&back), "{back}");
    }
}
