//! How long a burst of 32 spends in the sluice ring, as an HdrHistogram.
//!
//! The producer stamps the first item of each burst with the nanoseconds since an `Instant`
//! both threads share; the consumer records `now - stamp` when it pops the burst. Bursts go
//! in and out whole (`push_slice_bulk` / `pop_slice_bulk`), so every pop is one burst.
//! Two loads: saturated (the producer pushes as fast as it can, so a burst waits behind a
//! nearly full ring: queueing delay) and paced (one burst per interval, an idle ring: the
//! hand-over cost between the two cores).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sluice_mempool::ring;

use crate::pin::{CorePair, pin_current};

/// Items per burst.
pub const BURST: usize = 32;

/// How the producer offers bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// As fast as the ring accepts them.
    Saturated,
    /// One burst per this interval, spinning in between.
    Paced(Duration),
}

/// The percentiles a report prints, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Bursts recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Sends `bursts` bursts through a sluice ring of `capacity` between the two cores and
/// returns the distribution of their time in the ring.
pub fn measure(capacity: usize, bursts: u64, load: Load, cores: CorePair) -> Percentiles {
    let (mut tx, mut rx) = ring::ring::<u64>(capacity).expect("capacity is a power of two");
    let epoch = Instant::now();
    let start = Barrier::new(2);
    let since_epoch = || epoch.elapsed().as_nanos() as u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_current(cores.producer);
            let mut burst = [0u64; BURST];
            start.wait();
            let mut due = Instant::now();
            for _ in 0..bursts {
                if let Load::Paced(every) = load {
                    due += every;
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                }
                // The stamp is taken when the burst is ready, so a full ring counts as time
                // spent in the ring (the burst is waiting to get in).
                burst[0] = since_epoch();
                while !tx.push_slice_bulk(&burst) {}
            }
        });
        let consumer = s.spawn(|| {
            pin_current(cores.consumer);
            // 1 ns to 10 s at 3 significant digits.
            let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)
                .expect("static histogram bounds are valid");
            let mut burst = [0u64; BURST];
            start.wait();
            for _ in 0..bursts {
                while !rx.pop_slice_bulk(&mut burst) {}
                hist.saturating_record(since_epoch().saturating_sub(burst[0]).max(1));
            }
            hist
        });
        Percentiles::of(&consumer.join().expect("consumer thread panicked"))
    })
}
