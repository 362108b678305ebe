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
    /// VIRTIO_F_IN_ORDER was negotiated: one used descriptor may stand for a batch (§2.8.9).
    in_order: bool,
    /// The id of the buffer whose first descriptor is at each slot (the driver's record of
    /// the order it made buffers available in, which IN_ORDER batches follow).
    head_id: Vec<u16>,
    /// IN_ORDER: the buffers of the batch being handed back that are still to go, and the
    /// length and flags of its used descriptor (those of its last buffer).
    batch_rest: Option<(u16, u32, u16)>,
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
            in_order: false,
            head_id: vec![0; usize::from(size)],
            batch_rest: None,
            fault: None,
        }
    }

    /// With VIRTIO_F_IN_ORDER negotiated: the device may return a batch of buffers with one
    /// used descriptor, at the batch's first slot, carrying the id (and length) of its last
    /// buffer, and skip the other slots (virtio 1.2 §2.8.9; DPDK's vhost does so for a
    /// transmit burst). The buffers before that one, in the order they were made available,
    /// come back with length 0.
    pub fn with_in_order(mut self, in_order: bool) -> Self {
        self.in_order = in_order;
        self
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
        if let Some(h) = self.head_id.get_mut(usize::from(self.next_avail)) {
            *h = id;
        }
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
        if let Some(rest) = self.batch_rest {
            return Some(self.pop_batched(rest));
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
        if self.in_order && self.head_id.get(usize::from(self.next_used)) != Some(&id) {
            return Some(self.start_batch(id, len, flags));
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
        Some(self.hand_back(id, entry, len, flags))
    }

    /// Frees buffer `id`'s slots and gives its token back with its used length, checked.
    #[inline(always)]
    fn hand_back(&mut self, id: u16, entry: InFlight<T>, len: u32, flags: u16) -> Used<T> {
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
            return Used::BadLen(entry.token, len);
        }
        Used::Done(entry.token, len)
    }

    /// IN_ORDER: the used descriptor at `next_used` names buffer `id`, not the one made
    /// available there: a batch from that one through `id`. Counts it among the published
    /// buffers in flight (by the driver's own records) and hands back its first buffer; an
    /// `id` that is not among them is [`Used::BadId`], as without IN_ORDER.
    #[cold]
    fn start_batch(&mut self, id: u16, len: u32, flags: u16) -> Used<T> {
        let size = self.layout.size;
        let published = size - self.free_descs - self.added;
        let (mut slot, mut descs, mut n) = (self.next_used, 0u16, 0u16);
        let found = loop {
            let here = self.head_id[usize::from(slot)];
            let Some(e) = self.shadow[usize::from(here)].as_ref() else {
                break false;
            };
            descs += e.descs;
            n += 1;
            if descs > published {
                break false;
            }
            if here == id {
                break true;
            }
            slot = ((u32::from(slot) + u32::from(e.descs)) % u32::from(size)) as u16;
        };
        if !found {
            self.advance_used(1);
            self.keep_fault(UsedFault::BadId {
                queue: self.index,
                id: u32::from(id),
                size,
            });
            return Used::BadId(u32::from(id));
        }
        self.pop_batched((n, len, flags))
    }

    /// IN_ORDER: hands back the next buffer of the batch `rest` (buffers left, the used
    /// length and flags, which belong to the last one).
    fn pop_batched(&mut self, (left, len, flags): (u16, u32, u16)) -> Used<T> {
        let id = self.head_id[usize::from(self.next_used)];
        let last = left <= 1;
        self.batch_rest = (!last).then_some((left - 1, len, flags));
        // Counted in flight by `start_batch`; `take_all` ends the batch.
        let Some(entry) = self.shadow[usize::from(id)].take() else {
            self.batch_rest = None;
            return Used::BadId(u32::from(id));
        };
        if last {
            self.hand_back(id, entry, len, flags)
        } else {
            self.hand_back(id, entry, 0, 0)
        }
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
        self.batch_rest = None;
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
mod tests;
