//! The lcore side of a capture: queue wrappers that copy bursts into a side ring.
//!
//! A side ring carries records, each a 16-byte header (TSC at the burst, original length,
//! captured length; little endian) followed by the captured bytes. The lcore assembles a
//! burst's records in a stage buffer (allocated when the capture started) and pushes them in
//! one piece: the writer only ever sees whole records, and the ring's shared indices are
//! written once per burst, not per frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_dataplane::tsc;
use sluice_pmd::PktBuf;
use sluice_pmd::mempool::Batch;
use sluice_pmd::net::{QueueCounters, RxQueue, TxQueue};

/// Bytes of a record header in a side ring.
pub(super) const HEADER: usize = 16;
/// The most frames one burst stages (more in one burst are counted as not captured).
const MAX_BURST: usize = 512;

/// A command for the lcore that owns a tap point.
pub(super) enum TapCmd {
    /// Capture into this ring from now on.
    Start(Box<Active>),
    /// Stop capturing (the ring's writer ends once it has drained what is there).
    Stop,
}

/// A capture in progress at one tap point, owned by the lcore.
pub(super) struct Active {
    ring: rtrb::Producer<u8>,
    stage: Vec<u8>,
    ends: Vec<usize>,
    snaplen: usize,
    left: u64,
    lost: Arc<AtomicU64>,
}

impl Active {
    /// A capture into `ring` of at most `count` frames, each cut to `snaplen`; what does not
    /// fit is added to `lost`. The stage holds `stage_bytes` of records per burst.
    pub(super) fn new(
        ring: rtrb::Producer<u8>,
        stage_bytes: usize,
        snaplen: usize,
        count: u64,
        lost: Arc<AtomicU64>,
    ) -> Box<Self> {
        Box::new(Self {
            ring,
            stage: Vec::with_capacity(stage_bytes),
            ends: Vec::with_capacity(MAX_BURST),
            snaplen,
            left: count,
            lost,
        })
    }

    /// Stages records for as many of `pkts` as the count and the stage allow; returns how
    /// many.
    #[inline]
    fn stage(&mut self, pkts: &[PktBuf], ts: u64) -> usize {
        self.stage.clear();
        self.ends.clear();
        let ts = ts.to_le_bytes();
        for p in pkts.iter().take(self.ends.capacity()) {
            let data = p.data();
            let cap = data.len().min(self.snaplen);
            if self.stage.len() + HEADER + cap > self.stage.capacity() {
                break;
            }
            let mut head = [0u8; HEADER];
            head[..8].copy_from_slice(&ts);
            head[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
            head[12..].copy_from_slice(&(cap as u32).to_le_bytes());
            self.stage.extend_from_slice(&head);
            self.stage.extend_from_slice(&data[..cap]);
            self.ends.push(self.stage.len());
        }
        self.ends.len()
    }

    /// Frames the count still allows out of `n`.
    #[inline]
    fn allowed(&self, n: usize) -> usize {
        n.min(usize::try_from(self.left).unwrap_or(usize::MAX))
    }

    /// Pushes the first `k` staged records, out of `wanted` frames to capture; counts the
    /// rest as not captured. True when the count is reached.
    #[inline]
    fn commit(&mut self, k: usize, wanted: usize) -> bool {
        let mut lost = wanted - k;
        if k > 0 {
            let bytes = self.ends[k - 1];
            match self.ring.push_entire_slice(&self.stage[..bytes]) {
                Ok(()) => self.left -= k as u64,
                Err(_) => lost += k,
            }
        }
        if lost > 0 {
            self.lost.fetch_add(lost as u64, Ordering::Relaxed);
        }
        self.left == 0
    }
}

/// The commands and the capture (if any) of one tap point.
pub struct Tap {
    cmds: rtrb::Consumer<TapCmd>,
    active: Option<Box<Active>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("capturing", &self.active.is_some())
            .finish()
    }
}

impl Tap {
    pub(super) fn new(cmds: rtrb::Consumer<TapCmd>, active: Option<Box<Active>>) -> Self {
        Self { cmds, active }
    }

    /// Applies any command waiting: one load of the command ring's index when there is none.
    #[inline]
    fn poll(&mut self) {
        if !self.cmds.is_empty() {
            self.take_cmds();
        }
    }

    #[cold]
    fn take_cmds(&mut self) {
        while let Ok(cmd) = self.cmds.pop() {
            self.active = match cmd {
                TapCmd::Start(a) => Some(a),
                TapCmd::Stop => None,
            };
        }
    }
}

/// An rx queue whose received frames can be captured.
#[derive(Debug)]
pub struct TapRx<R> {
    inner: R,
    tap: Tap,
}

impl<R> TapRx<R> {
    /// `inner`, captured as `tap` says.
    pub fn new(inner: R, tap: Tap) -> Self {
        Self { inner, tap }
    }
}

impl<R: RxQueue> RxQueue for TapRx<R> {
    #[inline]
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        let before = out.len();
        let n = self.inner.rx_burst(out);
        self.tap.poll();
        if n > 0
            && let Some(a) = self.tap.active.as_deref_mut()
        {
            let pkts = out.as_slice().get(before..).unwrap_or_default();
            let wanted = a.allowed(pkts.len());
            let k = a.stage(&pkts[..wanted], tsc::now());
            if a.commit(k, wanted) {
                self.tap.active = None;
            }
        }
        n
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        self.inner.counters()
    }
}

/// A tx queue whose sent frames (those the queue accepted) can be captured.
#[derive(Debug)]
pub struct TapTx<T> {
    inner: T,
    tap: Tap,
}

impl<T> TapTx<T> {
    /// `inner`, captured as `tap` says.
    pub fn new(inner: T, tap: Tap) -> Self {
        Self { inner, tap }
    }

    /// The queue itself (to seed it before the lcores start).
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: TxQueue> TxQueue for TapTx<T> {
    #[inline]
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        self.tap.poll();
        let Some(a) = self.tap.active.as_deref_mut() else {
            return self.inner.tx_burst(pkts);
        };
        // Staged before sending: what the queue accepts is gone afterwards. Only the
        // accepted prefix is pushed.
        let offered = a.allowed(pkts.len());
        let staged = a.stage(&pkts.as_slice()[..offered], tsc::now());
        let n = self.inner.tx_burst(pkts);
        let wanted = a.allowed(n);
        if a.commit(staged.min(wanted), wanted) {
            self.tap.active = None;
        }
        n
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        self.inner.counters()
    }
}

#[cfg(test)]
mod tests {
    use sluice_pmd::{IdentityMapper, PktPool, PktPoolConfig};

    use super::*;

    fn pool() -> PktPool {
        let mut cfg = PktPoolConfig::new("tap-test", 64);
        cfg.cache_size = 0;
        cfg.huge_pages = sluice_pmd::mempool::HugePagePolicy::Never;
        PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
    }

    #[test]
    fn what_does_not_fit_is_counted_and_the_count_stops_the_capture() {
        let pool = pool();
        let pkts: Vec<PktBuf> = (0..8u8)
            .map(|i| {
                let mut p = pool.alloc().unwrap();
                p.extend_from_slice(&[i; 100]).unwrap();
                p
            })
            .collect();
        let lost = Arc::new(AtomicU64::new(0));
        // Room for 3 records of 16 + 60 bytes (snaplen 60), a count of 5.
        let (tx, mut rx) = rtrb::RingBuffer::new(3 * 76 + 10);
        let mut a = Active::new(tx, 4096, 60, 5, lost.clone());
        let k = a.stage(&pkts[..2], 7);
        assert!(!a.commit(k, 2));
        assert_eq!(rx.slots(), 2 * 76);
        // Two more do not fit in the ring now: not captured, counted.
        let wanted = a.allowed(2);
        let k = a.stage(&pkts[2..4], 8);
        assert!(!a.commit(k, wanted));
        assert_eq!(lost.load(Ordering::Relaxed), 2);
        let mut rec = [0u8; 76];
        rx.pop_entire_slice(&mut rec).unwrap();
        assert_eq!(
            &rec[..16],
            &[7, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 60, 0, 0, 0]
        );
        assert_eq!(&rec[16..], &[0u8; 60]);
        rx.pop_entire_slice(&mut rec).unwrap();
        assert_eq!(rec[16], 1);
        // The count (5) allows 3 more; a tx queue that accepts 2 of them: 2 pushed.
        assert_eq!(a.allowed(6), 3);
        let k = a.stage(&pkts[4..7], 9);
        assert!(!a.commit(k.min(2), 2));
        assert_eq!(lost.load(Ordering::Relaxed), 2);
        assert_eq!(rx.slots(), 2 * 76);
        // The last one reaches the count.
        let k = a.stage(&pkts[7..], 10);
        assert!(a.commit(k, a.allowed(1)));
    }
}
