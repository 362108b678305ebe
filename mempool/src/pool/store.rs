//! The pool's shared store: a lock-free LIFO stack of object indices.
//!
//! A Treiber stack whose links live in a side array (`next[i]` is the object below `i`),
//! never in the objects themselves: a free object's memory may still be written by a
//! device or a buggy user, and the store must not read it. The head word packs the top
//! index with a tag that every successful exchange bumps, so a head that was popped and
//! pushed back in between (ABA) fails the compare-exchange. A thread must stall across
//! 2^32 exchanges of the same pool for the tag to wrap onto the same value.
//!
//! Bulk push links the batch privately and splices it with one exchange. Bulk pop walks
//! `n` links from the head it read and swings the head past them; links read from a head
//! that has since changed may be stale, but then the exchange fails and the walk is redone.
//! No thread ever waits for another: a stalled thread holds no slot anybody needs (unlike
//! an MPMC ring, where a preempted producer blocks the consumers behind it — which matters
//! when, as here, two cores carry more threads than that).
//!
//! Orderings: every change of `head` is a read-modify-write, so an Acquire load of `head`
//! synchronises with every earlier Release exchange (they all head one release sequence):
//! the links a pusher wrote before its exchange (R3) are visible to a popper that read a
//! head at or after it (A3).

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The "no object" index.
pub(crate) const NIL: u32 = u32::MAX;

#[inline]
fn pack(tag: u32, top: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(top)
}

#[inline]
fn top_of(head: u64) -> u32 {
    head as u32
}

#[inline]
fn tag_of(head: u64) -> u32 {
    (head >> 32) as u32
}

struct Head {
    word: AtomicU64,
    /// Objects in the stack; updated right after each exchange, so exact when quiescent.
    count: AtomicU32,
}

/// How the store's object indices map to the handles its users hold: `base + (index <<
/// shift)`. A pool's handles are its object headers' addresses, so that lcore caches and
/// batches hold ready-to-use pointers and only refills and spills convert (as
/// `rte_mempool`'s caches hold object pointers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Codec {
    base: usize,
    shift: u32,
}

impl Codec {
    /// Handles are the indices themselves (tests and models).
    #[cfg(any(test, loom))]
    pub(crate) const IDENTITY: Codec = Codec { base: 0, shift: 0 };

    /// Handles `base + (index << shift)`.
    pub(crate) const fn new(base: usize, shift: u32) -> Self {
        Self { base, shift }
    }

    #[inline(always)]
    pub(crate) fn handle(self, index: u32) -> usize {
        self.base + ((index as usize) << self.shift)
    }

    #[inline(always)]
    pub(crate) fn index(self, handle: usize) -> u32 {
        (handle.wrapping_sub(self.base) >> self.shift) as u32
    }
}

pub(crate) struct Store {
    head: CachePadded<Head>,
    next: Box<[AtomicU32]>,
    codec: Codec,
}

impl Store {
    /// An empty store for objects `0..capacity`, whose users hold handles as `codec` says.
    pub(crate) fn new(capacity: u32, codec: Codec) -> Self {
        assert!(
            capacity < NIL,
            "object indices must stay below the NIL marker"
        );
        Self {
            head: CachePadded::new(Head {
                word: AtomicU64::new(pack(0, NIL)),
                count: AtomicU32::new(0),
            }),
            next: (0..capacity).map(|_| AtomicU32::new(NIL)).collect(),
            codec,
        }
    }

    /// Objects in the store (exact when no operation is in flight).
    #[inline]
    pub(crate) fn count(&self) -> u32 {
        // Acquire pairs with the Release updates below, so that a pool that sees every
        // object home also sees the returning threads done with it.
        self.head.count.load(Ordering::Acquire)
    }

    /// Pushes the objects of `items` (handles of objects below capacity, none already in
    /// the store).
    pub(crate) fn push(&self, items: &[usize]) {
        let Some((&last, _)) = items.split_last() else {
            return;
        };
        let c = self.codec;
        for pair in items.windows(2) {
            self.next[c.index(pair[0]) as usize].store(c.index(pair[1]), Ordering::Relaxed);
        }
        let (first, last) = (c.index(items[0]), c.index(last));
        let mut head = self.head.word.load(Ordering::Relaxed);
        loop {
            self.next[last as usize].store(top_of(head), Ordering::Relaxed);
            let new = pack(tag_of(head).wrapping_add(1), first);
            // R3: Release publishes the links above; Acquire on success continues the chain
            // of earlier exchanges (see the module docs).
            match self.head.word.compare_exchange_weak(
                head,
                new,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        self.head
            .count
            .fetch_add(items.len() as u32, Ordering::Release);
    }

    /// Pops up to `out.len()` objects' handles into `out` (exactly that many or none when
    /// `exact`), returning how many.
    pub(crate) fn pop(&self, out: &mut [usize], exact: bool) -> usize {
        let want = out.len();
        if want == 0 {
            return 0;
        }
        // A3: pairs with R3 in `push`.
        let mut head = self.head.word.load(Ordering::Acquire);
        loop {
            let mut top = top_of(head);
            let mut taken = 0;
            let mut consistent = true;
            while taken < want && top != NIL {
                if top as usize >= self.next.len() {
                    // Only a link read from a stale head can look like this; retry.
                    consistent = false;
                    break;
                }
                out[taken] = self.codec.handle(top);
                taken += 1;
                top = self.next[top as usize].load(Ordering::Relaxed);
            }
            if consistent && (taken == 0 || (exact && taken < want)) {
                // The stack looked too short; that is only true if the head did not move.
                let now = self.head.word.load(Ordering::Acquire);
                if now == head {
                    return 0;
                }
                head = now;
                continue;
            }
            if !consistent {
                head = self.head.word.load(Ordering::Acquire);
                continue;
            }
            let new = pack(tag_of(head).wrapping_add(1), top);
            match self.head.word.compare_exchange_weak(
                head,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.head.count.fetch_sub(taken as u32, Ordering::Release);
                    return taken;
                }
                Err(now) => head = now,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn codec_maps_indices_to_addresses_and_back() {
        let c = Codec::new(0x7000_0000, 6);
        assert_eq!(c.handle(3), 0x7000_00c0);
        assert_eq!(c.index(0x7000_00c0), 3);
        let s = Store::new(4, c);
        s.push(&[c.handle(2), c.handle(0)]);
        let mut out = [0usize; 2];
        assert_eq!(s.pop(&mut out, true), 2);
        assert_eq!(out, [c.handle(2), c.handle(0)]);
    }

    #[test]
    fn lifo_bulk_and_exact() {
        let s = Store::new(8, Codec::IDENTITY);
        s.push(&[0, 1, 2]);
        s.push(&[5]);
        assert_eq!(s.count(), 4);
        let mut out = [0usize; 3];
        assert_eq!(s.pop(&mut out, true), 3);
        assert_eq!(out, [5, 0, 1]);
        let mut out = [0usize; 2];
        assert_eq!(
            s.pop(&mut out, true),
            0,
            "exact pop of 2 with 1 inside takes nothing"
        );
        assert_eq!(s.pop(&mut out, false), 1);
        assert_eq!(out[0], 2);
        assert_eq!(s.count(), 0);
        assert_eq!(s.pop(&mut out, false), 0);
    }

    #[test]
    fn threads_never_lose_or_duplicate_objects() {
        use std::sync::Arc;
        const OBJS: u32 = 1024;
        let s = Arc::new(Store::new(OBJS, Codec::IDENTITY));
        s.push(&(0..OBJS as usize).collect::<Vec<_>>());
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut held = vec![0usize; 64];
                    for i in 0..20_000usize {
                        let want = 1 + (i * 7 + t) % 64;
                        let n = s.pop(&mut held[..want], i % 2 == 0);
                        s.push(&held[..n]);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut all = vec![0usize; OBJS as usize + 1];
        assert_eq!(s.pop(&mut all, false), OBJS as usize);
        all.truncate(OBJS as usize);
        all.sort_unstable();
        assert!(all.iter().copied().eq(0..OBJS as usize));
    }
}
