//! [`PackedQueue`]: one packed virtqueue (virtio 1.2 §2.8) in [`SharedMemory`], with the
//! driver's own shadow of every buffer it posted.
//!
//! One ring of 16-byte descriptors `{le64 addr, le32 len, le16 id, le16 flags}` carries both
//! directions: the driver marks a descriptor available by writing `AVAIL` equal to its wrap
//! counter and `USED` the opposite; the device returns a buffer by writing one descriptor,
//! at its own used position, with the buffer id, the bytes written, and `AVAIL` = `USED` =
//! its wrap counter (§2.8.1–§2.8.6). Both wrap counters start at 1 and flip each time their
//! position passes the end of the ring. Two 4-byte event suppression structures, one per
//! side, replace the split ring's flags and event indices (§2.8.10).
//!
//! The driver adds buffers as it goes and makes them visible once per burst
//! ([`PackedQueue::publish`]): every descriptor is written in full except the flags of the
//! first one of the burst, which are stored last, with `Release` (§2.8.21.3). Used
//! descriptors are read one at a time ([`PackedQueue::pop_used`]), flags with `Acquire`,
//! and checked against the shadow before anything is followed:
//!
//! - flags that do not say "used in this lap" → not yet (a stale or an available
//!   descriptor, never an error);
//! - an id out of range or not in flight → [`Used::BadId`]; the driver moves past that one
//!   descriptor, and the buffer it overwrote stays in flight until the device is reset;
//! - a length larger than the writable bytes posted → [`Used::BadLen`], with the token, so
//!   the caller recovers the buffer without reading it.
//!
//! Each fault is also kept, with its details, as a [`UsedFault`] until
//! [`PackedQueue::take_fault`]. There is no index for a device to move too far: a packed
//! queue is never broken.
//!
//! No allocation after construction: the free id list and the shadow are sized once.

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use sluice_mempool::Iova;

use super::{DESC_F_NEXT, DESC_F_WRITE, InFlight, MAX_QUEUE_SIZE, Segment, Used, UsedFault};
use crate::SharedMemory;

/// Descriptor flag: available (compared with the driver's wrap counter).
pub const DESC_F_AVAIL: u16 = 1 << 7;
/// Descriptor flag: used (compared with the device's wrap counter).
pub const DESC_F_USED: u16 = 1 << 15;
/// Event suppression flags: notify (interrupt) on every buffer.
pub const EVENT_F_ENABLE: u16 = 0;
/// Event suppression flags: do not notify.
pub const EVENT_F_DISABLE: u16 = 1;
/// Event suppression flags: notify when the descriptor at `off_wrap` is reached (EVENT_IDX).
pub const EVENT_F_DESC: u16 = 2;

/// Byte offsets of a packed ring of `size` descriptors and its two event suppression
/// structures (`{le16 off_wrap, le16 flags}`) in one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedLayout {
    /// Descriptors (1 to 32768; the driver uses powers of two).
    pub size: u16,
    /// Descriptor ring (16-byte aligned, 16 bytes per entry).
    pub desc: usize,
    /// Driver event suppression (the driver area; written by the driver).
    pub driver: usize,
    /// Device event suppression (the device area; written by the device).
    pub device: usize,
    /// Total bytes.
    pub len: usize,
}

impl PackedLayout {
    /// The layout for `size` descriptors, or `None` unless 1 ≤ `size` ≤ 32768.
    pub fn new(size: u16) -> Option<Self> {
        if size == 0 || size > MAX_QUEUE_SIZE {
            return None;
        }
        // Each side's event structure on a cache line of its own, apart from the ring.
        let driver = (16 * usize::from(size)).next_multiple_of(64);
        let device = driver + 64;
        Some(Self {
            size,
            desc: 0,
            driver,
            device,
            len: device + 64,
        })
    }

    fn desc(&self, slot: u16) -> usize {
        self.desc + 16 * usize::from(slot)
    }
}

/// A packed virtqueue: ring memory plus the driver's shadow of it.
pub struct PackedQueue<T> {
    mem: Arc<SharedMemory>,
    layout: PackedLayout,
    /// The virtqueue's index on its device (named in faults).
    index: u16,
    /// Free buffer ids (a stack; capacity `size`).
    free_ids: Vec<u16>,
    /// In-flight buffers by id.
    shadow: Vec<Option<InFlight<T>>>,
    /// Ring slots not taken by a buffer in flight.
    free_descs: u16,
    /// Where the next descriptor goes, and the driver's wrap counter there.
    next_avail: u16,
    avail_wrap: bool,
    /// Where the next used descriptor is expected, and the wrap counter it will carry.
    next_used: u16,
    used_wrap: bool,
    /// The first descriptor of the burst not yet published and its flags (stored last).
    batch_head: Option<(u16, u16)>,
    /// Descriptors added since the last publish.
    added: u16,
    event_idx: bool,
    /// The last device fault found, until taken.
    fault: Option<UsedFault>,
}

impl<T> core::fmt::Debug for PackedQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PackedQueue")
            .field("index", &self.index)
            .field("size", &self.layout.size)
            .field("in_flight", &self.in_flight())
            .field("next_avail", &(self.next_avail, self.avail_wrap))
            .field("next_used", &(self.next_used, self.used_wrap))
            .field("fault", &self.fault)
            .finish()
    }
}

impl<T> PackedQueue<T> {
    /// Virtqueue `index` of its device over `mem` (at least `layout.len` bytes, zeroed),
    /// with the device asked for no interrupts (the driver polls).
    ///
    /// # Panics
    /// If `mem` is shorter than the layout (a driver bug).
    pub fn new(index: u16, mem: Arc<SharedMemory>, layout: PackedLayout, event_idx: bool) -> Self {
        assert!(
            mem.len() >= layout.len,
            "ring memory shorter than its layout"
        );
        let size = layout.size;
        mem.store_u16(layout.driver + 2, EVENT_F_DISABLE, Ordering::Relaxed);
        Self {
            mem,
            layout,
            index,
            free_ids: (0..size).rev().collect(),
            shadow: (0..size).map(|_| None).collect(),
            free_descs: size,
            next_avail: 0,
            avail_wrap: true,
            next_used: 0,
            used_wrap: true,
            batch_head: None,
            added: 0,
            event_idx,
            fault: None,
        }
    }

    /// Descriptors.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// The virtqueue's index on its device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The last device fault found in the ring, cleared by the call.
    pub fn take_fault(&mut self) -> Option<UsedFault> {
        self.fault.take()
    }

    /// Keeps `fault` for [`take_fault`](Self::take_fault).
    #[cold]
    fn keep_fault(&mut self, fault: UsedFault) {
        self.fault = Some(fault);
    }

    /// The ring's layout.
    pub fn layout(&self) -> PackedLayout {
        self.layout
    }

    /// IOVAs of the descriptor ring, driver area and device area (for queue set-up).
    pub fn iovas(&self) -> (Iova, Iova, Iova) {
        (
            self.mem.iova(self.layout.desc),
            self.mem.iova(self.layout.driver),
            self.mem.iova(self.layout.device),
        )
    }

    /// Free descriptors.
    #[inline]
    pub fn free_descs(&self) -> usize {
        usize::from(self.free_descs)
    }

    /// Descriptors in the device's hands (or posted and not yet published).
    #[inline]
    pub fn in_flight(&self) -> usize {
        usize::from(self.layout.size - self.free_descs)
    }

    /// Whether chains were added and not yet published.
    pub fn has_unpublished(&self) -> bool {
        self.batch_head.is_some()
    }

    /// Adds a buffer of `segs` (readable ones first) carrying `token`; it becomes visible
    /// to the device at the next [`publish`](Self::publish). Gives the token back if it does
    /// not fit or is empty.
    // Always inlined, as is `pop_used`, for the reason given at `SplitQueue::add`.
    #[inline(always)]
    pub fn add(&mut self, segs: &[Segment], token: T) -> Result<(), T> {
        if segs.is_empty() || segs.len() > usize::from(self.free_descs) {
            return Err(token);
        }
        // Every buffer in flight takes at least one slot, so a free slot means a free id.
        let Some(id) = self.free_ids.pop() else {
            return Err(token);
        };
        let wrap_bits = |wrap: bool| if wrap { DESC_F_AVAIL } else { DESC_F_USED };
        let mut writable = 0u32;
        for (i, s) in segs.iter().enumerate() {
            let slot = self.next_avail;
            let mut flags = wrap_bits(self.avail_wrap);
            if s.writable {
                flags |= DESC_F_WRITE;
                writable = writable.saturating_add(s.len);
            }
            if i + 1 < segs.len() {
                flags |= DESC_F_NEXT;
            }
            // Written whole, flags included, behind the burst's first descriptor, which the
            // device sees last: it does not look here before that one is available. The
            // first one gets flags 0 until the publish (AVAIL = USED: never available, and
            // not a used descriptor the driver reads either, as the driver never reads a
            // slot it is filling).
            let shown = if self.batch_head.is_none() {
                self.batch_head = Some((slot, flags));
                0
            } else {
                flags
            };
            // The id in every descriptor of the chain (the device reads it from the last).
            let tail = u64::from(s.len) | u64::from(id) << 32 | u64::from(shown) << 48;
            self.mem
                .store_u64s(self.layout.desc(slot), [s.iova.as_u64(), tail]);
            self.next_avail += 1;
            if self.next_avail == self.layout.size {
                self.next_avail = 0;
                self.avail_wrap = !self.avail_wrap;
            }
        }
        let n = segs.len() as u16;
        self.free_descs -= n;
        self.added += n;
        self.shadow[usize::from(id)] = Some(InFlight {
            token,
            writable,
            descs: n,
        });
        Ok(())
    }

    /// Makes every buffer added since the last call visible to the device and says whether
    /// it asked to be notified (§2.8.10, §2.8.21.3). Returns false when there was nothing to
    /// publish.
    #[inline]
    pub fn publish(&mut self) -> bool {
        let Some((slot, flags)) = self.batch_head.take() else {
            return false;
        };
        let added = core::mem::take(&mut self.added);
        // §2.8.21.3: the device polls the flags of the descriptor at its position and reads
        // the rest once they say "available"; every other word of the burst (addresses,
        // lengths, ids, the flags of the later descriptors) must be visible before this
        // store makes the first one available. The Release store is that write barrier
        // (Linux `virtio_wmb` before the head's flags in `virtqueue_add_packed`).
        self.mem
            .store_u16(self.layout.desc(slot) + 14, flags, Ordering::Release);
        // A full barrier between making the descriptors available and reading the device's
        // event suppression, or the device could miss them while we read a stale
        // "disable" (Linux `virtio_mb` in `virtqueue_kick_prepare_packed`).
        fence(Ordering::SeqCst);
        let event = self.mem.load_u32(self.layout.device, Ordering::Relaxed);
        let (off_wrap, ev_flags) = (event as u16, (event >> 16) as u16);
        match ev_flags & 3 {
            EVENT_F_DISABLE => false,
            EVENT_F_DESC if self.event_idx => self.event_wants_notify(off_wrap, added),
            // ENABLE, or a value the device may not write: notifying is always safe.
            _ => true,
        }
    }

    /// Whether the device's event position `off_wrap` (offset, wrap counter in bit 15) asks
    /// to hear of the `added` descriptors just published: it is one of them
    /// (vring_need_event on packed rings), or it is one published before them.
    ///
    /// The second case is a stale request, and notifying is what keeps the queue moving.
    /// QEMU 7.2's virtio-net transmit completion (`virtio_net_tx_complete`) enables
    /// notifications with the position it had reached, then flushes on past it and leaves
    /// the request in place when it runs out of descriptors. It then waits for a descriptor
    /// it has already taken, and a driver that notifies only for the requested one fills
    /// its ring one short of it and stalls (seen in the guest: the device asked for slot 34
    /// while the driver, all 256 descriptors in flight, had published up to 33). DPDK's PMD
    /// avoids this by notifying whenever notifications are not disabled; this keeps the
    /// event index for a request ahead of the burst, within a ring of it, and skips only that
    /// notification.
    fn event_wants_notify(&self, off_wrap: u16, added: u16) -> bool {
        // Positions over two laps: (wrap counter, offset) → 0 .. 2·size, the lap with
        // wrap counter 1 first.
        let size = u32::from(self.layout.size);
        let lap = 2 * size;
        let pos = |off: u32, wrap: bool| (off + if wrap { 0 } else { size }) % lap;
        let new = pos(u32::from(self.next_avail), self.avail_wrap);
        let old = (new + lap - u32::from(added)) % lap;
        let event = pos(u32::from(off_wrap & 0x7fff) % lap, off_wrap & 0x8000 != 0);
        // `event` from the burst's first descriptor: [0, added) is the burst, [added, size)
        // is ahead of it (the device will be told when the driver gets there), and
        // [size, lap) is behind it, up to a ring back.
        let ahead = (event + lap - old) % lap;
        ahead < u32::from(added) || ahead >= size
    }

    /// Takes the next used buffer, if the device has returned one.
    #[inline(always)]
    pub fn pop_used(&mut self) -> Option<Used<T>> {
        // Nothing posted, nothing can come back (and a bogus descriptor here is overwritten
        // by the next post).
        if self.free_descs == self.layout.size {
            return None;
        }
        let at = self.layout.desc(self.next_used);
        // The descriptor's second word in one load: `len` u32, `id` u16, `flags` u16. The
        // device writes id and length before the flags (§2.8.6); an aligned 8-byte load is
        // one snapshot, so flags that say "used" come with that use's id and length, and
        // `Acquire` orders what follows (reading the buffer) after it.
        let tail = self.mem.load_u64(at + 8, Ordering::Acquire);
        let (len, id, flags) = (tail as u32, (tail >> 32) as u16, (tail >> 48) as u16);
        let lap = if self.used_wrap {
            DESC_F_AVAIL | DESC_F_USED
        } else {
            0
        };
        if flags & (DESC_F_AVAIL | DESC_F_USED) != lap {
            // Still available, or used in an earlier lap: not yet.
            return None;
        }
        let Some(entry) = self.shadow.get_mut(usize::from(id)).and_then(Option::take) else {
            // Move past this one descriptor: a device that wrote it there consumed it.
            self.advance_used(1);
            self.keep_fault(UsedFault::BadId {
                queue: self.index,
                id: u32::from(id),
                size: self.layout.size,
            });
            return Some(Used::BadId(u32::from(id)));
        };
        self.free_ids.push(id);
        self.free_descs += entry.descs;
        self.advance_used(entry.descs);
        // §2.8.4 makes the length reserved in a used descriptor without WRITE, but QEMU 7.2
        // never sets WRITE there (`virtqueue_packed_fill_desc`) and Linux reads the length
        // regardless: it counts for any buffer with writable bytes. A read-only buffer
        // (transmit) was written nothing, whatever a device leaves there without WRITE.
        let len = if entry.writable == 0 && flags & DESC_F_WRITE == 0 {
            0
        } else {
            len
        };
        if len > entry.writable {
            self.keep_fault(UsedFault::BadLen {
                queue: self.index,
                id,
                len,
                max: entry.writable,
            });
            return Some(Used::BadLen(entry.token, len));
        }
        Some(Used::Done(entry.token, len))
    }

    fn advance_used(&mut self, n: u16) {
        // `n <= size`: the driver's own chain length, or 1.
        let next = u32::from(self.next_used) + u32::from(n);
        if next >= u32::from(self.layout.size) {
            self.next_used = (next - u32::from(self.layout.size)) as u16;
            self.used_wrap = !self.used_wrap;
        } else {
            self.next_used = next as u16;
        }
    }

    /// Takes every in-flight token back (after the device was reset, or to park them until
    /// it is), and forgets the ring's state. The queue must be set up again before use.
    pub fn take_all(&mut self) -> impl Iterator<Item = T> + '_ {
        self.free_ids = (0..self.layout.size).rev().collect();
        self.free_descs = self.layout.size;
        self.next_avail = 0;
        self.avail_wrap = true;
        self.next_used = 0;
        self.used_wrap = true;
        self.batch_head = None;
        self.added = 0;
        self.shadow
            .iter_mut()
            .filter_map(|s| s.take().map(|f| f.token))
    }

    /// The ring memory (to keep it alive until the device is reset).
    pub fn memory(&self) -> Arc<SharedMemory> {
        self.mem.clone()
    }
}

#[cfg(test)]
mod tests {
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
}
