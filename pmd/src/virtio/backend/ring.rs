//! The device side of one of the frontend's rings, in the frontend's memory: split rings
//! (virtio 1.2 §2.7) popped through rust-vmm's `virtio_queue::Queue`, packed rings (§2.8)
//! through a small walker here (`virtio-queue` 0.18 has no packed queue). Every access goes
//! through `vm-memory`'s checked guest-memory calls: an address outside the memory table is
//! an error, never a read or write elsewhere.
//!
//! Used entries are published in batches ([`GuestRing::publish`]): every entry of a batch
//! becomes visible to the driver at once (one used-index store for split rings, the first
//! entry's flags written last for packed ones), so that the buffers of a merged receive
//! packet (`MRG_RXBUF`) are never seen one without the others.

use std::num::Wrapping;
use std::sync::atomic::{Ordering, fence};

use virtio_queue::{Error as QueueError, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use super::error::RingFault;

/// The frontend's memory, as the memory table maps it.
pub(crate) type Mem = GuestMemoryMmap<()>;

/// Most descriptors in one chain: more is a lying driver (a loop, or a chain no net driver
/// makes; Linux without `INDIRECT_DESC` and without offloads uses one or two).
pub const MAX_CHAIN: u16 = 64;

/// `VIRTQ_DESC_F_NEXT`.
const F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`.
const F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`.
const F_INDIRECT: u16 = 4;
/// `VIRTQ_DESC_F_AVAIL` (packed).
const F_AVAIL: u16 = 1 << 7;
/// `VIRTQ_DESC_F_USED` (packed).
const F_USED: u16 = 1 << 15;
/// `VRING_AVAIL_F_NO_INTERRUPT` (split, without `EVENT_IDX`).
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Packed event suppression flags (§2.8.10): enable, disable, descriptor-specific.
const EVENT_DISABLE: u16 = 1;
const EVENT_DESC: u16 = 2;

/// Why a chain could not be used; it is given back with a used length of 0 and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainFault {
    /// Longer than [`MAX_CHAIN`] descriptors (a loop, or a driver that lies).
    TooLong,
    /// A `next` index outside the ring, or a descriptor that could not be read.
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
pub(crate) struct Cursor(u16, bool);

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
    Packed(PackedRing),
}

pub(crate) struct SplitRing {
    q: Queue,
    size: u16,
    addrs: RingAddrs,
    event_idx: bool,
    next_used: u16,
    signalled: u16,
}

pub(crate) struct PackedRing {
    size: u16,
    addrs: RingAddrs,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
    signalled: u16,
}

fn unreadable(what: &'static str, addr: u64) -> RingFault {
    RingFault::Unreadable { what, addr }
}

impl GuestRing {
    /// A split ring resumed at `base` (`SET_VRING_BASE`), its used index as the driver left
    /// it; the whole ring must be inside `mem`.
    pub(crate) fn split(
        mem: &Mem,
        size: u16,
        addrs: RingAddrs,
        base: u16,
        event_idx: bool,
    ) -> Result<Self, RingFault> {
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
        q.set_next_avail(base);
        let used = q
            .used_idx(mem, Ordering::Acquire)
            .map_err(|_| unreadable("used index", addrs.device))?
            .0;
        // Kicks are not read (the lcores poll): ask for none. With EVENT_IDX, an avail_event
        // that is never moved does the same.
        q.disable_notification(mem)
            .map_err(|_| unreadable("used flags", addrs.device))?;
        Ok(Self::Split(Box::new(SplitRing {
            q,
            size,
            addrs,
            event_idx,
            next_used: used,
            signalled: used,
        })))
    }

    /// A packed ring resumed at `base` (index in bits 0-14, wrap counter in bit 15, as
    /// vhost-user carries it).
    pub(crate) fn packed(
        mem: &Mem,
        size: u16,
        addrs: RingAddrs,
        base: u16,
    ) -> Result<Self, RingFault> {
        if size == 0
            || size > 32768
            || !addrs.desc.is_multiple_of(16)
            || !addrs.driver.is_multiple_of(4)
            || !addrs.device.is_multiple_of(4)
        {
            return Err(RingFault::BadLayout { size, addrs });
        }
        let inside =
            |a: u64, len: usize| mem.check_range(GuestAddress(a), len, Permissions::ReadWrite);
        if !inside(addrs.desc, 16 * usize::from(size))
            || !inside(addrs.driver, 4)
            || !inside(addrs.device, 4)
        {
            return Err(RingFault::OutsideMemory { size, addrs });
        }
        let (next, wrap) = (base & 0x7fff, base & 0x8000 != 0);
        if next >= size {
            return Err(RingFault::BadLayout { size, addrs });
        }
        mem.store(
            EVENT_DISABLE.to_le(),
            GuestAddress(addrs.device + 2),
            Ordering::Release,
        )
        .map_err(|_| unreadable("device event suppression", addrs.device))?;
        Ok(Self::Packed(PackedRing {
            size,
            addrs,
            next_avail: next,
            avail_wrap: wrap,
            next_used: next,
            used_wrap: wrap,
            signalled: next,
        }))
    }

    /// What `GET_VRING_BASE` answers.
    pub(crate) fn base(&self) -> u16 {
        match self {
            Self::Split(s) => s.q.next_avail(),
            Self::Packed(p) => p.next_avail | if p.avail_wrap { 0x8000 } else { 0 },
        }
    }

    pub(crate) fn cursor(&self) -> Cursor {
        match self {
            Self::Split(s) => Cursor(s.q.next_avail(), false),
            Self::Packed(p) => Cursor(p.next_avail, p.avail_wrap),
        }
    }

    /// Goes back to `c`: the chains popped since are popped again next time.
    pub(crate) fn rewind(&mut self, c: Cursor) {
        match self {
            Self::Split(s) => s.q.set_next_avail(c.0),
            Self::Packed(p) => (p.next_avail, p.avail_wrap) = (c.0, c.1),
        }
    }

    /// Whether the driver has made a chain available (a peek, nothing taken).
    pub(crate) fn has_avail(&self, mem: &Mem) -> bool {
        match self {
            Self::Split(s) => {
                s.q.avail_idx(mem, Ordering::Acquire)
                    .is_ok_and(|i| i.0 != s.q.next_avail())
            }
            Self::Packed(p) => {
                let at = GuestAddress(p.slot(p.next_avail) + 14);
                mem.load::<u16>(at, Ordering::Acquire).is_ok_and(|f| {
                    let f = u16::from_le(f);
                    (f & F_AVAIL != 0) == p.avail_wrap && (f & F_USED != 0) != p.avail_wrap
                })
            }
        }
    }

    /// Takes the next available chain, handing each of its buffers (those of the direction
    /// asked for: device-`writable` or not) to `visit` until it fails.
    pub(crate) fn pop(
        &mut self,
        mem: &Mem,
        writable: bool,
        visit: impl FnMut(GuestAddress, u32) -> Result<(), ChainFault>,
    ) -> Result<Pop, RingFault> {
        match self {
            Self::Split(s) => s.pop(mem, writable, visit),
            Self::Packed(p) => p.pop(mem, writable, visit),
        }
    }

    /// Makes `used` visible to the driver, all at once.
    pub(crate) fn publish(&mut self, mem: &Mem, used: &[Used]) -> Result<(), RingFault> {
        if used.is_empty() {
            return Ok(());
        }
        match self {
            Self::Split(s) => s.publish(mem, used),
            Self::Packed(p) => p.publish(mem, used),
        }
    }

    /// Whether the driver asked to be called for what was published since the last call
    /// to this (its event index or flags).
    pub(crate) fn needs_call(&mut self, mem: &Mem) -> bool {
        // The used entries must be visible before the driver's event fields are read.
        fence(Ordering::SeqCst);
        match self {
            Self::Split(s) => s.needs_call(mem),
            Self::Packed(p) => p.needs_call(mem),
        }
    }
}

/// Hands one descriptor's buffer to the visitor, checking its direction.
fn visit_one(
    fault: &mut Option<ChainFault>,
    writable: bool,
    flags: u16,
    addr: u64,
    len: u32,
    visit: &mut impl FnMut(GuestAddress, u32) -> Result<(), ChainFault>,
) {
    if fault.is_some() {
        return;
    }
    if flags & F_INDIRECT != 0 {
        *fault = Some(ChainFault::Indirect);
    } else if (flags & F_WRITE != 0) != writable {
        *fault = Some(ChainFault::WrongDirection);
    } else if let Err(f) = visit(GuestAddress(addr), len) {
        *fault = Some(f);
    }
}

impl SplitRing {
    fn pop(
        &mut self,
        mem: &Mem,
        writable: bool,
        mut visit: impl FnMut(GuestAddress, u32) -> Result<(), ChainFault>,
    ) -> Result<Pop, RingFault> {
        let next = self.q.next_avail();
        let chain = match self.q.iter(mem) {
            Ok(mut it) => it.next(),
            Err(QueueError::InvalidAvailRingIndex) => {
                let avail = self.q.avail_idx(mem, Ordering::Relaxed).map_or(0, |w| w.0);
                return Err(RingFault::AvailJump { avail, next });
            }
            Err(_) => return Err(unreadable("available index", self.addrs.driver)),
        };
        let Some(mut chain) = chain else {
            return Ok(Pop::Empty);
        };
        let head = chain.head_index();
        if head >= self.size {
            return Err(RingFault::BadHead { head });
        }
        let popped = Popped { id: head, descs: 1 };
        let (mut n, mut more, mut fault) = (0u16, true, None);
        for d in chain.by_ref() {
            n += 1;
            more = d.has_next();
            let flags = if d.is_write_only() { F_WRITE } else { 0 }
                | if d.refers_to_indirect_table() {
                    F_INDIRECT
                } else {
                    0
                };
            visit_one(&mut fault, writable, flags, d.addr().0, d.len(), &mut visit);
            if more && n == MAX_CHAIN {
                return Ok(Pop::Bad(popped, ChainFault::TooLong));
            }
        }
        // The chain ended on a descriptor that says it goes on: a bad index or an unreadable
        // descriptor (virtio-queue stops there).
        if more {
            return Ok(Pop::Bad(popped, ChainFault::Broken));
        }
        Ok(match fault {
            Some(f) => Pop::Bad(popped, f),
            None => Pop::Chain(popped),
        })
    }

    fn publish(&mut self, mem: &Mem, used: &[Used]) -> Result<(), RingFault> {
        let ring = self.addrs.device;
        let mut idx = Wrapping(self.next_used);
        for u in used {
            let at = ring + 4 + 8 * u64::from(idx.0 % self.size);
            let elem = (u64::from(u.len) << 32) | u64::from(u.chain.id);
            mem.write_obj(elem.to_le(), GuestAddress(at))
                .map_err(|_| unreadable("used ring", at))?;
            idx += 1;
        }
        mem.store(idx.0.to_le(), GuestAddress(ring + 2), Ordering::Release)
            .map_err(|_| unreadable("used index", ring))?;
        self.next_used = idx.0;
        Ok(())
    }

    fn needs_call(&mut self, mem: &Mem) -> bool {
        let (old, new) = (Wrapping(self.signalled), Wrapping(self.next_used));
        self.signalled = new.0;
        let avail = self.addrs.driver;
        if self.event_idx {
            // used_event sits after the available ring (§2.7.10).
            let at = GuestAddress(avail + 4 + 2 * u64::from(self.size));
            let Ok(event) = mem.load::<u16>(at, Ordering::Relaxed) else {
                return true;
            };
            let event = Wrapping(u16::from_le(event));
            (new - event - Wrapping(1)).0 < (new - old).0
        } else {
            let flags: u16 = mem
                .load(GuestAddress(avail), Ordering::Relaxed)
                .unwrap_or(0);
            u16::from_le(flags) & AVAIL_F_NO_INTERRUPT == 0
        }
    }
}

impl PackedRing {
    fn slot(&self, i: u16) -> u64 {
        self.addrs.desc + 16 * u64::from(i)
    }

    fn step(i: &mut u16, wrap: &mut bool, size: u16) {
        *i += 1;
        if *i == size {
            *i = 0;
            *wrap = !*wrap;
        }
    }

    fn pop(
        &mut self,
        mem: &Mem,
        writable: bool,
        mut visit: impl FnMut(GuestAddress, u32) -> Result<(), ChainFault>,
    ) -> Result<Pop, RingFault> {
        let head_at = self.slot(self.next_avail);
        let flags: u16 = mem
            .load(GuestAddress(head_at + 14), Ordering::Acquire)
            .map_err(|_| unreadable("packed descriptor", head_at))?;
        let flags = u16::from_le(flags);
        // §2.8.1: available when AVAIL matches the wrap counter and USED does not.
        if (flags & F_AVAIL != 0) != self.avail_wrap || (flags & F_USED != 0) == self.avail_wrap {
            return Ok(Pop::Empty);
        }
        let (mut at, mut wrap) = (self.next_avail, self.avail_wrap);
        let (mut descs, mut fault) = (0u16, None);
        let id = loop {
            let slot = self.slot(at);
            let d: [u8; 16] = mem
                .read_obj(GuestAddress(slot))
                .map_err(|_| unreadable("packed descriptor", slot))?;
            let addr = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
            let id = u16::from_le_bytes([d[12], d[13]]);
            let flags = u16::from_le_bytes([d[14], d[15]]);
            descs += 1;
            Self::step(&mut at, &mut wrap, self.size);
            visit_one(&mut fault, writable, flags, addr, len, &mut visit);
            if flags & F_NEXT == 0 {
                break id; // §2.8.6: the buffer id is in the chain's last descriptor
            }
            if descs == MAX_CHAIN.min(self.size) {
                // Where the chain ends is unknown: the ring cannot be walked further.
                return Err(RingFault::ChainTooLong {
                    at: self.next_avail,
                });
            }
        };
        (self.next_avail, self.avail_wrap) = (at, wrap);
        let popped = Popped { id, descs };
        Ok(match fault {
            Some(f) => Pop::Bad(popped, f),
            None => Pop::Chain(popped),
        })
    }

    fn publish(&mut self, mem: &Mem, used: &[Used]) -> Result<(), RingFault> {
        let (mut at, mut wrap) = (self.next_used, self.used_wrap);
        let mut first = None;
        for u in used {
            let slot = self.slot(at);
            let err = |_| unreadable("packed used descriptor", slot);
            mem.write_obj(u.len.to_le(), GuestAddress(slot + 8))
                .map_err(err)?;
            mem.write_obj(u.chain.id.to_le(), GuestAddress(slot + 12))
                .map_err(err)?;
            let lap = if wrap { F_AVAIL | F_USED } else { 0 };
            let flags = lap | if u.len > 0 { F_WRITE } else { 0 };
            // The first entry's flags go last: the driver sees the batch whole or not at all.
            if first.is_none() {
                first = Some((slot, flags));
            } else {
                mem.store(flags.to_le(), GuestAddress(slot + 14), Ordering::Release)
                    .map_err(err)?;
            }
            for _ in 0..u.chain.descs.max(1) {
                Self::step(&mut at, &mut wrap, self.size);
            }
        }
        if let Some((slot, flags)) = first {
            mem.store(flags.to_le(), GuestAddress(slot + 14), Ordering::Release)
                .map_err(|_| unreadable("packed used descriptor", slot))?;
        }
        (self.next_used, self.used_wrap) = (at, wrap);
        Ok(())
    }

    fn needs_call(&mut self, mem: &Mem) -> bool {
        let at = GuestAddress(self.addrs.driver);
        let Ok(word) = mem.load::<u32>(at, Ordering::Relaxed) else {
            return true;
        };
        let word = u32::from_le(word);
        let (off_wrap, flags) = (word as u16, (word >> 16) as u16 & 3);
        let (mut old, new) = (self.signalled, self.next_used);
        self.signalled = new;
        match flags {
            EVENT_DISABLE => false,
            EVENT_DESC => {
                // As Linux's and DPDK's vring_need_event on packed rings.
                let mut off = off_wrap & 0x7fff;
                if new <= old {
                    old = old.wrapping_sub(self.size);
                }
                if self.used_wrap != (off_wrap >> 15 != 0) {
                    off = off.wrapping_sub(self.size);
                }
                new.wrapping_sub(off).wrapping_sub(1) < new.wrapping_sub(old)
            }
            _ => true,
        }
    }
}
