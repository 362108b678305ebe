use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

#[test]
fn capacity_must_be_a_power_of_two() {
    for bad in [0, 3, 1000, MAX_CAPACITY + 1] {
        assert_eq!(ring::<u8>(bad).unwrap_err(), BadCapacity(bad));
    }
    let (p, c) = ring::<u8>(1).unwrap();
    assert_eq!((p.capacity(), c.capacity()), (1, 1));
    assert!(BadCapacity(3).to_string().contains("capacity 3"));
}

#[test]
fn full_ring_hands_the_item_back() {
    let (mut p, mut c) = ring::<String>(2).unwrap();
    p.push("a".into()).unwrap();
    p.push("b".into()).unwrap();
    let Full(back) = p.push("c".into()).unwrap_err();
    assert_eq!(back, "c");
    assert_eq!(c.pop().as_deref(), Some("a"));
    p.push(back).unwrap();
    assert_eq!(c.pop().as_deref(), Some("b"));
    assert_eq!(c.pop().as_deref(), Some("c"));
    assert_eq!(c.pop(), None);
}

#[test]
fn burst_wraps_around_and_keeps_order() {
    let (mut p, mut c) = ring::<u32>(8).unwrap();
    let mut next = 0u32;
    let mut expect = 0u32;
    // Offsets that make every burst straddle the end of the slot array at some point.
    for round in 0..50 {
        let mut b: Batch<u32, 8> = Batch::new();
        b.extend(next..next + 5);
        let pushed = p.push_burst(&mut b);
        // What did not fit is still in the batch, in order.
        assert_eq!(b.len(), 5 - pushed);
        assert!(b.iter().copied().eq(next + pushed as u32..next + 5));
        next += pushed as u32;
        let mut out: Batch<u32, 8> = Batch::new();
        let popped = c.pop_burst(&mut out, 3 + round % 4);
        assert!(out.iter().copied().eq(expect..expect + popped as u32));
        expect += popped as u32;
    }
    let mut out: Batch<u32, 8> = Batch::new();
    c.pop_burst(&mut out, 8);
    assert!(out.iter().copied().eq(expect..next));
}

#[test]
fn bulk_is_all_or_nothing() {
    let (mut p, mut c) = ring::<u64>(4).unwrap();
    assert!(p.push_slice_bulk(&[1, 2, 3]));
    assert!(!p.push_slice_bulk(&[4, 5]), "only one slot is free");
    let mut b: Batch<u64, 4> = Batch::new();
    b.extend([4, 5]);
    assert!(!p.push_bulk(&mut b));
    assert_eq!(b.len(), 2, "a failed bulk leaves the batch untouched");
    let mut out = [0u64; 4];
    assert!(!c.pop_slice_bulk(&mut out), "only three are ready");
    assert!(c.pop_slice_bulk(&mut out[..3]));
    assert_eq!(out[..3], [1, 2, 3]);
    assert!(p.push_bulk(&mut b));
    let mut got: Batch<u64, 4> = Batch::new();
    assert!(!c.pop_bulk(&mut got, 3));
    assert!(c.pop_bulk(&mut got, 2));
    assert_eq!(got.as_slice(), &[4, 5]);
}

#[test]
fn pop_burst_respects_batch_room() {
    let (mut p, mut c) = ring::<u8>(16).unwrap();
    assert_eq!(p.push_slice_burst(&[7; 16]), 16);
    assert_eq!(p.push_slice_burst(&[8]), 0);
    let mut b: Batch<u8, 4> = Batch::new();
    b.push(1).unwrap();
    assert_eq!(c.pop_burst(&mut b, 100), 3);
    assert_eq!(b.as_slice(), &[1, 7, 7, 7]);
    assert!(!c.pop_bulk(&mut b, 1), "no room left");
    assert_eq!(c.len(), 13);
}

struct Counted<'a>(&'a StdAtomicUsize);
impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn items_left_inside_are_dropped_with_the_ring() {
    let drops = StdAtomicUsize::new(0);
    {
        let (mut p, mut c) = ring::<Counted<'_>>(8).unwrap();
        for _ in 0..6 {
            p.push(Counted(&drops)).unwrap();
        }
        drop(c.pop());
        drop(p);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(c.is_abandoned());
    }
    assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 6);
}

#[test]
fn push_iter_stops_when_full_and_keeps_the_rest() {
    let (mut p, mut c) = ring::<u16>(4).unwrap();
    let mut items = 0..10u16;
    assert_eq!(p.push_iter(&mut items), 4);
    assert_eq!(items.next(), Some(4));
    assert_eq!(c.pop(), Some(0));
}

#[test]
fn two_threads_move_a_million_items_in_order() {
    const COUNT: u64 = 1_000_000;
    let (mut p, mut c) = ring::<u64>(256).unwrap();
    let producer = std::thread::spawn(move || {
        let mut next = 0u64;
        let mut b: Batch<u64> = Batch::new();
        while next < COUNT {
            let room = b.remaining() as u64;
            b.extend(next..(next + room).min(COUNT));
            next += room.min(COUNT - next);
            while !b.is_empty() {
                if p.push_burst(&mut b) == 0 {
                    std::hint::spin_loop();
                }
            }
        }
    });
    let mut expect = 0u64;
    let mut out = [0u64; 32];
    while expect < COUNT {
        let n = c.pop_slice_burst(&mut out);
        for &v in &out[..n] {
            assert_eq!(v, expect);
            expect += 1;
        }
        if n == 0 {
            std::hint::spin_loop();
        }
    }
    producer.join().unwrap();
    assert_eq!(c.pop(), None);
}

#[derive(Debug, Clone)]
enum Op {
    PushBurst(usize),
    PushBulk(usize),
    PopBurst(usize),
    PopBulk(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..=32usize).prop_map(Op::PushBurst),
        (0..=32usize).prop_map(Op::PushBulk),
        (0..=32usize).prop_map(Op::PopBurst),
        (0..=32usize).prop_map(Op::PopBulk),
    ]
}

proptest! {
    /// Against a `VecDeque` model: no loss, no duplication, FIFO, burst/bulk counts exact,
    /// and the leftovers dropped exactly once with the ring.
    #[test]
    fn behaves_like_a_bounded_fifo(cap_log in 0u32..6, ops in prop::collection::vec(op(), 1..200)) {
        let cap = 1usize << cap_log;
        let drops = StdAtomicUsize::new(0);
        let (mut p, mut c) = ring::<(u64, Counted<'_>)>(cap).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut next = 0u64;
        let mut created = 0usize;
        let mut dropped_by_test = 0usize;
        for op in ops {
            match op {
                Op::PushBurst(n) | Op::PushBulk(n) => {
                    let mut b: Batch<(u64, Counted<'_>), 32> = Batch::new();
                    for i in 0..n as u64 {
                        b.push((next + i, Counted(&drops))).ok().unwrap();
                    }
                    created += n;
                    let free = cap - model.len();
                    let moved = if matches!(op, Op::PushBurst(_)) {
                        p.push_burst(&mut b)
                    } else if p.push_bulk(&mut b) { n } else { 0 };
                    let expect = if matches!(op, Op::PushBurst(_)) { n.min(free) } else if n <= free { n } else { 0 };
                    prop_assert_eq!(moved, expect);
                    model.extend(next..next + moved as u64);
                    // What stayed behind is the unpushed suffix, in order.
                    prop_assert!(b.iter().map(|x| x.0).eq(next + moved as u64..next + n as u64));
                    dropped_by_test += b.len();
                    next += n as u64;
                }
                Op::PopBurst(n) | Op::PopBulk(n) => {
                    let mut b: Batch<(u64, Counted<'_>), 32> = Batch::new();
                    let got = if matches!(op, Op::PopBurst(_)) {
                        c.pop_burst(&mut b, n)
                    } else if c.pop_bulk(&mut b, n) { n } else { 0 };
                    let expect = if matches!(op, Op::PopBurst(_)) { n.min(model.len()) } else if n <= model.len() { n } else { 0 };
                    prop_assert_eq!(got, expect);
                    for item in b.iter() {
                        prop_assert_eq!(Some(item.0), model.pop_front());
                    }
                    dropped_by_test += got;
                }
            }
        }
        let inside = model.len();
        let before = drops.load(std::sync::atomic::Ordering::Relaxed);
        prop_assert_eq!(before, dropped_by_test);
        drop((p, c));
        prop_assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), dropped_by_test + inside);
        prop_assert_eq!(created, dropped_by_test + inside);
    }
}

#[test]
fn in_place_bursts_wrap_and_keep_order() {
    let (mut p, mut c) = ring::<u64>(8).unwrap();
    let mut next = 0u64;
    let mut expect = 0u64;
    for round in 0..40u64 {
        let mut src = next..next + 3 + round % 5;
        next += p.push_iter(&mut src) as u64;
        assert_eq!(
            src.start, next,
            "items that did not fit stay in the iterator"
        );
        let took = c.pop_each(2 + (round % 4) as usize, |v| {
            assert_eq!(v, expect);
            expect += 1;
        });
        assert!(took <= 5);
    }
    while c.pop_each(8, |v| {
        assert_eq!(v, expect);
        expect += 1;
    }) > 0
    {}
    assert_eq!(expect, next);
}

#[test]
fn pop_each_accounts_for_items_taken_before_a_panic() {
    let drops = StdAtomicUsize::new(0);
    let (mut p, mut c) = ring::<Counted<'_>>(8).unwrap();
    for _ in 0..5 {
        p.push(Counted(&drops)).unwrap();
    }
    let mut seen = 0;
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.pop_each(5, |item| {
            seen += 1;
            drop(item);
            if seen == 2 {
                panic!("consumer failed");
            }
        })
    }));
    assert!(unwound.is_err());
    // Two were taken (and dropped by the callback); three remain, and are dropped once
    // with the ring.
    assert_eq!(c.len(), 3);
    drop((p, c));
    assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 5);
}

#[test]
fn consume_slices_reads_in_place_across_the_wrap() {
    let (mut p, mut c) = ring::<u32>(8).unwrap();
    assert_eq!(p.push_slice_burst(&[0, 1, 2, 3, 4, 5]), 6);
    let mut out = [0u32; 6];
    assert_eq!(c.pop_slice_burst(&mut out[..5]), 5);
    assert_eq!(p.push_slice_burst(&[6, 7, 8, 9, 10]), 5);
    // Items 5..=10 sit in slots 5, 6, 7, 0, 1, 2: the run wraps.
    let (n, seen) = c.consume_slices(32, |a, b| (a.to_vec(), b.to_vec()));
    assert_eq!(n, 6);
    assert_eq!(seen, (vec![5, 6, 7], vec![8, 9, 10]));
    // The slots were released: the producer can fill the ring again.
    assert_eq!(p.push_slice_burst(&[0; 8]), 8);
    let (n, ()) = c.consume_slices(0, |a, b| assert!(a.is_empty() && b.is_empty()));
    assert_eq!(n, 0);
}
