//! The producer/consumer protocol of the four XDP rings (kernel
//! `Documentation/networking/af_xdp.rst`, "Rings" and "Usage").
//!
//! Indices are free-running `u32`s; an entry's slot is `index & (size - 1)`. User space
//! produces FILL and TX and consumes RX and COMPLETION. Each side caches the other side's
//! index and reloads it only when the cached value says there is no room (producer) or
//! nothing to read (consumer), as DPDK's and libxdp's rings do: one shared-cache-line read
//! per burst at most.
//!
//! Ordering, in labelled pairs:
//! - **P1/C1**: the producer writes entries, then Release-stores `producer` (P1); the
//!   consumer Acquire-loads `producer` (C1) before reading those entries.
//! - **C2/P2**: the consumer reads entries, then Release-stores `consumer` (C2); the producer
//!   Acquire-loads `consumer` (P2) before overwriting those slots.
//!
//! The kernel is untrusted: a consumer never believes more than `size` entries are ready,
//! whatever `producer` says (see [`ConsRing::peek`]).

use std::sync::atomic::Ordering;

use super::sys::{NEED_WAKEUP, RingEntry, RingMap};

/// The user-space producer side of a ring (FILL, TX).
pub(crate) struct ProdRing<E: RingEntry> {
    map: RingMap<E>,
    /// Our producer index (published at `submit`).
    prod: u32,
    /// The consumer index as last read.
    cons: u32,
}

impl<E: RingEntry> ProdRing<E> {
    /// Takes over a freshly mapped ring (both indices zero).
    pub(crate) fn new(map: RingMap<E>) -> Self {
        let prod = map.producer().load(Ordering::Relaxed);
        let cons = map.consumer().load(Ordering::Relaxed);
        Self { map, prod, cons }
    }

    /// Entries in the ring.
    #[inline]
    pub(crate) fn size(&self) -> u32 {
        self.map.size()
    }

    /// Free slots, at least `want` if that many are free (reloads the consumer index only
    /// when the cached one shows fewer).
    #[inline]
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let size = self.size();
        let mut free = size.wrapping_sub(self.prod.wrapping_sub(self.cons));
        if free < want {
            // P2: pairs with the consumer's C2 Release: slots it released are ours to
            // overwrite only after this Acquire.
            self.cons = self.map.consumer().load(Ordering::Acquire);
            free = size.wrapping_sub(self.prod.wrapping_sub(self.cons));
        }
        // A consumer index ahead of ours is a kernel bug; never report more than `size`.
        free.min(size)
    }

    /// Writes `e` at the `i`-th free slot (not yet visible to the consumer). The caller
    /// checked `i < free(..)`.
    #[inline]
    pub(crate) fn write(&mut self, i: u32, e: E) {
        self.map.write(self.prod.wrapping_add(i), e);
    }

    /// Publishes the first `n` written slots.
    #[inline]
    pub(crate) fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.prod = self.prod.wrapping_add(n);
        // P1: pairs with the consumer's C1 Acquire: the entries written above are visible
        // before the new producer index is.
        self.map.producer().store(self.prod, Ordering::Release);
    }

    /// Entries published and not yet consumed, as last seen.
    #[inline]
    pub(crate) fn outstanding(&mut self) -> u32 {
        self.size() - self.free(self.size())
    }

    /// Whether the kernel asks for a wakeup syscall (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // Relaxed: a hint; a stale value costs one extra or one late syscall, and the
        // kernel re-checks the ring when woken.
        self.map.flags().load(Ordering::Relaxed) & NEED_WAKEUP != 0
    }

    /// The mapping, for tests playing the consumer.
    #[cfg(test)]
    pub(crate) fn map(&self) -> &RingMap<E> {
        &self.map
    }
}

/// The user-space consumer side of a ring (RX, COMPLETION).
pub(crate) struct ConsRing<E: RingEntry> {
    map: RingMap<E>,
    /// Our consumer index (published at `release`).
    cons: u32,
    /// The producer index as last read.
    prod: u32,
}

impl<E: RingEntry> ConsRing<E> {
    /// Takes over a freshly mapped ring.
    pub(crate) fn new(map: RingMap<E>) -> Self {
        let prod = map.producer().load(Ordering::Relaxed);
        let cons = map.consumer().load(Ordering::Relaxed);
        Self { map, cons, prod }
    }

    /// Entries in the ring.
    #[inline]
    pub(crate) fn size(&self) -> u32 {
        self.map.size()
    }

    /// How many entries are ready to read, at most `max`. The second value is `true` when
    /// the producer index claimed more than the ring can hold (a misbehaving producer); the
    /// count is then clamped to `size`.
    #[inline]
    pub(crate) fn peek(&mut self, max: u32) -> (u32, bool) {
        let mut ready = self.prod.wrapping_sub(self.cons);
        if ready < max {
            // C1: pairs with the producer's P1 Release: the entries up to `prod` are
            // visible after this Acquire.
            self.prod = self.map.producer().load(Ordering::Acquire);
            ready = self.prod.wrapping_sub(self.cons);
        }
        let bogus = ready > self.size();
        if bogus {
            // Do not chase a wild index: treat the ring as holding `size` entries and
            // resynchronise our cached copy.
            self.prod = self.cons.wrapping_add(self.size());
            ready = self.size();
        }
        (ready.min(max), bogus)
    }

    /// Reads the `i`-th ready entry; the caller checked `i < peek(..)`.
    #[inline]
    pub(crate) fn read(&self, i: u32) -> E {
        self.map.read(self.cons.wrapping_add(i))
    }

    /// Gives the first `n` read slots back to the producer.
    #[inline]
    pub(crate) fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cons = self.cons.wrapping_add(n);
        // C2: pairs with the producer's P2 Acquire: our reads of these slots happen before
        // the producer may overwrite them.
        self.map.consumer().store(self.cons, Ordering::Release);
    }

    /// The mapping, for tests playing the producer.
    #[cfg(test)]
    pub(crate) fn map(&self) -> &RingMap<E> {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soft::af_xdp::sys::XdpDesc;

    /// Plays the kernel as consumer of a user ring: reads `n` entries from index `at`.
    fn kernel_consume(map: &RingMap<u64>, n: u32) -> Vec<u64> {
        let cons = map.consumer().load(Ordering::Relaxed);
        let prod = map.producer().load(Ordering::Acquire);
        let n = n.min(prod.wrapping_sub(cons));
        let v = (0..n).map(|i| map.read(cons.wrapping_add(i))).collect();
        map.consumer()
            .store(cons.wrapping_add(n), Ordering::Release);
        v
    }

    #[test]
    fn producer_fills_to_size_then_waits_for_consumer() {
        let mut p = ProdRing::new(RingMap::<u64>::anonymous(8).unwrap());
        assert_eq!(p.free(8), 8);
        for i in 0..8 {
            p.write(i, u64::from(i) * 2048);
        }
        p.submit(8);
        assert_eq!(p.free(1), 0);
        assert_eq!(p.outstanding(), 8);
        assert_eq!(kernel_consume(p.map(), 3), vec![0, 2048, 4096]);
        assert_eq!(p.free(1), 3);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let map = RingMap::<u64>::anonymous(4).unwrap();
        map.producer().store(u32::MAX - 1, Ordering::Relaxed);
        map.consumer().store(u32::MAX - 1, Ordering::Relaxed);
        let mut p = ProdRing::new(map);
        for round in 0..5u64 {
            let free = p.free(4);
            assert_eq!(free, 4);
            for i in 0..4 {
                p.write(i, round * 10 + u64::from(i));
            }
            p.submit(4);
            let got = kernel_consume(p.map(), 4);
            assert_eq!(got, (0..4).map(|i| round * 10 + i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn consumer_reads_what_producer_published_only() {
        let mut c = ConsRing::new(RingMap::<XdpDesc>::anonymous(4).unwrap());
        assert_eq!(c.peek(4), (0, false));
        // The kernel writes two entries but publishes one.
        let d = |a| XdpDesc {
            addr: a,
            len: 60,
            options: 0,
        };
        write_kernel(&mut c, 0, d(256));
        write_kernel(&mut c, 1, d(2304));
        c.map().producer().store(1, Ordering::Release);
        assert_eq!(c.peek(4), (1, false));
        assert_eq!(c.read(0), d(256));
        c.release(1);
        c.map().producer().store(2, Ordering::Release);
        assert_eq!(c.peek(4), (1, false));
        assert_eq!(c.read(0), d(2304));
        c.release(1);
        assert_eq!(c.map().consumer().load(Ordering::Acquire), 2);
    }

    /// Writes entry `idx` as the kernel would (tests only own the memory outright).
    fn write_kernel(c: &mut ConsRing<XdpDesc>, idx: u32, d: XdpDesc) {
        c.map.write(idx, d);
    }

    #[test]
    fn wild_producer_index_is_clamped_and_reported() {
        let mut c = ConsRing::new(RingMap::<u64>::anonymous(8).unwrap());
        c.map().producer().store(1_000_000, Ordering::Release);
        assert_eq!(c.peek(32), (8, true));
        c.release(8);
        // Still wild: still clamped, never more than the ring holds.
        assert_eq!(c.peek(32), (8, true));
        // A sane producer again: back to normal.
        c.map().producer().store(10, Ordering::Release);
        assert_eq!(c.peek(32), (2, false));
    }

    #[test]
    fn need_wakeup_flag_is_read() {
        let p = ProdRing::new(RingMap::<u64>::anonymous(4).unwrap());
        assert!(!p.needs_wakeup());
        p.map().flags().store(NEED_WAKEUP, Ordering::Relaxed);
        assert!(p.needs_wakeup());
    }
}
