//! One lcore's run: keep `queue_depth` requests in flight on one queue, record latencies.

use crate::telemetry::BlockQueueCounters;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sluice_mempool::{DmaObj, Mempool};
use sluice_pmd::block::{BlockCompletion, BlockOp, BlockQueue, BlockRequest, Rejected};

use super::{BlkperfError, Workload};

/// What every lcore runs.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// Requests in flight per lcore (`-q`).
    pub queue_depth: usize,
    /// Bytes per request (`-o`).
    pub io_size: usize,
    /// Pattern (`-w`).
    pub workload: Workload,
    /// Read percentage for mixed workloads (`-M`).
    pub read_percent: u8,
    /// How long to run (`-t`).
    pub duration: Duration,
    /// Write a pattern first, then write only the pattern and check every read.
    pub verify: bool,
    /// Seed of the pattern and of the random offsets.
    pub seed: u64,
    /// Blocks per lcore to use (default: the device split evenly between lcores).
    pub span_blocks: Option<u64>,
}

/// One lcore's figures.
#[derive(Clone, Debug)]
pub struct LcoreResult {
    /// The lcore's index in the run (0-based).
    pub lcore: usize,
    /// The CPU it ran on.
    pub cpu: usize,
    /// Requests completed in the timed phase.
    pub ios: u64,
    /// Bytes moved in the timed phase.
    pub bytes: u64,
    /// Length of the timed phase.
    pub elapsed: Duration,
    /// Latency in nanoseconds.
    pub latency: Histogram<u64>,
    /// Device notifications (doorbells, `io_uring_enter`) in the timed phase.
    pub doorbells: u64,
    /// Requests that completed with an error or timed out.
    pub errors: u64,
    /// Requests reported as timed out (counted in `errors` too).
    pub timeouts: u64,
    /// Blocks read whose contents did not match the pattern.
    pub mismatches: u64,
    /// Blocks read and checked.
    pub verified_blocks: u64,
}

/// The pattern's 64-bit word `word` of block `lba` for `seed` (splitmix64 of the three).
#[inline]
pub fn pattern_word(seed: u64, lba: u64, word: u64) -> u64 {
    let mut z =
        seed ^ lba.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ word.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill_pattern(buf: &mut [u8], seed: u64, lba: u64, bs: usize) {
    for (b, block) in buf.chunks_exact_mut(bs).enumerate() {
        for (w, word) in block.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&pattern_word(seed, lba + b as u64, w as u64).to_le_bytes());
        }
    }
}

/// Blocks of `buf` that differ from the pattern.
fn check_pattern(buf: &[u8], seed: u64, lba: u64, bs: usize) -> u64 {
    let mut bad = 0;
    for (b, block) in buf.chunks_exact(bs).enumerate() {
        let ok = block
            .chunks_exact(8)
            .enumerate()
            .all(|(w, word)| word == pattern_word(seed, lba + b as u64, w as u64).to_le_bytes());
        bad += u64::from(!ok);
    }
    bad
}

/// xorshift64*: offsets and the read/write mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct InFlight {
    since: Instant,
    lba: u64,
    op: BlockOp,
}

struct Lcore<'a, Q: BlockQueue> {
    q: &'a mut Q,
    job: &'a JobConfig,
    lcore: usize,
    io_blocks: u32,
    bs: usize,
    base: u64,
    slots_per_span: u64,
    seq: u64,
    rng: Rng,
    inflight: Vec<Option<InFlight>>,
    free_tags: Vec<usize>,
    bufs: Vec<DmaObj>,
    done: Vec<BlockCompletion>,
    live: &'a BlockQueueCounters,
}

impl<Q: BlockQueue> Lcore<'_, Q> {
    fn next_lba(&mut self, sequential: bool) -> u64 {
        let slot = if sequential {
            let s = self.seq % self.slots_per_span;
            self.seq += 1;
            s
        } else {
            self.rng.next() % self.slots_per_span
        };
        self.base + slot * u64::from(self.io_blocks)
    }

    /// Submits requests while tags and buffers last; `op` fixed or from the mix.
    fn fill(&mut self, prefill: bool) -> Result<(), BlkperfError> {
        while let (Some(&tag), Some(_)) = (self.free_tags.last(), self.bufs.last()) {
            if prefill && self.seq >= self.slots_per_span {
                break;
            }
            let random = !prefill && self.job.workload.random();
            let lba = self.next_lba(!random);
            let read = !prefill
                && (self.job.read_percent == 100
                    || (self.job.read_percent > 0
                        && (self.rng.next() % 100) < u64::from(self.job.read_percent)));
            let Some(mut buf) = self.bufs.pop() else {
                break;
            };
            if !read && self.job.verify {
                fill_pattern(buf.as_mut_slice(), self.job.seed, lba, self.bs);
            }
            let req = if read {
                BlockRequest::read(lba, self.io_blocks, buf, tag as u64)
            } else {
                BlockRequest::write(lba, self.io_blocks, buf, tag as u64)
            };
            let op = req.op;
            match self.q.submit(req) {
                Ok(()) => {
                    self.free_tags.pop();
                    self.inflight[tag] = Some(InFlight {
                        since: Instant::now(),
                        lba,
                        op,
                    });
                }
                Err(Rejected::Full(r)) => {
                    self.bufs.extend(r.buf);
                    if !prefill {
                        self.seq = self.seq.saturating_sub(1);
                    }
                    break;
                }
                Err(Rejected::Invalid(r, e)) => {
                    return Err(BlkperfError::Usage(format!(
                        "the target refused a {:?} of {} blocks at LBA {}: {e}",
                        r.op, r.blocks, r.lba
                    )));
                }
            }
        }
        self.q.flush_submissions()?;
        Ok(())
    }

    /// Polls once; records each completion in `res` (when given).
    fn reap(&mut self, mut res: Option<&mut LcoreResult>) -> Result<usize, BlkperfError> {
        let done = &mut self.done;
        let n = self
            .q
            .poll_completions(self.job.queue_depth, |c| done.push(c))?;
        let now = Instant::now();
        for c in self.done.drain(..) {
            let tag = c.tag as usize;
            let Some(f) = self.inflight.get_mut(tag).and_then(Option::take) else {
                return Err(BlkperfError::Device {
                    lcore: self.lcore,
                    why: format!("completion with unknown tag {tag}"),
                });
            };
            self.free_tags.push(tag);
            let ok = c.status.is_ok();
            if let Some(buf) = c.buf {
                if let Some(r) = res.as_deref_mut()
                    && ok
                    && f.op == BlockOp::Read
                    && self.job.verify
                {
                    r.mismatches += check_pattern(buf.as_slice(), self.job.seed, f.lba, self.bs);
                    r.verified_blocks += u64::from(self.io_blocks);
                }
                self.bufs.push(buf);
            }
            if let Some(r) = res.as_deref_mut() {
                if !ok {
                    r.errors += 1;
                }
                let ns = now.saturating_duration_since(f.since).as_nanos() as u64;
                let _ = r.latency.record(ns.max(1));
                self.live.complete(self.job.io_size as u64, ns, ok);
                r.ios += 1;
                r.bytes += self.job.io_size as u64;
            } else if !ok {
                return Err(BlkperfError::Device {
                    lcore: self.lcore,
                    why: format!("prefill write at LBA {} failed: {:?}", f.lba, c.status),
                });
            }
        }
        Ok(n)
    }

    /// Waits (bounded) until nothing is in flight.
    fn drain(&mut self, mut res: Option<&mut LcoreResult>) -> Result<(), BlkperfError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.q.outstanding() > 0 {
            self.reap(res.as_deref_mut())?;
            if Instant::now() > deadline {
                return Err(BlkperfError::Device {
                    lcore: self.lcore,
                    why: format!(
                        "{} requests still outstanding after 30 s",
                        self.q.outstanding()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Runs `job` on `q` as lcore `lcore` of `lcores`, with buffers from `pool` (at least
/// `queue_depth` objects of `io_size` bytes, page-aligned).
///
/// # Errors
/// A request refused as invalid (the size or range does not fit the target), a driver
/// error, or a device that stops answering.
pub fn run_queue<Q: BlockQueue>(
    q: &mut Q,
    lcore: usize,
    lcores: usize,
    cpu: usize,
    job: &JobConfig,
    pool: &Mempool,
) -> Result<LcoreResult, BlkperfError> {
    run_queue_until(q, lcore, lcores, cpu, job, pool, &AtomicBool::new(false))
}

/// [`run_queue`], ending early once `stop` is set (looked at every poll and between the
/// verify pre-fill's bursts; set during the pre-fill, the timed phase does not start): what
/// is in flight is drained, and the result holds what was done, over the time it took. The
/// queue is left with nothing outstanding, ready to be deleted or shut down.
///
/// # Errors
/// As [`run_queue`].
pub fn run_queue_until<Q: BlockQueue>(
    q: &mut Q,
    lcore: usize,
    lcores: usize,
    cpu: usize,
    job: &JobConfig,
    pool: &Mempool,
    stop: &AtomicBool,
) -> Result<LcoreResult, BlkperfError> {
    let live = BlockQueueCounters::default();
    run_queue_live(q, (lcore, lcores, cpu), job, pool, stop, &live)
}

/// [`run_queue_until`], counting each completion in `live` too, for telemetry while it runs.
/// `at` is (lcore, lcores, cpu).
///
/// # Errors
/// As [`run_queue`].
pub fn run_queue_live<Q: BlockQueue>(
    q: &mut Q,
    at: (usize, usize, usize),
    job: &JobConfig,
    pool: &Mempool,
    stop: &AtomicBool,
    live: &BlockQueueCounters,
) -> Result<LcoreResult, BlkperfError> {
    let (lcore, lcores, cpu) = at;
    let info = q.info().clone();
    let bs = info.block_size as usize;
    if job.io_size == 0 || !job.io_size.is_multiple_of(bs) || job.io_size > info.max_transfer {
        return Err(BlkperfError::Usage(format!(
            "I/O size {} must be a multiple of the block size {bs} and at most {} bytes",
            job.io_size, info.max_transfer
        )));
    }
    let io_blocks = (job.io_size / bs) as u32;
    let mut span = info.blocks / lcores as u64;
    if let Some(s) = job.span_blocks {
        span = span.min(s);
    }
    let slots_per_span = span / u64::from(io_blocks);
    if slots_per_span == 0 {
        return Err(BlkperfError::Usage(format!(
            "{} has {} blocks: too small for {lcores} lcores of {}-byte I/O",
            info.name, info.blocks, job.io_size
        )));
    }
    let depth = job.queue_depth.clamp(1, info.queue_depth);
    let mut bufs = Vec::with_capacity(depth);
    for _ in 0..depth {
        bufs.push(
            pool.get()
                .ok_or_else(|| BlkperfError::Usage("buffer pool too small".into()))?,
        );
    }
    if bufs.iter().any(|b| b.len() < job.io_size) {
        return Err(BlkperfError::Usage(
            "pool objects smaller than the I/O size".into(),
        ));
    }
    let mut w = Lcore {
        q,
        job,
        lcore,
        io_blocks,
        bs,
        base: lcore as u64 * span,
        slots_per_span,
        seq: 0,
        rng: Rng(job
            .seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(lcore as u64 + 1)
            | 1),
        inflight: (0..depth).map(|_| None).collect(),
        free_tags: (0..depth).rev().collect(),
        bufs,
        done: Vec::with_capacity(depth),
        live,
    };
    if job.verify {
        while w.seq < w.slots_per_span && !stop.load(Ordering::Relaxed) {
            w.fill(true)?;
            w.reap(None)?;
        }
        w.drain(None)?;
        w.seq = 0;
    }
    let mut res = LcoreResult {
        lcore,
        cpu,
        ios: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| BlkperfError::Usage(format!("histogram: {e}")))?,
        doorbells: 0,
        errors: 0,
        timeouts: 0,
        mismatches: 0,
        verified_blocks: 0,
    };
    let doorbells_before = w.q.stats().doorbells;
    let start = Instant::now();
    let end = start + job.duration;
    let mut polls = 0u32;
    // Looked at before the first fill too: a verify run stopped during its pre-fill must not
    // read (and count as mismatches) blocks it never wrote.
    while !stop.load(Ordering::Relaxed) {
        w.fill(false)?;
        w.reap(Some(&mut res))?;
        w.live.set_in_flight(w.q.outstanding() as u64);
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(64) {
            let now = Instant::now();
            if polls.is_multiple_of(4096) {
                let t = w.q.expire_timeouts(now, &mut |_, _| ());
                res.errors += t as u64;
                res.timeouts += t as u64;
            }
            if now >= end {
                break;
            }
        }
    }
    w.drain(Some(&mut res))?;
    res.elapsed = start.elapsed();
    res.doorbells = w.q.stats().doorbells - doorbells_before;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_per_block_and_seeded() {
        let mut a = vec![0u8; 1024];
        fill_pattern(&mut a, 7, 10, 512);
        assert_eq!(check_pattern(&a, 7, 10, 512), 0);
        assert_eq!(check_pattern(&a[512..], 7, 11, 512), 0, "block 11 alone");
        assert_eq!(check_pattern(&a, 8, 10, 512), 2, "other seed");
        a[700] ^= 1;
        assert_eq!(check_pattern(&a, 7, 10, 512), 1);
    }
}
