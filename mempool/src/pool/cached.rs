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

use crossbeam_utils::CachePadded;

use super::store::Store;
use crate::sync::{AtomicU32, Ordering, UnsafeCell};

/// The largest per-lcore cache, in objects.
pub const MAX_CACHE_SIZE: u32 = 512;

/// One lcore's cache; only the thread registered as that lcore touches `objs`.
struct Cache {
    /// Entries `objs[0..len]` are free objects. Written by the owner only (Release, so a
    /// pool checking that all objects are home sees the owner done with them); read by
    /// anyone for statistics.
    len: AtomicU32,
    objs: UnsafeCell<Box<[u32]>>,
}

pub(crate) struct CachedStore {
    store: Store,
    caches: Box<[CachePadded<Cache>]>,
    cache_size: usize,
    flush_threshold: usize,
}

// SAFETY: `Store` is atomics only. A `Cache`'s `objs` is only accessed through the
// `unsafe fn *_on` methods, whose callers guarantee that one thread at a time uses a given
// lcore's cache (the lcore registry does that for the safe entry points).
unsafe impl Sync for CachedStore {}
// SAFETY: it owns plain integers; see `Sync`.
unsafe impl Send for CachedStore {}

impl CachedStore {
    /// A store holding objects `0..count`, with a cache of `cache_size` (0 for none) for
    /// each of `lcores` lcores.
    pub(crate) fn new(count: u32, cache_size: u32, lcores: usize) -> Self {
        let cache_size = cache_size.min(MAX_CACHE_SIZE) as usize;
        let caches = if cache_size == 0 { 0 } else { lcores };
        let store = Store::new(count);
        let all: Vec<u32> = (0..count).collect();
        store.push(&all);
        Self {
            store,
            caches: (0..caches)
                .map(|_| {
                    CachePadded::new(Cache {
                        len: AtomicU32::new(0),
                        // Room for a full cache plus a request of up to a cache's size.
                        objs: UnsafeCell::new(vec![0u32; 2 * cache_size].into_boxed_slice()),
                    })
                })
                .collect(),
            cache_size,
            flush_threshold: cache_size + cache_size / 2,
        }
    }

    /// The per-lcore cache size (0: no caches).
    pub(crate) fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// Free objects: in the store plus in every cache (exact when nothing is in flight).
    pub(crate) fn available(&self) -> usize {
        let cached: usize = self
            .caches
            .iter()
            .map(|c| c.len.load(Ordering::Acquire) as usize)
            .sum();
        self.store.count() as usize + cached
    }

    /// Free objects in the shared store only.
    pub(crate) fn in_store(&self) -> usize {
        self.store.count() as usize
    }

    /// Gets up to `out.len()` objects (exactly that many or none when `exact`) through
    /// `lcore`'s cache, or straight from the store when `lcore` is `None`, has no cache, or
    /// the request is larger than a cache.
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call.
    #[inline]
    pub(crate) unsafe fn get_on(
        &self,
        lcore: Option<usize>,
        out: &mut [u32],
        exact: bool,
    ) -> usize {
        let n = out.len();
        let cache = match lcore.and_then(|l| self.caches.get(l)) {
            Some(cache) if n <= self.cache_size => cache,
            _ => return self.store.pop(out, exact),
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            let mut len = cache.len.load(Ordering::Relaxed) as usize;
            if len < n {
                // Refill: enough for this request and a full cache after it (DPDK does the
                // same), else at least what the request lacks.
                let want = self.cache_size + n - len;
                let got = self.store.pop(&mut objs[len..len + want], false);
                if len + got < n && !exact {
                    // Burst: hand out what there is.
                    len += got;
                    let k = len;
                    out[..k].copy_from_slice(&objs[..k]);
                    cache.len.store(0, Ordering::Release);
                    return k;
                }
                if len + got < n {
                    // Bulk that cannot be met: keep what we got in the cache, nothing lost.
                    cache.len.store((len + got) as u32, Ordering::Release);
                    return 0;
                }
                len += got;
            }
            // Take from the top: the most recently freed objects, still warm in cache.
            out.copy_from_slice(&objs[len - n..len]);
            cache.len.store((len - n) as u32, Ordering::Release);
            n
        })
    }

    /// Returns `items` through `lcore`'s cache, or straight to the store (see [`Self::get_on`]).
    ///
    /// # Safety
    /// No other thread uses `lcore`'s cache during the call; `items` are objects of this
    /// store that are not free.
    #[inline]
    pub(crate) unsafe fn put_on(&self, lcore: Option<usize>, items: &[u32]) {
        let n = items.len();
        let cache = match lcore.and_then(|l| self.caches.get(l)) {
            Some(cache) if n <= self.cache_size => cache,
            _ => return self.store.push(items),
        };
        cache.objs.with_mut(|objs| {
            // SAFETY: the caller guarantees this thread is the cache's only user.
            let objs = unsafe { &mut **objs };
            let mut len = cache.len.load(Ordering::Relaxed) as usize;
            if len + n > objs.len() {
                // Only reachable when the cache sits between its size and threshold and the
                // put is large: spill the part above the cache size first.
                self.store.push(&objs[self.cache_size..len]);
                len = self.cache_size;
            }
            objs[len..len + n].copy_from_slice(items);
            len += n;
            if len >= self.flush_threshold {
                self.store.push(&objs[self.cache_size..len]);
                len = self.cache_size;
            }
            cache.len.store(len as u32, Ordering::Release);
        })
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
            self.store.push(&objs[..len]);
            cache.len.store(0, Ordering::Release);
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cache_refills_and_flushes_in_bulk() {
        let s = CachedStore::new(1000, 64, 2);
        let mut out = [0u32; 8];
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
        let s = CachedStore::new(10, 4, 1);
        let mut out = [0u32; 4];
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
            (lcore, 0..40usize).prop_map(|(lcore, n)| Op::Put { lcore, n }),
            (0..3usize).prop_map(|lcore| Op::Flush { lcore }),
        ]
    }

    proptest! {
        /// Objects are conserved across the store and the caches: whatever the sequence of
        /// gets, puts and flushes on which lcores, free + held == total, and nothing is
        /// handed out twice.
        #[test]
        fn object_count_is_conserved(count in 1u32..300, cache in 0u32..20, ops in prop::collection::vec(op(), 1..150)) {
            let s = CachedStore::new(count, cache, 3);
            let mut held: Vec<u32> = Vec::new();
            let mut seen = vec![false; count as usize];
            for op in ops {
                match op {
                    Op::Get { lcore, n, exact } => {
                        let mut out = vec![0u32; n];
                        // What this caller can reach: the store, plus its own cache when
                        // the request goes through it; other lcores' caches are out of reach.
                        let through_cache = lcore.is_some() && n <= cache as usize;
                        let reachable = s.in_store() + if through_cache { s.cached_on(lcore.unwrap()) } else { 0 };
                        // SAFETY: single-threaded test.
                        let got = unsafe { s.get_on(lcore, &mut out, exact) };
                        let expect = if exact { if n <= reachable { n } else { 0 } } else { n.min(reachable) };
                        prop_assert_eq!(got, expect);
                        for &o in &out[..got] {
                            prop_assert!(!seen[o as usize], "object {} handed out twice", o);
                            seen[o as usize] = true;
                            held.push(o);
                        }
                    }
                    Op::Put { lcore, n } => {
                        let n = n.min(held.len());
                        let items: Vec<u32> = held.drain(held.len() - n..).collect();
                        for &o in &items { seen[o as usize] = false; }
                        // SAFETY: single-threaded test; the items are held, once each.
                        unsafe { s.put_on(lcore, &items) };
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
