//! Object indices behind per-lcore caches: the allocator under every pool.
//!
//! As in `rte_mempool`: each lcore has a private array of free indices, used with no
//! atomics but one Release store of its length. A get that finds the cache short refills
//! it from the shared [`Store`] in one bulk pop (enough for the request plus a cache's
//! worth); a put that takes the cache past its flush threshold (1.5× its size) pushes the
//! excess back in one bulk push. Requests larger than the cache, and threads that are not
//! lcores, go to the store directly.
//!
//! Objects parked in one lcore's cache are invisible to the others, so a pool must hold
//! more than `lcores × 1.5 × cache_size` objects plus those in flight; see
//! [`CachedStore::new`].
//!
//! # Counting objects home at teardown
//! A pool is freed when its last handle goes and [`CachedStore::outstanding`] finds every
//! object back. That check sums counters that other threads change meanwhile, so it is
//! only sound because of two rules:
//! - Only the holder of a pool handle takes objects, so once the last handle is gone (and
//!   the `Arc` it lived in has synchronised with every earlier holder) objects only come
//!   home: from a user into a cache or the store, or from a cache into the store (a spill).
//!   No object leaves the store or a cache any more.
//! - A spill or flush lowers the cache's length *before* the store counts the objects, so
//!   in between they are counted nowhere, never in both places; and every return's last
//!   write to the pool is the one that makes its objects count (the cache length, or the
//!   store's count after the exchange).
//!
//! `outstanding` reads the store's count first, then each cache's length (all Acquire).
//! An object counted in the store stays there, so it is in no cache when the caches are
//! read. An object counted in a cache was not in the store when the store was read: had a
//! spill moved it there before, the store read would have synchronised with that spill's
//! push (the count changes by Release read-modify-writes only), and the cache read after
//! it would see the length the spill lowered first. No object is counted twice, so the sum
//! reaches the capacity only once every object is home, and then every returning thread
//! has made its last write to the pool and that write happened before the check. A return
//! still in flight makes the sum come out short, which costs a leak with a warning, never
//! a use after free. Nothing is added to the per-object path: a spill stores the cache's
//! length once, as before, only earlier.

use crossbeam_utils::CachePadded;

use super::store::{Codec, Store};
use crate::sync::{AtomicU32, Ordering, UnsafeCell};

/// The largest per-lcore cache, in objects.
pub const MAX_CACHE_SIZE: u32 = 512;

/// One lcore's cache; only the thread registered as that lcore touches `objs`.
struct Cache {
    /// Entries `objs[0..len]` are free objects. Written by the owner only (Release, so a
    /// pool checking that all objects are home sees the owner done with them); read by
    /// anyone for statistics.
    len: AtomicU32,
    objs: UnsafeCell<Box<[usize]>>,
}

pub(crate) struct CachedStore {
    store: Store,
    caches: Box<[CachePadded<Cache>]>,
    cache_size: usize,
    flush_threshold: usize,
}

// SAFETY: `Store` is atomics only. A `Cache`'s `objs` is only accessed through the
// `unsafe fn`s that take an lcore, whose callers guarantee that one thread at a time uses a given
// lcore's cache (the lcore registry does that for the safe entry points).
unsafe impl Sync for CachedStore {}
// SAFETY: it owns plain integers; see `Sync`.
unsafe impl Send for CachedStore {}

impl CachedStore {
    /// A store holding objects `0..count`, with a cache of `cache_size` (0 for none) for
    /// each of `lcores` lcores; objects go in and out as handles per `codec`.
    pub(crate) fn new(count: u32, cache_size: u32, lcores: usize, codec: Codec) -> Self {
        let cache_size = cache_size.min(MAX_CACHE_SIZE) as usize;
        let caches = if cache_size == 0 { 0 } else { lcores };
        let store = Store::new(count, codec);
        let all: Vec<usize> = (0..count).map(|i| codec.handle(i)).collect();
        store.push(&all);
        Self {
            store,
            caches: (0..caches)
                .map(|_| {
                    CachePadded::new(Cache {
                        len: AtomicU32::new(0),
                        // Room for a full cache plus a request of up to a cache's size.
                        objs: UnsafeCell::new(vec![0usize; 2 * cache_size].into_boxed_slice()),
                    })
                })
                .collect(),
            cache_size,
            // 1.5 × the size as in DPDK, and above the size even for tiny caches.
            flush_threshold: (cache_size + cache_size / 2).max(cache_size + 1),
        }
    }

    /// The per-lcore cache size (0: no caches).
    pub(crate) fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// Free objects: in the store plus in every cache (exact when nothing is in flight).
    pub(crate) fn available(&self) -> usize {
        // The store first, then the caches: see the module docs (teardown).
        let in_store = self.store.count() as usize;
        let cached: usize = self
            .caches
            .iter()
            .map(|c| c.len.load(Ordering::Acquire) as usize)
            .sum();
        in_store + cached
    }

    /// How many of `capacity` objects are not home: the check that frees a pool once no
    /// handle to it is left (so that no object can be taken any more). 0 only once every
    /// object is home and every returning thread is done with the store: concurrent
    /// returns never make an object count twice, only not yet. See the module docs.
    pub(crate) fn outstanding(&self, capacity: usize) -> usize {
        capacity.saturating_sub(self.available())
    }

    /// Free objects in the shared store only.
    pub(crate) fn in_store(&self) -> usize {
        self.store.count() as usize
    }

    /// `lcore`'s cache, if it has one.
    #[inline(always)]
    fn cache(&self, lcore: Option<usize>) -> Option<&Cache> {
        lcore.and_then(|l| self.caches.get(l)).map(|c| &**c)
    }

    /// Gets one object through `lcore`'s cache (or the store when it has none).
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call.
    #[inline]
    pub(crate) unsafe fn get_one(&self, lcore: Option<usize>) -> Option<usize> {
        let Some(cache) = self.cache(lcore) else {
            let mut one = [0usize];
            return (self.store.pop(&mut one, true) == 1).then_some(one[0]);
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            let mut len = cache.len.load(Ordering::Relaxed) as usize;
            if len == 0 {
                // Refill a cache's worth in one bulk pop.
                len = self.store.pop(&mut objs[..self.cache_size], false);
                if len == 0 {
                    return None;
                }
            }
            len -= 1;
            let obj = objs[len];
            cache.len.store(len as u32, Ordering::Release);
            Some(obj)
        })
    }

    /// Returns one object through `lcore`'s cache (or to the store when it has none).
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call; `obj` is an object of this
    /// store that is not free.
    #[inline]
    pub(crate) unsafe fn put_one(&self, lcore: Option<usize>, obj: usize) {
        let Some(cache) = self.cache(lcore) else {
            return self.store.push(&[obj]);
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            // Between operations `len` stays below the flush threshold (< 2 × size), so
            // there is room for one more.
            let mut len = cache.len.load(Ordering::Relaxed) as usize;
            objs[len] = obj;
            len += 1;
            self.settle(cache, objs, len);
        })
    }

    /// Publishes `len` objects in `cache`, spilling those above its size to the store
    /// first when `len` reached the flush threshold. The length is stored before the store
    /// counts the spilled objects, and nothing of the pool is touched after the last of the
    /// two (see the module docs: teardown).
    #[inline(always)]
    fn settle(&self, cache: &Cache, objs: &[usize], len: usize) {
        if len >= self.flush_threshold {
            self.spill(cache, objs, len);
        } else {
            cache.len.store(len as u32, Ordering::Release);
        }
    }

    /// Moves `objs[cache_size..len]` to the store and leaves the cache at its size.
    #[inline]
    fn spill(&self, cache: &Cache, objs: &[usize], len: usize) {
        // Lowered first: between these two lines the objects are counted nowhere, never in
        // both places.
        cache.len.store(self.cache_size as u32, Ordering::Release);
        self.store.push(&objs[self.cache_size..len]);
    }

    /// Gets `n` objects (exactly, or none when `exact`; otherwise as many as it can, up to
    /// `n`) through `lcore`'s cache, or from the store when `lcore` has no cache or `n` is
    /// larger than a cache. The objects are handed to `emit` in one or more slices, straight
    /// from where they lie; returns how many.
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call.
    #[inline]
    pub(crate) unsafe fn get_with(
        &self,
        lcore: Option<usize>,
        n: usize,
        exact: bool,
        mut emit: impl FnMut(&[usize]),
    ) -> usize {
        let cache = match self.cache(lcore) {
            Some(cache) if n <= self.cache_size => cache,
            _ => return self.get_from_store(n, exact, emit),
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            let mut len = cache.len.load(Ordering::Relaxed) as usize;
            if len < n {
                // Refill: enough for this request and a full cache after it (as DPDK does);
                // `len + cache_size + n - len <= 2 × cache_size` fits the array.
                len += self.store.pop(&mut objs[len..self.cache_size + n], false);
                if len < n {
                    if exact {
                        // A bulk that cannot be met: what we got stays cached, nothing lost.
                        cache.len.store(len as u32, Ordering::Release);
                        return 0;
                    }
                    // A burst hands out what there is.
                    emit(&objs[..len]);
                    cache.len.store(0, Ordering::Release);
                    return len;
                }
            }
            // From the top: the most recently freed objects, still warm in the CPU cache.
            emit(&objs[len - n..len]);
            cache.len.store((len - n) as u32, Ordering::Release);
            n
        })
    }

    /// The store-only path of `get_with`, in chunks.
    fn get_from_store(&self, n: usize, exact: bool, mut emit: impl FnMut(&[usize])) -> usize {
        let mut chunk = [0usize; 64];
        if exact && n > chunk.len() {
            // All or nothing over several pops would need to give back on failure; a
            // request this large is rare enough to take the simple route.
            let mut all = vec![0usize; n];
            let got = self.store.pop(&mut all, true);
            emit(&all[..got]);
            return got;
        }
        let mut done = 0;
        while done < n {
            let want = (n - done).min(chunk.len());
            let got = self.store.pop(&mut chunk[..want], exact);
            emit(&chunk[..got]);
            done += got;
            if got < want {
                break;
            }
        }
        done
    }

    /// Returns `n` objects, written by `fill` straight into `lcore`'s cache (or a scratch
    /// array for the store when it has none, or `n` is larger than a cache).
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call; `fill` writes `n` objects of
    /// this store that are not free, each once.
    #[inline]
    pub(crate) unsafe fn put_with(
        &self,
        lcore: Option<usize>,
        n: usize,
        fill: impl FnOnce(&mut [usize]),
    ) {
        let cache = match self.cache(lcore) {
            Some(cache) if n <= self.cache_size => cache,
            _ => {
                // A burst fits on the stack; only an oversized put allocates.
                let mut small = [0usize; 64];
                let mut large = Vec::new();
                let items = if n <= small.len() {
                    &mut small[..n]
                } else {
                    large.resize(n, 0);
                    &mut large[..]
                };
                fill(items);
                return self.store.push(items);
            }
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            let mut len = cache.len.load(Ordering::Relaxed) as usize;
            if len + n > objs.len() {
                // The cache sits between its size and the threshold and the put is large:
                // spill the part above the cache size first.
                self.spill(cache, objs, len);
                len = self.cache_size;
            }
            fill(&mut objs[len..len + n]);
            len += n;
            self.settle(cache, objs, len);
        })
    }

    /// `get_with` into a slice (tests and models).
    ///
    /// # Safety
    /// As for `get_with`.
    #[cfg(test)]
    pub(crate) unsafe fn get_on(
        &self,
        lcore: Option<usize>,
        out: &mut [usize],
        exact: bool,
    ) -> usize {
        let mut at = 0;
        // SAFETY: forwarded from the caller.
        unsafe {
            self.get_with(lcore, out.len(), exact, |objs| {
                out[at..at + objs.len()].copy_from_slice(objs);
                at += objs.len();
            })
        }
    }

    /// `put_with` from a slice (tests and models).
    ///
    /// # Safety
    /// As for `put_with`.
    #[cfg(test)]
    pub(crate) unsafe fn put_on(&self, lcore: Option<usize>, items: &[usize]) {
        // SAFETY: forwarded from the caller.
        unsafe { self.put_with(lcore, items.len(), |dst| dst.copy_from_slice(items)) }
    }

    /// Free objects in `lcore`'s cache.
    pub(crate) fn cached_on(&self, lcore: usize) -> usize {
        self.caches
            .get(lcore)
            .map_or(0, |c| c.len.load(Ordering::Acquire) as usize)
    }

    /// Moves everything in `lcore`'s cache back to the store.
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call.
    pub(crate) unsafe fn flush_on(&self, lcore: usize) {
        let Some(cache) = self.caches.get(lcore) else {
            return;
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            let len = cache.len.load(Ordering::Relaxed) as usize;
            // Emptied before the store counts them, as in `spill`.
            cache.len.store(0, Ordering::Release);
            self.store.push(&objs[..len]);
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cache_refills_and_flushes_in_bulk() {
        let s = CachedStore::new(1000, 64, 2, Codec::IDENTITY);
        let mut out = [0usize; 8];
        // SAFETY: single-threaded test.
        assert_eq!(unsafe { s.get_on(Some(0), &mut out, true) }, 8);
        // The refill took 64 + 8 from the store, 8 went out.
        assert_eq!(s.in_store(), 1000 - 72);
        assert_eq!(s.available(), 992);
        // Putting back past 1.5 × 64 = 96 flushes down to 64.
        let mut held = Vec::from(out);
        for _ in 0..6 {
            // SAFETY: single-threaded test.
            assert_eq!(unsafe { s.get_on(None, &mut out, true) }, 8);
            held.extend_from_slice(&out);
        }
        for chunk in held.chunks(8) {
            // SAFETY: single-threaded test; every object is held once.
            unsafe { s.put_on(Some(0), chunk) };
        }
        assert_eq!(s.available(), 1000);
        assert!(s.in_store() >= 1000 - 96);
        // SAFETY: single-threaded test.
        unsafe { s.flush_on(0) };
        assert_eq!(s.in_store(), 1000);
    }

    #[test]
    fn exhaustion_is_back_pressure() {
        let s = CachedStore::new(10, 4, 1, Codec::IDENTITY);
        let mut out = [0usize; 4];
        let mut get = |exact| {
            // SAFETY: single-threaded test.
            unsafe { s.get_on(Some(0), &mut out, exact) }
        };
        let mut got = 0;
        while get(true) == 4 {
            got += 4;
        }
        assert_eq!(got, 8);
        assert_eq!(get(false), 2, "a burst takes the last two");
        assert_eq!(get(false), 0);
        assert_eq!(s.available(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        GetOne {
            lcore: Option<usize>,
        },
        PutOne {
            lcore: Option<usize>,
        },
        Get {
            lcore: Option<usize>,
            n: usize,
            exact: bool,
        },
        Put {
            lcore: Option<usize>,
            n: usize,
        },
        Flush {
            lcore: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let lcore = prop_oneof![Just(None), (0..3usize).prop_map(Some)];
        prop_oneof![
            (lcore.clone(), 0..40usize, any::<bool>()).prop_map(|(lcore, n, exact)| Op::Get {
                lcore,
                n,
                exact
            }),
            (lcore.clone(), 0..40usize).prop_map(|(lcore, n)| Op::Put { lcore, n }),
            lcore.clone().prop_map(|lcore| Op::GetOne { lcore }),
            lcore.prop_map(|lcore| Op::PutOne { lcore }),
            (0..3usize).prop_map(|lcore| Op::Flush { lcore }),
        ]
    }

    proptest! {
        /// Objects are conserved across the store and the caches: whatever the sequence of
        /// gets, puts and flushes on which lcores, free + held == total, and nothing is
        /// handed out twice.
        #[test]
        fn object_count_is_conserved(count in 1u32..300, cache in 0u32..20, ops in prop::collection::vec(op(), 1..150)) {
            let s = CachedStore::new(count, cache, 3, Codec::IDENTITY);
            let mut held: Vec<usize> = Vec::new();
            let mut seen = vec![false; count as usize];
            for op in ops {
                match op {
                    Op::Get { lcore, n, exact } => {
                        let mut out = vec![0usize; n];
                        // What this caller can reach: the store, plus its own cache when
                        // the request goes through it; other lcores' caches are out of reach.
                        let through_cache = lcore.is_some() && n <= cache as usize;
                        let reachable = s.in_store() + if through_cache { s.cached_on(lcore.unwrap()) } else { 0 };
                        // SAFETY: single-threaded test.
                        let got = unsafe { s.get_on(lcore, &mut out, exact) };
                        let expect = if exact { if n <= reachable { n } else { 0 } } else { n.min(reachable) };
                        prop_assert_eq!(got, expect);
                        for &o in &out[..got] {
                            prop_assert!(!seen[o], "object {} handed out twice", o);
                            seen[o] = true;
                            held.push(o);
                        }
                    }
                    Op::Put { lcore, n } => {
                        let n = n.min(held.len());
                        let items: Vec<usize> = held.drain(held.len() - n..).collect();
                        for &o in &items { seen[o] = false; }
                        // SAFETY: single-threaded test; the items are held, once each.
                        unsafe { s.put_on(lcore, &items) };
                    }
                    Op::GetOne { lcore } => {
                        let reachable = s.in_store() + lcore.map_or(0, |l| s.cached_on(l));
                        // SAFETY: single-threaded test.
                        let got = unsafe { s.get_one(lcore) };
                        prop_assert_eq!(got.is_some(), reachable > 0);
                        if let Some(o) = got {
                            prop_assert!(!seen[o], "object {} handed out twice", o);
                            seen[o] = true;
                            held.push(o);
                        }
                    }
                    Op::PutOne { lcore } => {
                        if let Some(o) = held.pop() {
                            seen[o] = false;
                            // SAFETY: single-threaded test; the object is held once.
                            unsafe { s.put_one(lcore, o) };
                        }
                    }
                    Op::Flush { lcore } => {
                        // SAFETY: single-threaded test.
                        unsafe { s.flush_on(lcore) };
                    }
                }
                prop_assert_eq!(s.available() + held.len(), count as usize);
            }
        }
    }
}
