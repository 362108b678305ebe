use super::*;

fn queue(size: u16, event_idx: bool) -> PackedQueue<u32> {
    let layout = PackedLayout::new(size).unwrap();
    PackedQueue::new(3, super::super::test_memory(layout.len), layout, event_idx)
}

fn seg(len: u32, writable: bool) -> Segment {
    Segment {
        iova: Iova(0x1000),
        len,
        writable,
    }
}

/// Plays the device: writes a used descriptor at `slot`.
fn used(q: &PackedQueue<u32>, slot: u16, id: u16, len: u32, flags: u16) {
    let at = q.layout.desc(slot);
    q.mem.store_u32(at + 8, len, Ordering::Relaxed);
    q.mem.store_u16(at + 12, id, Ordering::Relaxed);
    q.mem.store_u16(at + 14, flags, Ordering::Release);
}

const USED_LAP1: u16 = DESC_F_AVAIL | DESC_F_USED | DESC_F_WRITE;

#[test]
fn layout_keeps_the_event_structures_apart() {
    let l = PackedLayout::new(256).unwrap();
    assert_eq!((l.desc, l.driver, l.device), (0, 4096, 4160));
    assert!(l.len >= l.device + 4);
    assert!(PackedLayout::new(0).is_none());
    assert!(PackedLayout::new(32768).is_some());
}

#[test]
fn the_first_descriptor_of_a_burst_is_made_available_last() {
    let mut q = queue(8, false);
    q.add(&[seg(100, true)], 1).unwrap();
    q.add(&[seg(10, false), seg(1, true)], 2).unwrap();
    let (mem, layout) = (q.mem.clone(), q.layout);
    let flags = |slot| mem.load_u16(layout.desc(slot) + 14, Ordering::Relaxed);
    assert_eq!(flags(0), 0, "the head waits for publish");
    assert_eq!(flags(1), DESC_F_AVAIL | DESC_F_NEXT);
    assert_eq!(flags(2), DESC_F_AVAIL | DESC_F_WRITE);
    assert!(q.publish(), "the device's flags say ENABLE (0)");
    assert_eq!(flags(0), DESC_F_AVAIL | DESC_F_WRITE);
    assert!(!q.publish(), "nothing new");
    assert_eq!(q.free_descs(), 5);
}

#[test]
fn stale_or_available_descriptors_are_not_yet_used() {
    let mut q = queue(4, false);
    q.add(&[seg(100, true)], 7).unwrap();
    q.publish();
    assert!(q.pop_used().is_none(), "still available");
    // Used, but with the wrap counter of the previous lap.
    used(&q, 0, 0, 10, DESC_F_WRITE);
    assert!(q.pop_used().is_none());
    used(&q, 0, 0, 10, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::Done(7, 10))));
    assert_eq!(q.in_flight(), 0);
}

#[test]
fn bad_ids_and_lengths_are_reported_and_the_ring_goes_on() {
    let mut q = queue(4, false);
    for t in 0..3 {
        q.add(&[seg(100, true)], t).unwrap();
    }
    q.publish();
    let bad_id = |id| {
        Some(UsedFault::BadId {
            queue: 3,
            id,
            size: 4,
        })
    };
    used(&q, 0, 9, 10, USED_LAP1); // out of range
    assert!(matches!(q.pop_used(), Some(Used::BadId(9))));
    assert_eq!(q.take_fault(), bad_id(9));
    assert_eq!(q.take_fault(), None, "taken");
    used(&q, 1, 3, 10, USED_LAP1); // in range, not in flight
    assert!(matches!(q.pop_used(), Some(Used::BadId(3))));
    used(&q, 2, 1, 101, DESC_F_AVAIL | DESC_F_USED); // no WRITE, as QEMU writes them
    assert!(matches!(q.pop_used(), Some(Used::BadLen(1, 101))));
    let bad_len = UsedFault::BadLen {
        queue: 3,
        id: 1,
        len: 101,
        max: 100,
    };
    assert_eq!(q.take_fault(), Some(bad_len), "the last one is kept");
    // A read-only buffer returned with a length but no WRITE: the length is ignored.
    q.add(&[seg(60, false)], 4).unwrap();
    q.publish();
    used(&q, 3, 1, 500, DESC_F_AVAIL | DESC_F_USED);
    assert!(matches!(q.pop_used(), Some(Used::Done(4, 0))));
    assert_eq!(q.take_fault(), None);
    // Ids 0 and 2 were overwritten by the faults: in flight until the reset.
    assert_eq!(q.in_flight(), 2);
    let mut left: Vec<u32> = q.take_all().collect();
    left.sort_unstable();
    assert_eq!(left, [0, 2]);
}

#[test]
fn a_bad_id_inside_a_multi_descriptor_chain_frees_nothing_twice() {
    let mut q = queue(8, false);
    // Chain A: 3 descriptors (id 0, slots 0-2); chain B: 2 (id 1, slots 3-4); C: 1
    // (id 2, slot 5).
    q.add(&[seg(10, false), seg(20, false), seg(30, true)], 100)
        .unwrap();
    q.add(&[seg(10, false), seg(40, true)], 101).unwrap();
    q.add(&[seg(50, true)], 102).unwrap();
    q.publish();
    assert_eq!(q.free_descs(), 2);
    // The device returns B's id at A's head: the driver follows its own record of B
    // (2 descriptors), which leaves its used position inside chain A.
    used(&q, 0, 1, 40, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::Done(101, 40))));
    assert_eq!(q.free_descs(), 4);
    // A used descriptor there, inside A, naming an id out of range, then B's again (no
    // longer in flight): each is one bad descriptor, nothing is freed.
    used(&q, 2, 9, 0, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::BadId(9))));
    used(&q, 3, 1, 0, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::BadId(1))));
    assert_eq!(q.free_descs(), 4, "a bad id frees no descriptor");
    assert_eq!(
        q.take_fault(),
        Some(UsedFault::BadId {
            queue: 3,
            id: 1,
            size: 8
        })
    );
    // A, returned now, frees its 3 descriptors once.
    used(&q, 4, 0, 30, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::Done(100, 30))));
    assert_eq!(q.free_descs(), 7);
    assert!(q.pop_used().is_none(), "slot 7 is not used");
    assert_eq!(q.in_flight(), 1);
    // The ring goes on: a new chain fits the free descriptors.
    q.add(&[seg(1, true); 7], 103).unwrap();
    assert_eq!(q.free_descs(), 0);
    let mut left: Vec<u32> = q.take_all().collect();
    left.sort_unstable();
    assert_eq!(left, [102, 103], "every token back once");
}

#[test]
fn the_wrap_counters_flip_at_the_end_of_the_ring() {
    let mut q = queue(4, false);
    let mut token = 0u32;
    for lap in 0..10u16 {
        let wrap = lap % 2 == 0;
        for slot in 0..4u16 {
            q.add(&[seg(64, true)], token).unwrap();
            q.publish();
            let f = q.mem.load_u16(q.layout.desc(slot) + 14, Ordering::Relaxed);
            let want = if wrap { DESC_F_AVAIL } else { DESC_F_USED };
            assert_eq!(
                f & (DESC_F_AVAIL | DESC_F_USED),
                want,
                "lap {lap} slot {slot}"
            );
            let id = q.mem.load_u16(q.layout.desc(slot) + 12, Ordering::Relaxed);
            let lap_bits = if wrap { DESC_F_AVAIL | DESC_F_USED } else { 0 };
            used(&q, slot, id, 64, lap_bits | DESC_F_WRITE);
            assert!(matches!(q.pop_used(), Some(Used::Done(t, 64)) if t == token));
            token += 1;
        }
    }
}

/// IN_ORDER as DPDK's vhost returns a transmit burst: one used descriptor at the batch's
/// first slot with the id of its last buffer, the other slots left as they were.
#[test]
fn in_order_batches_come_back_whole_across_laps() {
    let mut q = queue(8, false).with_in_order(true);
    let mut token = 0u32;
    let mut back = 0u32;
    for round in 0..12u16 {
        // Bursts of 3 (one of them a two-descriptor chain), then one used descriptor.
        let first = q.next_avail;
        let wrap = q.avail_wrap;
        for i in 0..3 {
            let segs: &[Segment] = if i == 1 {
                &[seg(10, false), seg(20, false)]
            } else {
                &[seg(60, false)]
            };
            q.add(segs, token).unwrap();
            token += 1;
        }
        q.publish();
        assert_eq!(q.in_flight(), 4);
        let last_id = q.head_id[usize::from((first + 3) % 8)];
        let lap_bits = if wrap { DESC_F_AVAIL | DESC_F_USED } else { 0 };
        used(&q, first, last_id, 0, lap_bits);
        for _ in 0..3 {
            assert!(
                matches!(q.pop_used(), Some(Used::Done(t, 0)) if t == back),
                "round {round}"
            );
            back += 1;
        }
        assert!(q.pop_used().is_none(), "round {round}: the batch is over");
        assert_eq!(q.in_flight(), 0);
    }
    assert_eq!(q.take_fault(), None);
}

#[test]
fn in_order_receive_batches_carry_the_last_length_and_single_uses_still_work() {
    let mut q = queue(8, false).with_in_order(true);
    for t in 0..4 {
        q.add(&[seg(100, true)], t).unwrap();
    }
    q.publish();
    // Buffer 0 on its own, then 1..=3 as one batch whose last wrote 64 bytes.
    used(&q, 0, q.head_id[0], 70, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::Done(0, 70))));
    used(&q, 1, q.head_id[3], 64, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::Done(1, 0))));
    assert!(matches!(q.pop_used(), Some(Used::Done(2, 0))));
    assert!(matches!(q.pop_used(), Some(Used::Done(3, 64))));
    assert!(q.pop_used().is_none());
    // Reset ends a batch midway.
    for t in 4..7 {
        q.add(&[seg(100, true)], t).unwrap();
    }
    q.publish();
    used(&q, 4, q.head_id[6], 64, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::Done(4, 0))));
    let mut left: Vec<u32> = q.take_all().collect();
    left.sort_unstable();
    assert_eq!(left, [5, 6]);
    assert!(q.batch_rest.is_none());
}

#[test]
fn in_order_batches_end_at_a_published_buffer_in_flight() {
    let mut q = queue(8, false).with_in_order(true);
    for t in 0..3 {
        q.add(&[seg(100, true)], t).unwrap();
    }
    q.publish();
    // Added, not yet published: a device cannot have used it.
    q.add(&[seg(100, true)], 3).unwrap();
    let unpublished = q.head_id[3];
    used(&q, 0, unpublished, 10, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::BadId(id)) if id == u32::from(unpublished)));
    assert!(matches!(q.take_fault(), Some(UsedFault::BadId { .. })));
    // Out of range, and free.
    used(&q, 1, 99, 10, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::BadId(99))));
    let free = *q.free_ids.last().unwrap();
    used(&q, 2, free, 10, USED_LAP1);
    assert!(matches!(q.pop_used(), Some(Used::BadId(_))));
    assert!(q.batch_rest.is_none(), "no batch was started");
}

#[test]
fn event_suppression_decides_the_notification() {
    let mut q = queue(8, true);
    let dev = q.layout.device;
    let set = |q: &PackedQueue<u32>, off_wrap: u16, flags: u16| {
        q.mem.store_u32(
            dev,
            u32::from(off_wrap) | u32::from(flags) << 16,
            Ordering::Relaxed,
        );
    };
    set(&q, 0, EVENT_F_DISABLE);
    q.add(&[seg(64, true)], 0).unwrap();
    assert!(!q.publish());
    // DESC: the device wants to hear of slot 3 in the first lap (wrap bit 1).
    set(&q, 0x8000 | 3, EVENT_F_DESC);
    q.add(&[seg(64, true)], 1).unwrap();
    q.add(&[seg(64, true)], 2).unwrap();
    assert!(!q.publish(), "slots 1 and 2 only");
    for t in 3..6 {
        q.add(&[seg(64, true)], t).unwrap();
    }
    assert!(q.publish(), "slots 3..6 include 3");
    // Across the end of the ring: slots 6, 7 then 0 of lap 2 (wrap bit 0).
    for t in 0..6 {
        used(&q, t, t, 64, USED_LAP1);
        q.pop_used().unwrap();
    }
    set(&q, 0, EVENT_F_DESC);
    for t in 6..9 {
        q.add(&[seg(64, true)], t).unwrap();
    }
    assert!(q.publish(), "slot 0 of the second lap");
    // Ahead of the burst, within a ring: told later, not now.
    set(&q, 4, EVENT_F_DESC);
    q.add(&[seg(64, true)], 9).unwrap();
    assert!(!q.publish(), "slot 4 of the second lap is ahead of slot 1");
    // Behind the burst: a request the device should have seen served. QEMU 7.2 leaves
    // one such after its transmit completion; not notifying would stall the queue.
    set(&q, 0x8000 | 7, EVENT_F_DESC);
    q.add(&[seg(64, true)], 10).unwrap();
    assert!(q.publish(), "slot 7 of the first lap is behind slot 2");
    set(&q, 1, EVENT_F_DESC);
    q.add(&[seg(64, true)], 11).unwrap();
    assert!(
        q.publish(),
        "slot 1 of the second lap was published a burst ago"
    );
}
