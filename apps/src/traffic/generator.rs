//! The generator: builds frames (see [`super::frame`]) and transmits them on one tx queue,
//! as fast as it can or paced to a rate.
//!
//! Pacing reads the TSC and computes how many frames are due since the start (exact integer
//! arithmetic, no drift), so the loop never sleeps; at most four bursts of backlog are
//! kept, so that a stall (preemption) is not followed by a line-rate catch-up. Frames the
//! queue refuses are retried on the next poll, in order: a generator applies back-pressure to
//! itself rather than dropping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sluice_dataplane::{Task, tsc};
use sluice_pmd::net::TxQueue;
use sluice_pmd::{Batch, PktBuf, PktPool};

use super::frame;
use super::sink::SinkControl;
use crate::error::AppError;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    /// Frame size with FCS, 64..=the port's and pool's limit.
    pub frame_size: usize,
    /// Frames per second; `None`: as fast as the queue takes them.
    pub rate_pps: Option<u64>,
    /// Flows (UDP source ports) to cycle through, 1..=65536.
    pub flows: u32,
    /// Stop after this many frames; `None`: until stopped.
    pub count: Option<u64>,
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
}

/// The generator's counters and its own stop switch, shared with the app.
#[derive(Debug, Default)]
pub struct GenControl {
    burst: usize,
    stop: AtomicBool,
    sent: AtomicU64,
    bytes: AtomicU64,
    no_buffers: AtomicU64,
    done: AtomicBool,
}

impl GenControl {
    /// Frames built and sent per poll, at most (the task's batch capacity).
    pub fn burst(&self) -> usize {
        self.burst
    }
    /// Stops generating (the lcore keeps running until the runtime stops).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
    /// Frames the queue accepted.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }
    /// Their bytes (without FCS).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Bursts cut short because the pool was empty.
    pub fn no_buffers(&self) -> u64 {
        self.no_buffers.load(Ordering::Relaxed)
    }
    /// Whether it sent its `count`, or was stopped.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

/// The generator task.
#[derive(Debug)]
pub struct GenTask<T: TxQueue, const N: usize> {
    tx: T,
    pool: PktPool,
    template: Vec<u8>,
    cfg: GenConfig,
    ctl: Arc<GenControl>,
    held: Batch<PktBuf, N>,
    next_seq: u64,
    sent: u64,
    bytes: u64,
    pace: Option<Pace>,
    window: Option<Window>,
}

/// Back-pressure from the sink: at most `max` frames sent and not yet seen by it.
#[derive(Debug)]
struct Window {
    sink: Arc<SinkControl>,
    max: u64,
}

#[derive(Debug)]
struct Pace {
    start: u64,
    hz: u128,
    rate: u128,
    /// Frames accounted for (built, or skipped as too-late backlog).
    base: u64,
    /// Most frames owed after a stall: 10 ms worth, at least four bursts.
    max_backlog: u64,
}

impl<T: TxQueue, const N: usize> GenTask<T, N> {
    /// A generator on `tx`, with buffers from `pool`; checks that the frame fits.
    pub fn new(
        tx: T,
        pool: PktPool,
        cfg: GenConfig,
        max_frame: usize,
    ) -> Result<(Self, Arc<GenControl>), AppError> {
        let limit = max_frame.min(pool.buf_len() - pool.headroom()) + frame::FCS;
        if cfg.frame_size < frame::MIN_FRAME || cfg.frame_size > limit {
            return Err(AppError::FrameSize {
                size: cfg.frame_size,
                max: limit,
            });
        }
        let ctl = Arc::new(GenControl {
            burst: N,
            ..GenControl::default()
        });
        let pace = cfg.rate_pps.map(|rate| Pace {
            start: 0,
            hz: tsc::Clock::calibrate().hz() as u128,
            rate: u128::from(rate),
            base: 0,
            max_backlog: (rate / 100).max(4 * N as u64),
        });
        Ok((
            Self {
                tx,
                pool,
                template: frame::template(cfg.frame_size, cfg.dst_mac, cfg.src_mac),
                cfg,
                ctl: ctl.clone(),
                held: Batch::new(),
                next_seq: 0,
                sent: 0,
                bytes: 0,
                pace,
                window: None,
            },
            ctl,
        ))
    }

    /// Keeps at most `max` frames in flight: sent and not yet received (intact or not) by
    /// `sink`. On a path that drops nothing when its receiver keeps up (a peer that waits
    /// for free rx descriptors, or `max` below the sink's rx ring), every frame then
    /// arrives however slowly either side runs; a frame lost on the way stalls the
    /// generator, which the run's duration ends.
    pub fn with_window(mut self, sink: Arc<SinkControl>, max: u64) -> Self {
        self.window = Some(Window { sink, max });
        self
    }

    /// How many frames may be built now.
    #[inline]
    fn due(&mut self) -> usize {
        let Some(p) = &mut self.pace else {
            return N;
        };
        let now = tsc::now();
        if p.start == 0 {
            p.start = now;
        }
        let elapsed = u128::from(now.wrapping_sub(p.start));
        let total = (elapsed * p.rate / p.hz) as u64;
        let mut backlog = total.saturating_sub(p.base);
        let cap = p.max_backlog;
        if backlog > cap {
            p.base += backlog - cap;
            backlog = cap;
        }
        backlog.min(N as u64) as usize
    }

    /// Sends what is held; returns how many the queue took.
    #[inline]
    fn send(&mut self) -> usize {
        let n = self.tx.tx_burst(&mut self.held);
        if n > 0 {
            // Every frame has the template's length.
            self.sent += n as u64;
            self.bytes += (n * self.template.len()) as u64;
            self.ctl.bytes.store(self.bytes, Ordering::Relaxed);
            // Release: a reader that sees `sent` sees the frames' effects before it.
            self.ctl.sent.store(self.sent, Ordering::Release);
        }
        n
    }
}

impl<T: TxQueue + 'static, const N: usize> Task for GenTask<T, N> {
    #[inline]
    fn poll(&mut self) -> usize {
        if !self.held.is_empty() {
            // Retry refused frames first, in order.
            return self.send();
        }
        let left = self.cfg.count.map_or(u64::MAX, |c| c - self.next_seq);
        if left == 0 || self.ctl.stop.load(Ordering::Relaxed) {
            if !self.ctl.done.load(Ordering::Relaxed) {
                self.ctl.done.store(true, Ordering::Release);
            }
            return 0;
        }
        let mut want = (self.due() as u64).min(left) as usize;
        if let Some(w) = &self.window {
            // Received before corrupted: the sink stores corrupted first, so this does not
            // count a frame twice.
            let seen = w.sink.received() + w.sink.corrupted();
            let room = w.max.saturating_sub(self.sent.saturating_sub(seen));
            want = want.min(room.min(N as u64) as usize);
        }
        if want == 0 {
            return 0;
        }
        let got = self.pool.alloc_burst(&mut self.held, want);
        if got < want {
            self.ctl
                .no_buffers
                .store(self.ctl.no_buffers() + 1, Ordering::Relaxed);
        }
        if let Some(p) = &mut self.pace {
            p.base += got as u64;
        }
        let stamp = tsc::now();
        let flows = self.cfg.flows.max(1);
        for p in self.held.iter_mut() {
            // Fits: checked against the pool's data room in `new`.
            if let Some(buf) = p.append(self.template.len()) {
                buf.copy_from_slice(&self.template);
                let flow = (self.next_seq % u64::from(flows)) as u16;
                frame::stamp(buf, self.next_seq, stamp, flow);
            }
            self.next_seq += 1;
        }
        self.send()
    }

    fn drain(&mut self) -> bool {
        // Frames not yet accepted are not "sent"; dropping them returns the buffers.
        self.ctl.done.store(true, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use sluice_mempool::{HugePagePolicy, IdentityMapper, PageSize, PktPoolConfig};
    use sluice_pmd::net::NetPort;
    use sluice_pmd::soft::ring_port::{RingPairConfig, RingTxQueue, ring_pair};

    use super::*;
    use crate::traffic::SinkTask;

    #[test]
    fn a_window_keeps_frames_in_flight_below_its_size_until_the_sink_takes_them() {
        let mut cfg = PktPoolConfig::new("gen", 1023);
        (cfg.page_size, cfg.huge_pages) = (PageSize::Size4K, HugePagePolicy::Never);
        let pool = PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap();
        let (mut a, mut b) = ring_pair("a", "b", &RingPairConfig::default()).unwrap();
        let tx = a.take_queues().unwrap().tx.remove(0);
        let rx = b.take_queues().unwrap().rx.remove(0);
        let (mut sink, sink_ctl) = SinkTask::<_, 32>::new(rx);
        let gen_cfg = GenConfig {
            frame_size: 64,
            rate_pps: None,
            flows: 1,
            count: Some(100),
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
        };
        let (generator, ctl) =
            GenTask::<RingTxQueue, 32>::new(tx, pool.clone(), gen_cfg, 1514).unwrap();
        let mut generator = generator.with_window(sink_ctl.clone(), 40);

        // Without the sink: 32, then 8 more, then nothing however often it polls.
        let sent: Vec<usize> = (0..5).map(|_| generator.poll()).collect();
        assert_eq!(sent, [32, 8, 0, 0, 0]);
        assert_eq!(ctl.sent(), 40);
        // The sink takes 32: as many may go again.
        assert_eq!(sink.poll(), 32);
        assert_eq!(generator.poll(), 32);
        assert_eq!(generator.poll(), 0);
        // To the end: every frame arrives.
        while sink_ctl.received() < 100 {
            sink.poll();
            generator.poll();
        }
        assert_eq!((ctl.sent(), sink_ctl.received()), (100, 100));
        assert_eq!(generator.poll(), 0);
        assert!(ctl.is_done());
    }
}
