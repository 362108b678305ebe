//! Loom models of the lock-free parts: the SPSC ring, the pool's shared store, an lcore
//! cache refilling from and flushing to that store while another thread uses the store
//! directly, and the check that frees a pool racing with a cache that spills.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p sluice-mempool --release --lib loom_tests`
//! (`.ci/run` does). The models are small on purpose: loom explores every interleaving
//! allowed by the memory model, so a few items over a ring of two slots already cover
//! wrap-around, full and empty in both directions.

use loom::sync::Arc;
use loom::thread;

use crate::batch::Batch;
use crate::pool::cached::CachedStore;
use crate::pool::store::{Codec, Store};
use crate::ring::ring;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // Bounding preemptions keeps the search tractable; bugs of these algorithms show up
    // within two or three (see the loom docs).
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn ring_moves_items_in_order_across_wrap() {
    model(|| {
        let (mut tx, mut rx) = ring::<Box<u32>>(2).unwrap();
        let producer = thread::spawn(move || {
            let mut next = 0u32;
            while next < 3 {
                let mut b: Batch<Box<u32>, 2> = Batch::new();
                let _ = b.push(Box::new(next));
                if next < 2 {
                    let _ = b.push(Box::new(next + 1));
                }
                let n = b.len() as u32;
                // Bulk: both or neither, so the batch is either sent or retried whole.
                if tx.push_bulk(&mut b) {
                    next += n;
                } else {
                    thread::yield_now();
                }
            }
        });
        let mut expect = 0u32;
        while expect < 3 {
            let mut out: Batch<Box<u32>, 2> = Batch::new();
            if rx.pop_burst(&mut out, 2) == 0 {
                thread::yield_now();
                continue;
            }
            for item in out.drain() {
                assert_eq!(*item, expect);
                expect += 1;
            }
        }
        producer.join().unwrap();
        assert!(rx.pop().is_none());
    });
}

#[test]
fn ring_drops_leftovers_once_whichever_side_goes_last() {
    model(|| {
        let (mut tx, mut rx) = ring::<Arc<()>>(2).unwrap();
        let token = Arc::new(());
        let t = token.clone();
        let producer = thread::spawn(move || {
            let _ = tx.push(t.clone());
            let _ = tx.push(t);
        });
        let _ = rx.pop();
        producer.join().unwrap();
        drop(rx);
        assert_eq!(Arc::strong_count(&token), 1);
    });
}

#[test]
fn store_never_loses_or_duplicates_under_concurrent_bulk_ops() {
    model(|| {
        let store = Arc::new(Store::new(3, Codec::IDENTITY));
        store.push(&[0, 1, 2]);
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let s = store.clone();
                thread::spawn(move || {
                    let mut held = [0usize; 2];
                    // One thread pops bulk 2 (exact), the other a burst of 1.
                    let n = s.pop(&mut held[..2 - t], t == 0);
                    s.push(&held[..n]);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut all = [usize::MAX; 4];
        assert_eq!(store.pop(&mut all, false), 3);
        all[..3].sort_unstable();
        assert_eq!(all[..3], [0, 1, 2]);
        assert_eq!(store.count(), 0);
    });
}

#[test]
fn cache_refill_and_flush_conserve_objects() {
    model(|| {
        // Cache size 2: a get of 1 refills 3 from the store; the flush threshold is 3.
        let pool = Arc::new(CachedStore::new(4, 2, 1, Codec::IDENTITY));
        let p = pool.clone();
        let lcore = thread::spawn(move || {
            // One round through the bulk path, one through the single-object path.
            let mut got = [0usize; 1];
            // SAFETY: this thread is the only user of lcore 0's cache in the model.
            let n = unsafe { p.get_on(Some(0), &mut got, true) };
            // SAFETY: as above; the object was taken by us.
            unsafe { p.put_on(Some(0), &got[..n]) };
            // SAFETY: as above.
            if let Some(obj) = unsafe { p.get_one(Some(0)) } {
                // SAFETY: as above; the object was taken by us.
                unsafe { p.put_one(Some(0), obj) };
            }
            // SAFETY: as above.
            unsafe { p.flush_on(0) };
        });
        // A thread that is not an lcore works on the shared store directly.
        let mut got = [0usize; 2];
        // SAFETY: `None` touches no cache.
        let n = unsafe { pool.get_on(None, &mut got, false) };
        // SAFETY: as above; the objects were taken by us.
        unsafe { pool.put_on(None, &got[..n]) };
        lcore.join().unwrap();
        assert_eq!(pool.available(), 4);
        assert_eq!(pool.in_store(), 4);
        let mut all = [usize::MAX; 4];
        // SAFETY: all other threads are done.
        assert_eq!(unsafe { pool.get_on(None, &mut all, true) }, 4);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
    });
}

/// The last handle of a pool goes (the check that frees it runs) while an lcore returns
/// objects and its cache spills to the store. One object stays out the whole time (held
/// by a third party), so the check must never find every object home: it would free the
/// memory that object points into. Checking the caches before the store, or spilling
/// before lowering the cache's length, counts the spilled objects twice and fails here.
fn teardown_racing_a_spill(returned: usize) {
    model(move || {
        // Cache size 4, flush threshold 6. Lcore 0's cache holds 5: one above its size.
        let cached = 5;
        let capacity = cached + returned + 1;
        let pool = Arc::new(CachedStore::new(capacity as u32, 4, 1, Codec::IDENTITY));
        let mut all = vec![0usize; capacity];
        // SAFETY: no other thread yet; `None` touches no cache.
        assert_eq!(unsafe { pool.get_on(None, &mut all, true) }, capacity);
        for &obj in &all[..cached] {
            // SAFETY: no other thread yet; the object was taken above.
            unsafe { pool.put_one(Some(0), obj) };
        }
        let back: Vec<usize> = all[cached..cached + returned].to_vec();
        let p = pool.clone();
        let lcore = thread::spawn(move || {
            if let [one] = back[..] {
                // SAFETY: this thread is lcore 0's only user from now on; it held `one`.
                unsafe { p.put_one(Some(0), one) };
            } else {
                // Bulk: spills before it fills (the cache is past its size) and after.
                // SAFETY: as above; it held these.
                unsafe { p.put_on(Some(0), &back) };
            }
        });
        assert!(
            pool.outstanding(capacity) > 0,
            "a pool with an object out was found with every object home"
        );
        lcore.join().unwrap();
        assert_eq!(pool.outstanding(capacity), 1);
    });
}

#[test]
fn teardown_check_never_counts_a_single_return_spilled_twice() {
    teardown_racing_a_spill(1);
}

#[test]
fn teardown_check_never_counts_a_bulk_return_spilled_twice() {
    teardown_racing_a_spill(4);
}
