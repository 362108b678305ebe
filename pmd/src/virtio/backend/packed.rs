//! The device side of a packed ring (virtio 1.2 §2.8): `virtio-queue` 0.18 has none. The
//! descriptor ring and both event suppression structures are translated once, when the ring
//! is set up ([`GuestMap::range`]), each inside one region of the memory table.
//!
//! Four descriptors fill one 64-byte cache line of the ring, the line the driver is writing
//! while the device reads it: where the next four are all available single buffers, they are
//! taken as one batch ([`PackedRing::pop_batch`]: four flags read, one acquire fence, four
//! descriptors), as DPDK's vhost library does (`virtio_dev_rx_batch_packed`,
//! `virtio_dev_tx_batch_packed`); anything else goes one descriptor at a time.

use std::sync::atomic::{Ordering, fence};

use super::error::RingFault;
use super::guest::{GuestMap, HostRange};
use super::ring::{
    ChainFault, Cursor, F_INDIRECT, F_NEXT, F_WRITE, MAX_CHAIN, Pop, Popped, RingAddrs, Used,
    unreadable, visit_one,
};

/// Descriptors one batch takes: one 64-byte cache line of the ring.
pub(crate) const BATCH: usize = 4;

/// One single-descriptor buffer of a batch: its chain, address and length, its direction
/// checked, its address not yet (the copy checks it through [`GuestMap`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct One {
    pub chain: Popped,
    pub addr: u64,
    pub len: u32,
}

/// `VIRTQ_DESC_F_AVAIL`.
const F_AVAIL: u16 = 1 << 7;
/// `VIRTQ_DESC_F_USED`.
const F_USED: u16 = 1 << 15;
/// Event suppression flags (§2.8.10): disable, descriptor-specific.
const EVENT_DISABLE: u16 = 1;
const EVENT_DESC: u16 = 2;

pub(crate) struct PackedRing {
    desc: HostRange,
    driver: HostRange,
    size: u16,
    addrs: RingAddrs,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
    signalled: u16,
    /// `IN_ORDER`: a batch of buffers the device read is given back as one.
    in_order: bool,
}

impl PackedRing {
    /// A packed ring resumed at `base` (index in bits 0-14, wrap counter in bit 15, as
    /// vhost-user carries it).
    pub(crate) fn new(
        map: &GuestMap,
        size: u16,
        addrs: RingAddrs,
        base: u16,
        in_order: bool,
    ) -> Result<Self, RingFault> {
        if size == 0
            || size > 32768
            || !addrs.desc.is_multiple_of(16)
            || !addrs.driver.is_multiple_of(4)
            || !addrs.device.is_multiple_of(4)
        {
            return Err(RingFault::BadLayout { size, addrs });
        }
        let outside = RingFault::OutsideMemory { size, addrs };
        let desc = map
            .range(addrs.desc, 16 * usize::from(size), 16)
            .ok_or(outside)?;
        let driver = map.range(addrs.driver, 4, 4).ok_or(outside)?;
        let device = map.range(addrs.device, 4, 4).ok_or(outside)?;
        let (next, wrap) = (base & 0x7fff, base & 0x8000 != 0);
        if next >= size {
            return Err(RingFault::BadLayout { size, addrs });
        }
        // Kicks are not read (the lcores poll): ask for none.
        device
            .store_u16(2, EVENT_DISABLE, Ordering::Release)
            .ok_or(unreadable("device event suppression", addrs.device))?;
        Ok(Self {
            desc,
            driver,
            size,
            addrs,
            next_avail: next,
            avail_wrap: wrap,
            next_used: next,
            used_wrap: wrap,
            signalled: next,
            in_order,
        })
    }

    pub(crate) fn base(&self) -> u16 {
        self.next_avail | if self.avail_wrap { 0x8000 } else { 0 }
    }

    pub(crate) fn cursor(&self) -> Cursor {
        Cursor(self.next_avail, self.avail_wrap)
    }

    pub(crate) fn rewind(&mut self, c: Cursor) {
        (self.next_avail, self.avail_wrap) = (c.0, c.1);
    }

    fn flags(&self, i: u16, order: Ordering) -> Result<u16, RingFault> {
        self.desc
            .load_u16(16 * usize::from(i) + 14, order)
            .ok_or(unreadable("packed descriptor", self.addrs.desc))
    }

    /// §2.8.1: available when AVAIL matches the wrap counter and USED does not.
    fn avail(&self, flags: u16) -> bool {
        (flags & F_AVAIL != 0) == self.avail_wrap && (flags & F_USED != 0) != self.avail_wrap
    }

    pub(crate) fn has_avail(&self) -> bool {
        self.flags(self.next_avail, Ordering::Acquire)
            .is_ok_and(|f| self.avail(f))
    }

    fn step(i: &mut u16, wrap: &mut bool, size: u16) {
        *i += 1;
        if *i == size {
            *i = 0;
            *wrap = !*wrap;
        }
    }

    pub(crate) fn pop(
        &mut self,
        writable: bool,
        mut visit: impl FnMut(u64, u32) -> Result<(), ChainFault>,
    ) -> Result<Pop, RingFault> {
        if !self.avail(self.flags(self.next_avail, Ordering::Acquire)?) {
            return Ok(Pop::Empty);
        }
        let (mut at, mut wrap) = (self.next_avail, self.avail_wrap);
        let (mut descs, mut fault) = (0u16, None);
        let id = loop {
            let (addr, w) = self
                .desc
                .read_desc(16 * usize::from(at))
                .ok_or(unreadable("packed descriptor", self.addrs.desc))?;
            let (len, id, flags) = (w as u32, (w >> 32) as u16, (w >> 48) as u16);
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

    /// Takes [`BATCH`] buffers at once when the next slot starts a cache line of the ring
    /// and all of its descriptors are available single buffers (no `NEXT`, not indirect) of
    /// the direction asked for: their flags are read in one pass, then the descriptors.
    /// `None` (nothing taken) otherwise: [`pop`](Self::pop) takes them one by one and
    /// reports what is wrong with them.
    pub(crate) fn pop_batch(&mut self, writable: bool) -> Result<Option<[One; BATCH]>, RingFault> {
        let at = usize::from(self.next_avail);
        if !at.is_multiple_of(BATCH) || at + BATCH > usize::from(self.size) {
            return Ok(None);
        }
        let want = if writable { F_WRITE } else { 0 };
        for k in 0..BATCH {
            let f = self.flags((at + k) as u16, Ordering::Relaxed)?;
            if !self.avail(f) || f & (F_NEXT | F_INDIRECT | F_WRITE) != want {
                return Ok(None);
            }
        }
        // The descriptors are read after their flags, as one acquire load each would order.
        fence(Ordering::Acquire);
        let mut out = [One::default(); BATCH];
        for (k, o) in out.iter_mut().enumerate() {
            let (addr, w) = self
                .desc
                .read_desc(16 * (at + k))
                .ok_or(unreadable("packed descriptor", self.addrs.desc))?;
            let chain = Popped {
                id: (w >> 32) as u16,
                descs: 1,
            };
            *o = One {
                chain,
                addr,
                len: w as u32,
            };
        }
        self.next_avail += BATCH as u16;
        if self.next_avail == self.size {
            (self.next_avail, self.avail_wrap) = (0, !self.avail_wrap);
        }
        Ok(Some(out))
    }

    pub(crate) fn publish(&mut self, used: &[Used], read: bool) -> Result<(), RingFault> {
        // Not for receive buffers: a driver reads each one's length (DPDK's virtio and Linux
        // walk a receive ring slot by slot).
        if self.in_order && read {
            return self.publish_batch(used);
        }
        let fault = || unreadable("packed used descriptor", self.addrs.desc);
        let (mut at, mut wrap) = (self.next_used, self.used_wrap);
        let mut first = None;
        for u in used {
            let slot = 16 * usize::from(at);
            self.desc.write_u32(slot + 8, u.len).ok_or_else(fault)?;
            self.desc
                .write_u16(slot + 12, u.chain.id)
                .ok_or_else(fault)?;
            let lap = if wrap { F_AVAIL | F_USED } else { 0 };
            let flags = lap | if u.len > 0 { F_WRITE } else { 0 };
            // The first entry's flags go last: the driver sees the batch whole or not at all.
            if first.is_none() {
                first = Some((slot, flags));
            } else {
                self.desc
                    .store_u16(slot + 14, flags, Ordering::Release)
                    .ok_or_else(fault)?;
            }
            for _ in 0..u.chain.descs.max(1) {
                Self::step(&mut at, &mut wrap, self.size);
            }
        }
        if let Some((slot, flags)) = first {
            self.desc
                .store_u16(slot + 14, flags, Ordering::Release)
                .ok_or_else(fault)?;
        }
        (self.next_used, self.used_wrap) = (at, wrap);
        Ok(())
    }

    /// §2.8.20: with `IN_ORDER`, one used descriptor at the batch's first slot, carrying
    /// the last buffer's id, gives the whole batch back; the driver skips forward by the
    /// batch's slots (as DPDK's vhost does for the buffers it reads).
    fn publish_batch(&mut self, used: &[Used]) -> Result<(), RingFault> {
        let fault = || unreadable("packed used descriptor", self.addrs.desc);
        let Some(last) = used.last() else {
            return Ok(());
        };
        let slot = 16 * usize::from(self.next_used);
        self.desc.write_u32(slot + 8, 0).ok_or_else(fault)?;
        self.desc
            .write_u16(slot + 12, last.chain.id)
            .ok_or_else(fault)?;
        let flags = if self.used_wrap { F_AVAIL | F_USED } else { 0 };
        self.desc
            .store_u16(slot + 14, flags, Ordering::Release)
            .ok_or_else(fault)?;
        let (mut at, mut wrap) = (self.next_used, self.used_wrap);
        for u in used {
            for _ in 0..u.chain.descs.max(1) {
                Self::step(&mut at, &mut wrap, self.size);
            }
        }
        (self.next_used, self.used_wrap) = (at, wrap);
        Ok(())
    }

    pub(crate) fn needs_call(&mut self) -> bool {
        let Some(word) = self.driver.load_u32(0, Ordering::Relaxed) else {
            return true;
        };
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vm_memory::{Address, Bytes, GuestAddress};

    use super::*;
    use crate::virtio::backend::guest::Mem;

    const DESC: u64 = 0x1000;

    /// A ring of 8 in fresh memory, `n` one-descriptor buffers (ids 10, 11, ...) available.
    fn ring(n: u16, in_order: bool) -> (Arc<Mem>, PackedRing) {
        let mem = Arc::new(Mem::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap());
        let addrs = RingAddrs {
            desc: DESC,
            driver: 0x2000,
            device: 0x2004,
        };
        for i in 0..n {
            let at = GuestAddress(DESC + 16 * u64::from(i));
            mem.write_obj(0x3000u64, at).unwrap();
            mem.write_obj(64u32, at.unchecked_add(8)).unwrap();
            mem.write_obj(10 + i, at.unchecked_add(12)).unwrap();
            mem.write_obj(F_AVAIL, at.unchecked_add(14)).unwrap();
        }
        let map = GuestMap::new(mem.clone());
        let ring = PackedRing::new(&map, 8, addrs, 0x8000, in_order).unwrap();
        (mem, ring)
    }

    fn slot(mem: &Mem, i: u64) -> (u16, u16) {
        let at = GuestAddress(DESC + 16 * i);
        let id: u16 = mem.read_obj(at.unchecked_add(12)).unwrap();
        let flags: u16 = mem.read_obj(at.unchecked_add(14)).unwrap();
        (id, flags)
    }

    fn pop_all(r: &mut PackedRing) -> Vec<Used> {
        let mut used = Vec::new();
        while let Ok(Pop::Chain(chain)) = r.pop(false, |_, _| Ok(())) {
            used.push(Used { chain, len: 0 });
        }
        used
    }

    #[test]
    fn in_order_gives_a_read_batch_back_as_one_descriptor_and_receive_buffers_each() {
        let (mem, mut r) = ring(3, true);
        let used = pop_all(&mut r);
        assert_eq!(used.len(), 3);
        r.publish(&used, true).unwrap();
        let done = F_AVAIL | F_USED;
        assert_eq!(
            slot(&mem, 0),
            (12, done),
            "one used descriptor, the last id"
        );
        assert_eq!(slot(&mem, 1), (11, F_AVAIL), "skipped");
        assert_eq!(slot(&mem, 2), (12, F_AVAIL), "skipped");
        assert_eq!((r.next_used, r.used_wrap), (3, true));

        let (mem, mut r) = ring(3, true);
        let used = pop_all(&mut r);
        r.publish(&used, false).unwrap();
        for i in 0..3 {
            assert_eq!(slot(&mem, i), (10 + i as u16, done), "written buffer {i}");
        }
        let (mem, mut r) = ring(2, false);
        let used = pop_all(&mut r);
        r.publish(&used, true).unwrap();
        assert_eq!(slot(&mem, 1), (11, done), "without IN_ORDER, each");
    }

    fn set_flags(mem: &Mem, i: u64, flags: u16) {
        let at = GuestAddress(DESC + 16 * i + 14);
        mem.write_obj(flags, at).unwrap();
    }

    #[test]
    fn a_cache_line_of_single_buffers_is_taken_as_one_batch() {
        let (_mem, mut r) = ring(8, false);
        let got = r
            .pop_batch(false)
            .unwrap()
            .expect("4-aligned, all available");
        let ids: Vec<u16> = got.iter().map(|o| o.chain.id).collect();
        assert_eq!(ids, [10, 11, 12, 13]);
        assert!(got.iter().all(|o| o.addr == 0x3000 && o.len == 64));
        assert!(got.iter().all(|o| o.chain.descs == 1));
        assert!(r.pop_batch(false).unwrap().is_some(), "the second line");
        assert_eq!((r.next_avail, r.avail_wrap), (0, false), "wrapped");
        assert!(r.pop_batch(false).unwrap().is_none(), "nothing available");
    }

    #[test]
    fn a_batch_falls_back_to_single_buffers_whole() {
        let untouched = |r: &PackedRing| (r.next_avail, r.avail_wrap) == (0, true);
        let (_mem, mut r) = ring(3, false);
        assert!(r.pop_batch(false).unwrap().is_none(), "one unavailable");
        assert!(untouched(&r));
        assert_eq!(pop_all(&mut r).len(), 3, "taken one by one");

        let (mem, mut r) = ring(4, false);
        set_flags(&mem, 2, F_AVAIL | F_NEXT);
        assert!(r.pop_batch(false).unwrap().is_none(), "a chain");
        set_flags(&mem, 2, F_AVAIL | F_INDIRECT);
        assert!(r.pop_batch(false).unwrap().is_none(), "indirect");
        set_flags(&mem, 2, F_AVAIL);
        assert!(
            r.pop_batch(true).unwrap().is_none(),
            "readable, writable asked"
        );
        assert!(untouched(&r));
        set_flags(&mem, 2, F_AVAIL | F_INDIRECT);
        assert!(matches!(r.pop(false, |_, _| Ok(())), Ok(Pop::Chain(_))));
        assert!(r.pop_batch(false).unwrap().is_none(), "not 4-aligned");
        assert!(matches!(r.pop(false, |_, _| Ok(())), Ok(Pop::Chain(_))));
        let single = r.pop(false, |_, _| Ok(()));
        assert!(
            matches!(single, Ok(Pop::Bad(_, ChainFault::Indirect))),
            "the single path reports it"
        );
    }
}
