//! The device side of one of the frontend's rings, in the frontend's memory: split rings
//! (virtio 1.2 §2.7) here, packed rings (§2.8) in [`packed`](super::packed). A ring's parts
//! are translated once, when it is set up ([`GuestMap::range`]), and must each lie inside
//! one region of the memory table; the lcores then load and store ring fields at masked
//! offsets into those translated parts ([`HostRange`]), and read or write buffers through
//! [`GuestMap`], which checks every address and length against the table.
//!
//! # Why not `virtio-queue`'s `Queue` on the data path
//! `virtio-queue` walks a split ring through the `GuestMemory` trait: every ring index load,
//! descriptor read and used-entry write is a region lookup and a checked slice access. On a
//! 64-byte loopback (DPDK's virtio-user testpmd, ring 1024) that machinery took about three
//! quarters of the lcore (475 ns/pkt against DPDK vhost's 146 ns/pkt split, 575 against 101
//! packed). DPDK's vhost library translates ring addresses once, at `SET_VRING_ADDR`, and so
//! does this walker; `virtio-queue` still validates a split ring's layout when it is set up.
//!
//! Used entries are published in batches ([`GuestRing::publish`]): every entry of a batch
//! becomes visible to the driver at once (one used-index store for split rings, the first
//! entry's flags written last for packed ones), so that the buffers of a merged receive
//! packet (`MRG_RXBUF`) are never seen one without the others.

use std::num::Wrapping;
use std::sync::atomic::{Ordering, fence};

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

use super::error::RingFault;
use super::guest::{GuestMap, HostRange};
pub(crate) use super::packed::{BATCH, One, PackedRing};

/// Most descriptors in one chain: more is a lying driver (a loop, or a chain no net driver
/// makes; Linux without `INDIRECT_DESC` and without offloads uses one or two).
pub const MAX_CHAIN: u16 = 64;

/// `VIRTQ_DESC_F_NEXT`.
pub(crate) const F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`.
pub(crate) const F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`.
pub(crate) const F_INDIRECT: u16 = 4;
/// `VRING_AVAIL_F_NO_INTERRUPT` (split, without `EVENT_IDX`).
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a chain could not be used; it is given back with a used length of 0 and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainFault {
    /// Longer than [`MAX_CHAIN`] descriptors (a loop, or a driver that lies).
    TooLong,
    /// A `next` index outside the ring, or a chain longer than the ring (a loop).
    Broken,
    /// A device-writable descriptor in a chain to read, or a readable one in a chain to
    /// write.
    WrongDirection,
    /// An indirect descriptor (`INDIRECT_DESC` is not offered).
    Indirect,
    /// A buffer not inside the memory table (or past a region's end).
    Memory {
        /// The buffer's guest address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// More data than the packet buffer holds (receive), or a packet larger than the
    /// buffers the driver posted (transmit without `MRG_RXBUF`).
    TooBig,
}

/// A chain taken from the ring: what giving it back needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Popped {
    /// Split: the head index; packed: the buffer id.
    pub id: u16,
    /// Ring slots it took (packed).
    pub descs: u16,
}

/// A used entry waiting for [`GuestRing::publish`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Used {
    pub chain: Popped,
    pub len: u32,
}

/// What [`GuestRing::pop`] found.
pub(crate) enum Pop {
    /// Nothing available.
    Empty,
    /// A chain, every buffer handed to the visitor.
    Chain(Popped),
    /// A chain to give back unused.
    Bad(Popped, ChainFault),
}

/// Where the device stands in the available ring, to go back to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor(pub u16, pub bool);

/// Ring addresses in the frontend's guest-physical space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingAddrs {
    /// Descriptor table (split) or ring (packed).
    pub desc: u64,
    /// Available ring (split) or driver event suppression (packed).
    pub driver: u64,
    /// Used ring (split) or device event suppression (packed).
    pub device: u64,
}

/// One ring of the frontend, as the device walks it.
pub(crate) enum GuestRing {
    Split(Box<SplitRing>),
    Packed(Box<PackedRing>),
}

pub(crate) struct SplitRing {
    desc: HostRange,
    avail: HostRange,
    used: HostRange,
    size: u16,
    addrs: RingAddrs,
    event_idx: bool,
    next_avail: u16,
    /// The driver's available index as last read: read again only when caught up.
    avail_idx: u16,
    next_used: u16,
    signalled: u16,
}

pub(crate) fn unreadable(what: &'static str, addr: u64) -> RingFault {
    RingFault::Unreadable { what, addr }
}

impl GuestRing {
    /// A split ring resumed at `base` (`SET_VRING_BASE`), its used index as the driver left
    /// it; each part of the ring must be inside one region of `map`.
    pub(crate) fn split(
        map: &GuestMap,
        size: u16,
        addrs: RingAddrs,
        base: u16,
        event_idx: bool,
    ) -> Result<Self, RingFault> {
        let mem = map.mem();
        let bad = |_| RingFault::BadLayout { size, addrs };
        let mut q = Queue::new(size).map_err(bad)?;
        q.try_set_size(size).map_err(bad)?;
        q.try_set_desc_table_address(GuestAddress(addrs.desc))
            .map_err(bad)?;
        q.try_set_avail_ring_address(GuestAddress(addrs.driver))
            .map_err(bad)?;
        q.try_set_used_ring_address(GuestAddress(addrs.device))
            .map_err(bad)?;
        q.set_event_idx(event_idx);
        q.set_ready(true);
        if !q.is_valid(mem) {
            return Err(RingFault::OutsideMemory { size, addrs });
        }
        // Kicks are not read (the lcores poll): ask for none. With EVENT_IDX, an avail_event
        // that is never moved does the same.
        q.disable_notification(mem)
            .map_err(|_| unreadable("used flags", addrs.device))?;
        let n = usize::from(size);
        let event = if event_idx { 2 } else { 0 };
        let outside = RingFault::OutsideMemory { size, addrs };
        let desc = map.range(addrs.desc, 16 * n, 16).ok_or(outside)?;
        let avail = map
            .range(addrs.driver, 4 + 2 * n + event, 2)
            .ok_or(outside)?;
        let used = map
            .range(addrs.device, 4 + 8 * n + event, 4)
            .ok_or(outside)?;
        let used_idx = used
            .load_u16(2, Ordering::Acquire)
            .ok_or(unreadable("used index", addrs.device))?;
        Ok(Self::Split(Box::new(SplitRing {
            desc,
            avail,
            used,
            size,
            addrs,
            event_idx,
            next_avail: base,
            avail_idx: base,
            next_used: used_idx,
            signalled: used_idx,
        })))
    }

    /// A packed ring resumed at `base`; see [`PackedRing::new`].
    pub(crate) fn packed(
        map: &GuestMap,
        size: u16,
        addrs: RingAddrs,
        base: u16,
        in_order: bool,
    ) -> Result<Self, RingFault> {
        PackedRing::new(map, size, addrs, base, in_order).map(|p| Self::Packed(Box::new(p)))
    }

    /// What `GET_VRING_BASE` answers.
    pub(crate) fn base(&self) -> u16 {
        match self {
            Self::Split(s) => s.next_avail,
            Self::Packed(p) => p.base(),
        }
    }

    pub(crate) fn cursor(&self) -> Cursor {
        match self {
            Self::Split(s) => Cursor(s.next_avail, false),
            Self::Packed(p) => p.cursor(),
        }
    }

    /// Goes back to `c`: the chains popped since are popped again next time.
    pub(crate) fn rewind(&mut self, c: Cursor) {
        match self {
            Self::Split(s) => s.next_avail = c.0,
            Self::Packed(p) => p.rewind(c),
        }
    }

    /// Whether the driver has made a chain available (a peek, nothing taken).
    pub(crate) fn has_avail(&mut self) -> bool {
        match self {
            Self::Split(s) => s.has_avail(),
            Self::Packed(p) => p.has_avail(),
        }
    }

    /// Takes the next available chain, handing each of its buffers (those of the direction
    /// asked for: device-`writable` or not) to `visit` until it fails.
    pub(crate) fn pop(
        &mut self,
        writable: bool,
        visit: impl FnMut(u64, u32) -> Result<(), ChainFault>,
    ) -> Result<Pop, RingFault> {
        match self {
            Self::Split(s) => s.pop(writable, visit),
            Self::Packed(p) => p.pop(writable, visit),
        }
    }

    /// Takes a batch of single-descriptor buffers at once where the ring allows it (packed
    /// rings; see [`PackedRing::pop_batch`]); `None`: [`pop`](Self::pop) them one by one.
    pub(crate) fn pop_batch(&mut self, writable: bool) -> Result<Option<[One; BATCH]>, RingFault> {
        match self {
            Self::Split(_) => Ok(None),
            Self::Packed(p) => p.pop_batch(writable),
        }
    }

    /// Makes `used` visible to the driver, all at once; `read`: buffers the device read
    /// (the driver's transmit ring), which an `IN_ORDER` packed ring gives back as one.
    pub(crate) fn publish(&mut self, used: &[Used], read: bool) -> Result<(), RingFault> {
        if used.is_empty() {
            return Ok(());
        }
        match self {
            Self::Split(s) => s.publish(used),
            Self::Packed(p) => p.publish(used, read),
        }
    }

    /// Whether the driver asked to be called for what was published since the last call
    /// to this (its event index or flags).
    pub(crate) fn needs_call(&mut self) -> bool {
        // The used index (or flags) just stored must be visible before the driver's event
        // fields are read: the driver stores its event index, then fences and re-reads ours,
        // so a store-load reordering here loses the call it waits for (Linux's vhost_notify
        // and DPDK's vhost_vring_call_split fence here too).
        fence(Ordering::SeqCst);
        match self {
            Self::Split(s) => s.needs_call(),
            Self::Packed(p) => p.needs_call(),
        }
    }
}

/// Hands one descriptor's buffer to the visitor, checking its direction.
#[inline]
pub(crate) fn visit_one(
    fault: &mut Option<ChainFault>,
    writable: bool,
    flags: u16,
    addr: u64,
    len: u32,
    visit: &mut impl FnMut(u64, u32) -> Result<(), ChainFault>,
) {
    if fault.is_some() {
        return;
    }
    if flags & F_INDIRECT != 0 {
        *fault = Some(ChainFault::Indirect);
    } else if (flags & F_WRITE != 0) != writable {
        *fault = Some(ChainFault::WrongDirection);
    } else if let Err(f) = visit(addr, len) {
        *fault = Some(f);
    }
}

impl SplitRing {
    /// Reads the driver's available index; false if nothing new.
    fn refresh(&mut self) -> Result<bool, RingFault> {
        let avail = self
            .avail
            .load_u16(2, Ordering::Acquire)
            .ok_or(unreadable("available index", self.addrs.driver))?;
        if avail.wrapping_sub(self.next_avail) > self.size {
            return Err(RingFault::AvailJump {
                avail,
                next: self.next_avail,
            });
        }
        self.avail_idx = avail;
        Ok(avail != self.next_avail)
    }

    fn has_avail(&mut self) -> bool {
        // A jump reads as available: `pop` reports it.
        self.avail_idx != self.next_avail || self.refresh().unwrap_or(true)
    }

    /// Starts fetching the next chain's head descriptor (the driver wrote it on another core)
    /// while this one is copied.
    fn prefetch_next(&self) {
        if self.next_avail == self.avail_idx {
            return;
        }
        let slot = 4 + 2 * usize::from(self.next_avail & (self.size - 1));
        if let Some(h) = self.avail.load_u16(slot, Ordering::Relaxed) {
            self.desc.prefetch(16 * usize::from(h));
        }
    }

    /// Descriptor `i`: address, length, flags, next.
    fn desc(&self, i: u16) -> Result<(u64, u32, u16, u16), RingFault> {
        let (addr, w) = self
            .desc
            .read_desc(16 * usize::from(i))
            .ok_or(unreadable("descriptor", self.addrs.desc))?;
        Ok((addr, w as u32, (w >> 32) as u16, (w >> 48) as u16))
    }

    fn pop(
        &mut self,
        writable: bool,
        mut visit: impl FnMut(u64, u32) -> Result<(), ChainFault>,
    ) -> Result<Pop, RingFault> {
        if self.avail_idx == self.next_avail && !self.refresh()? {
            return Ok(Pop::Empty);
        }
        let slot = 4 + 2 * usize::from(self.next_avail & (self.size - 1));
        let head = self
            .avail
            .load_u16(slot, Ordering::Relaxed)
            .ok_or(unreadable("available ring", self.addrs.driver))?;
        self.next_avail = self.next_avail.wrapping_add(1);
        if head >= self.size {
            return Err(RingFault::BadHead { head });
        }
        self.prefetch_next();
        let popped = Popped { id: head, descs: 1 };
        let (mut i, mut n, mut fault) = (head, 0u16, None);
        loop {
            let (addr, len, flags, next) = self.desc(i)?;
            n += 1;
            visit_one(&mut fault, writable, flags, addr, len, &mut visit);
            if flags & F_NEXT == 0 {
                break;
            }
            // Longer than the table: a loop; a bad index: a broken chain.
            if n == self.size || next >= self.size {
                return Ok(Pop::Bad(popped, ChainFault::Broken));
            }
            if n == MAX_CHAIN {
                return Ok(Pop::Bad(popped, ChainFault::TooLong));
            }
            i = next;
        }
        Ok(match fault {
            Some(f) => Pop::Bad(popped, f),
            None => Pop::Chain(popped),
        })
    }

    fn publish(&mut self, used: &[Used]) -> Result<(), RingFault> {
        let fault = || unreadable("used ring", self.addrs.device);
        let mut idx = self.next_used;
        for u in used {
            let at = 4 + 8 * usize::from(idx & (self.size - 1));
            self.used
                .write_u32(at, u32::from(u.chain.id))
                .ok_or_else(fault)?;
            self.used.write_u32(at + 4, u.len).ok_or_else(fault)?;
            idx = idx.wrapping_add(1);
        }
        self.used
            .store_u16(2, idx, Ordering::Release)
            .ok_or_else(fault)?;
        self.next_used = idx;
        Ok(())
    }

    fn needs_call(&mut self) -> bool {
        let (old, new) = (Wrapping(self.signalled), Wrapping(self.next_used));
        self.signalled = new.0;
        if self.event_idx {
            // used_event sits after the available ring (§2.7.10).
            let at = 4 + 2 * usize::from(self.size);
            let Some(event) = self.avail.load_u16(at, Ordering::Relaxed) else {
                return true;
            };
            (new - Wrapping(event) - Wrapping(1)).0 < (new - old).0
        } else {
            let flags = self.avail.load_u16(0, Ordering::Relaxed).unwrap_or(0);
            flags & AVAIL_F_NO_INTERRUPT == 0
        }
    }
}
