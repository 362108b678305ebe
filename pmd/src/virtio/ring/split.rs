//! [`SplitQueue`]: one split virtqueue (virtio 1.2 §2.7) in [`SharedMemory`], with the
//! driver's own shadow of every chain it posted.
//!
//! The driver writes descriptors and available-ring slots as it adds chains, and publishes
//! the available index once per burst ([`SplitQueue::publish`]), which also says whether the
//! device asked to be notified. It reaps the used ring with [`SplitQueue::pop_used`]: the
//! used index is loaded with `Acquire` (the device writes an entry before the index that
//! counts it, virtio 1.2 §2.7.8.2, so the entries are read after it) and every entry is
//! checked against the shadow before anything is followed:
//!
//! - an id that is out of range, or not the head of a chain in flight → [`Used::BadId`];
//! - a length larger than the writable bytes posted → [`Used::BadLen`], with the token, so
//!   the caller recovers the buffer without reading it;
//! - a used index more than the queue size ahead of what was reaped → the queue is
//!   [`broken`](SplitQueue::is_broken) and returns nothing more.
//!
//! Each fault is also kept, with its details, as a [`UsedFault`] until
//! [`SplitQueue::take_fault`].
//!
//! No allocation after construction: the free list and shadow are sized once.

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use sluice_mempool::Iova;

use super::{DESC_F_NEXT, DESC_F_WRITE, InFlight, MAX_QUEUE_SIZE, Segment, Used, UsedFault};
use crate::SharedMemory;

/// Available-ring flag: the driver wants no interrupts.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device wants no notifications.
pub const USED_F_NO_NOTIFY: u16 = 1;

/// With EVENT_IDX, how far ahead of the published available index `used_event` is kept, so
/// the device never has a reason to interrupt. It interrupts when its used index steps from
/// `old` past `used_event` (virtio 1.2 §2.7.7.2, vring_need_event). Its used index never
/// passes the published available index and is at most a ring (≤ 32768) behind it, so
/// `used_event` = published + 0x7FFF lies beyond every step it can take: it is
/// (published − old) + 0x7FFF ahead of `old`, no more than 0xFFFF (no wrap) and more than
/// any step. [`SplitQueue::publish`] rewrites it before each index it publishes.
const USED_EVENT_AHEAD: u16 = 0x7FFF;

/// Byte offsets of the three parts of a split ring of `size` entries in one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Entries (a power of two).
    pub size: u16,
    /// Descriptor table (16-byte aligned, 16 bytes per entry).
    pub desc: usize,
    /// Available ring (2-byte aligned: flags, idx, ring\[size\], used_event).
    pub avail: usize,
    /// Used ring (4-byte aligned: flags, idx, {id, len}\[size\], avail_event).
    pub used: usize,
    /// Total bytes.
    pub len: usize,
}

impl RingLayout {
    /// The layout for `size` entries, or `None` unless `size` is a power of two ≤ 32768.
    pub fn new(size: u16) -> Option<Self> {
        if !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return None;
        }
        let q = usize::from(size);
        let avail = 16 * q;
        // The used ring starts 4-byte aligned after `used_event`; the driver-written and
        // device-written parts are on separate cache lines (64-byte alignment).
        let used = (avail + 6 + 2 * q).next_multiple_of(64);
        let len = used + 6 + 8 * q;
        Some(Self {
            size,
            desc: 0,
            avail,
            used,
            len,
        })
    }

    fn avail_ring(&self, slot: u16) -> usize {
        self.avail + 4 + 2 * usize::from(slot)
    }

    /// Offset of `used_event` (the driver's interrupt threshold; with EVENT_IDX kept out of the
    /// device's reach while polling).
    pub fn used_event(&self) -> usize {
        self.avail + 4 + 2 * usize::from(self.size)
    }

    fn used_elem(&self, slot: u16) -> usize {
        self.used + 4 + 8 * usize::from(slot)
    }

    /// Offset of `avail_event` (the device's notification threshold).
    pub fn avail_event(&self) -> usize {
        self.used + 4 + 8 * usize::from(self.size)
    }
}

/// A split virtqueue: ring memory plus the driver's shadow of it.
pub struct SplitQueue<T> {
    mem: Arc<SharedMemory>,
    layout: RingLayout,
    /// The virtqueue's index on its device (named in faults).
    index: u16,
    mask: u16,
    /// Free descriptor ids (a stack; capacity `size`).
    free: Vec<u16>,
    /// The driver's copy of each descriptor's `next` (never read back from the device).
    next: Vec<u16>,
    /// In-flight chains by head id.
    shadow: Vec<Option<InFlight<T>>>,
    /// The next available index to write (shadow of `avail.idx` plus unpublished slots).
    avail_idx: u16,
    /// The available index the device last saw.
    published: u16,
    /// The next used index to reap.
    last_used: u16,
    /// The used index last read from the device (entries up to it are valid to read).
    seen_used: u16,
    event_idx: bool,
    broken: bool,
    /// The last device fault found, until taken.
    fault: Option<UsedFault>,
}

impl<T> core::fmt::Debug for SplitQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SplitQueue")
            .field("index", &self.index)
            .field("size", &self.layout.size)
            .field("in_flight", &self.in_flight())
            .field("avail_idx", &self.avail_idx)
            .field("last_used", &self.last_used)
            .field("broken", &self.broken)
            .field("fault", &self.fault)
            .finish()
    }
}

impl<T> SplitQueue<T> {
    /// Virtqueue `index` of its device over `mem` (at least `layout.len` bytes, zeroed),
    /// with interrupts suppressed.
    ///
    /// # Panics
    /// If `mem` is shorter than the layout (a driver bug).
    pub fn new(index: u16, mem: Arc<SharedMemory>, layout: RingLayout, event_idx: bool) -> Self {
        assert!(
            mem.len() >= layout.len,
            "ring memory shorter than its layout"
        );
        let size = layout.size;
        // Polling: no interrupts (virtio 1.2 §2.7.7), and the queue's MSI-X vector is left at
        // NO_VECTOR besides. With EVENT_IDX the flags must stay 0 (§2.7.7.1) and `used_event`
        // does it instead (`USED_EVENT_AHEAD`); the memory starts zeroed.
        if event_idx {
            mem.store_u16(layout.used_event(), USED_EVENT_AHEAD, Ordering::Relaxed);
        } else {
            mem.store_u16(layout.avail, AVAIL_F_NO_INTERRUPT, Ordering::Relaxed);
        }
        Self {
            mem,
            layout,
            index,
            mask: size - 1,
            free: (0..size).rev().collect(),
            next: vec![0; usize::from(size)],
            shadow: (0..size).map(|_| None).collect(),
            avail_idx: 0,
            published: 0,
            last_used: 0,
            seen_used: 0,
            event_idx,
            broken: false,
            fault: None,
        }
    }

    /// Entries.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// The virtqueue's index on its device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The ring's layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// IOVAs of the descriptor table, available ring and used ring (for queue set-up).
    pub fn iovas(&self) -> (Iova, Iova, Iova) {
        (
            self.mem.iova(self.layout.desc),
            self.mem.iova(self.layout.avail),
            self.mem.iova(self.layout.used),
        )
    }

    /// Free descriptors.
    #[inline]
    pub fn free_descs(&self) -> usize {
        self.free.len()
    }

    /// Descriptors in the device's hands (or posted and not yet published).
    #[inline]
    pub fn in_flight(&self) -> usize {
        usize::from(self.layout.size) - self.free.len()
    }

    /// Whether a device fault stopped the queue.
    #[inline]
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The last device fault found in the used ring, cleared by the call.
    pub fn take_fault(&mut self) -> Option<UsedFault> {
        self.fault.take()
    }

    /// Keeps `fault` for [`take_fault`](Self::take_fault) and gives it back.
    #[cold]
    fn keep_fault(&mut self, fault: UsedFault) -> UsedFault {
        self.fault = Some(fault);
        fault
    }

    /// Adds a chain of `segs` (readable ones first) carrying `token`; it becomes visible to
    /// the device at the next [`publish`](Self::publish). Gives the token back if the chain
    /// does not fit, is empty, or the queue is broken.
    // Always inlined, as is `pop_used`: left to itself the compiler calls both out of line
    // from every burst loop (once per packet), and the call keeps the queue's fields from
    // staying in registers across the loop.
    #[inline(always)]
    pub fn add(&mut self, segs: &[Segment], token: T) -> Result<(), T> {
        if segs.is_empty() || segs.len() > self.free.len() || self.broken {
            return Err(token);
        }
        let mut writable = 0u32;
        let mut head = 0u16;
        // The previous descriptor: written once its successor (its `next`) is known.
        let mut prev: Option<(u16, &Segment)> = None;
        for (i, s) in segs.iter().enumerate() {
            // `segs.len() <= free.len()` was checked, so the pop cannot fail.
            let Some(id) = self.free.pop() else {
                return Err(token);
            };
            if i == 0 {
                head = id;
            }
            if let Some((p, ps)) = prev {
                self.next[usize::from(p)] = id;
                self.store_desc(p, ps, DESC_F_NEXT, id);
            }
            if s.writable {
                writable = writable.saturating_add(s.len);
            }
            prev = Some((id, s));
        }
        if let Some((p, ps)) = prev {
            self.store_desc(p, ps, 0, 0);
        }
        self.shadow[usize::from(head)] = Some(InFlight {
            token,
            writable,
            descs: segs.len() as u16,
        });
        let slot = self.avail_idx & self.mask;
        self.mem
            .store_u16(self.layout.avail_ring(slot), head, Ordering::Relaxed);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        Ok(())
    }

    /// Writes descriptor `id` for `seg`, with `flags` (besides WRITE) and `next`.
    #[inline]
    fn store_desc(&self, id: u16, seg: &Segment, flags: u16, next: u16) {
        let flags = if seg.writable {
            flags | DESC_F_WRITE
        } else {
            flags
        };
        // virtio 1.2 §2.7.5: `addr` u64, then `len` u32, `flags` u16 and `next` u16 as one
        // 8-byte word: two stores and one bounds check.
        let tail = u64::from(seg.len) | u64::from(flags) << 32 | u64::from(next) << 48;
        self.mem.store_u64s(
            self.layout.desc + 16 * usize::from(id),
            [seg.iova.as_u64(), tail],
        );
    }

    /// Makes every chain added since the last call visible to the device and says whether
    /// it asked to be notified (virtio 1.2 §2.7.13.4). Returns false when there was nothing
    /// to publish.
    #[inline]
    pub fn publish(&mut self) -> bool {
        let (old, new) = (self.published, self.avail_idx);
        if old == new {
            return false;
        }
        if self.event_idx {
            // Before the index, so a device that sees the index sees this threshold too.
            let event = new.wrapping_add(USED_EVENT_AHEAD);
            self.mem
                .store_u16(self.layout.used_event(), event, Ordering::Relaxed);
        }
        // virtio 1.2 §2.7.13.3.1: the descriptors and ring slots written above must be
        // visible before the index that hands them over (Linux `virtio_wmb`; the Release
        // store is that write barrier).
        self.mem
            .store_u16(self.layout.avail + 2, new, Ordering::Release);
        self.published = new;
        // virtio 1.2 §2.7.13.4.1: a full barrier between publishing the index and reading
        // the device's suppression state, or the device could miss the new entries while we
        // read a stale "no notify" (Linux `virtio_mb` in `virtqueue_kick_prepare_split`).
        fence(Ordering::SeqCst);
        if self.event_idx {
            let event = self
                .mem
                .load_u16(self.layout.avail_event(), Ordering::Relaxed);
            // vring_need_event: notify if `event` lies in (old, new].
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.mem.load_u16(self.layout.used, Ordering::Relaxed) & USED_F_NO_NOTIFY == 0
        }
    }

    /// Whether chains were added and not yet published.
    pub fn has_unpublished(&self) -> bool {
        self.avail_idx != self.published
    }

    /// Loads the device's used index (`Acquire`: the entries are read after it, §2.7.8.2) and
    /// returns how many entries are ready, or the fault if the index jumped by more than
    /// the queue size (the queue is then broken).
    #[inline]
    pub fn used_ready(&mut self) -> Result<u16, UsedFault> {
        if self.broken {
            return Ok(0);
        }
        let device = self.mem.load_u16(self.layout.used + 2, Ordering::Acquire);
        let ready = device.wrapping_sub(self.last_used);
        // virtio-queue's check: a device cannot have returned more than a ring's worth.
        // Fewer bogus entries are each caught by the shadow in `pop_used`.
        if ready > self.layout.size {
            self.broken = true;
            return Err(self.keep_fault(UsedFault::IndexJump {
                queue: self.index,
                last: self.last_used,
                device,
                size: self.layout.size,
            }));
        }
        self.seen_used = device;
        Ok(ready)
    }

    /// Takes the next used entry among those [`used_ready`](Self::used_ready) counted.
    #[inline(always)]
    pub fn pop_used(&mut self) -> Option<Used<T>> {
        if self.broken || self.last_used == self.seen_used {
            return None;
        }
        let at = self.layout.used_elem(self.last_used & self.mask);
        self.last_used = self.last_used.wrapping_add(1);
        let [id, len] = self.mem.load_u32s(at);
        let Some(entry) = usize::try_from(id)
            .ok()
            .and_then(|i| self.shadow.get_mut(i))
            .and_then(Option::take)
        else {
            self.keep_fault(UsedFault::BadId {
                queue: self.index,
                id,
                size: self.layout.size,
            });
            return Some(Used::BadId(id));
        };
        // The shadow has `size` (≤ 32768) entries, so a found id fits a u16.
        let head = id as u16;
        // Free the chain by the driver's own `next` links, never the device's.
        let mut d = head;
        for _ in 0..entry.descs {
            self.free.push(d);
            d = self.next[usize::from(d)];
        }
        if len > entry.writable {
            self.keep_fault(UsedFault::BadLen {
                queue: self.index,
                id: head,
                len,
                max: entry.writable,
            });
            return Some(Used::BadLen(entry.token, len));
        }
        Some(Used::Done(entry.token, len))
    }

    /// Takes every in-flight token back (after the device was reset, or to park them until
    /// it is), and forgets the ring's state. The queue must be set up again before use.
    pub fn take_all(&mut self) -> impl Iterator<Item = T> + '_ {
        self.free = (0..self.layout.size).rev().collect();
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

    fn queue(size: u16, event_idx: bool) -> SplitQueue<u32> {
        let layout = RingLayout::new(size).unwrap();
        SplitQueue::new(0, super::super::test_memory(layout.len), layout, event_idx)
    }

    fn seg() -> Segment {
        Segment {
            iova: Iova(0x1000),
            len: 64,
            writable: true,
        }
    }

    /// The device's test (virtio 1.2 §2.7.7.2): interrupt if its used index stepped from
    /// `old` to `new` past `event`.
    fn need_event(event: u16, new: u16, old: u16) -> bool {
        new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
    }

    #[test]
    fn interrupts_are_suppressed_by_the_flag_only_without_event_idx() {
        let flags = |q: &SplitQueue<u32>| q.mem.load_u16(q.layout.avail, Ordering::Relaxed);
        assert_eq!(flags(&queue(8, false)), AVAIL_F_NO_INTERRUPT);
        let mut q = queue(8, true);
        assert_eq!(flags(&q), 0, "virtio 1.2 §2.7.7.1: flags 0 with EVENT_IDX");
        q.add(&[seg()], 1).unwrap();
        q.publish();
        assert_eq!(flags(&q), 0);
    }

    /// Plays a device that completes buffers in steps of every size up to what is
    /// available, through several wraps of the 16-bit indices, and checks at each step that
    /// `used_event` gives it no reason to interrupt.
    #[test]
    fn used_event_stays_out_of_the_devices_reach() {
        for size in [1u16, 8, 256, 32768] {
            let mut q = queue(size, true);
            let (mem, l) = (q.mem.clone(), q.layout);
            let (mut used, mut done, mut step) = (0u16, 0u32, 0u16);
            while done < 2 * 65536 {
                while q.free_descs() > 0 {
                    q.add(&[seg()], 0).unwrap();
                }
                q.publish();
                let avail = mem.load_u16(l.avail + 2, Ordering::Acquire);
                step = step % size + 1;
                let n = step.min(avail.wrapping_sub(used));
                for i in 0..n {
                    let slot = used.wrapping_add(i) & (size - 1);
                    let id = mem.load_u16(l.avail_ring(slot), Ordering::Relaxed);
                    mem.store_u32(l.used_elem(slot), u32::from(id), Ordering::Relaxed);
                    mem.store_u32(l.used_elem(slot) + 4, 0, Ordering::Relaxed);
                }
                let new = used.wrapping_add(n);
                let event = mem.load_u16(l.used_event(), Ordering::Relaxed);
                assert!(
                    !need_event(event, new, used),
                    "size {size}: {used} -> {new}"
                );
                mem.store_u16(l.used + 2, new, Ordering::Release);
                used = new;
                done += u32::from(n);
                assert_eq!(q.used_ready(), Ok(n));
                while q.pop_used().is_some() {}
            }
        }
    }

    #[test]
    fn layout_matches_the_spec_sizes() {
        let l = RingLayout::new(256).unwrap();
        assert_eq!(l.avail, 4096);
        assert_eq!(l.used % 4, 0);
        assert!(l.used >= l.avail + 6 + 512);
        assert_eq!(l.len, l.used + 6 + 8 * 256);
        assert_eq!(l.used_event(), l.avail + 4 + 512);
        assert_eq!(l.avail_event(), l.used + 4 + 2048);
        assert!(RingLayout::new(100).is_none());
        assert!(RingLayout::new(0).is_none());
        assert!(RingLayout::new(32768).is_some());
    }
}
