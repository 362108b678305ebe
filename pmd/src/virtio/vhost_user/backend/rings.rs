//! The device side of the test backend's rings: split rings walked by rust-vmm's
//! `virtio_queue::Queue` (through the vring `vhost-user-backend` keeps), packed rings by a
//! small walker of virtio 1.2 §2.8 here (`virtio-queue` 0.18 has the packed descriptor
//! layout but no packed queue). Both reduce a chain to a [`Chain`] of guest buffers.

use std::sync::atomic::Ordering;

use vhost_user_backend::{VringRwLock, VringT};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

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

/// The guest memory the rings and buffers are in.
pub(super) type Mem = GuestMemoryMmap<()>;

/// A popped descriptor chain: what the device needs to use it and give it back.
#[derive(Debug)]
pub(super) struct Chain {
    /// Split: the head descriptor's index; packed: the buffer id.
    pub(super) id: u16,
    /// Ring slots it took (packed; 1 for split, where it does not matter).
    pub(super) descs: u16,
    /// `(address, length, device-writable)` of each buffer.
    pub(super) bufs: Vec<(GuestAddress, u32, bool)>,
}

impl Chain {
    /// The bytes of the device-readable buffers, in order.
    pub(super) fn read(&self, mem: &Mem) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for &(addr, len, _) in self.bufs.iter().filter(|b| !b.2) {
            let at = out.len();
            out.resize(at + len as usize, 0);
            mem.read_slice(&mut out[at..], addr)
                .map_err(|e| format!("read {len} bytes at {:#x}: {e}", addr.0))?;
        }
        Ok(out)
    }

    /// Writable bytes in the chain.
    pub(super) fn writable(&self) -> u32 {
        self.bufs.iter().filter(|b| b.2).map(|b| b.1).sum()
    }

    /// Writes `bytes` across the writable buffers; `false` (nothing written) if they do not
    /// fit.
    pub(super) fn write(&self, mem: &Mem, bytes: &[u8]) -> Result<bool, String> {
        if bytes.len() > self.writable() as usize {
            return Ok(false);
        }
        let mut rest = bytes;
        for &(addr, len, _) in self.bufs.iter().filter(|b| b.2) {
            let n = rest.len().min(len as usize);
            mem.write_slice(&rest[..n], addr)
                .map_err(|e| format!("write {n} bytes at {:#x}: {e}", addr.0))?;
            rest = &rest[n..];
        }
        Ok(true)
    }
}

/// Where a packed ring is and how far the device has got in it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Packed {
    size: u16,
    desc: u64,
    driver: u64,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
}

impl Packed {
    /// The ring `vring` was set up as, resumed at its `SET_VRING_BASE` (index in bits 0-14,
    /// wrap counter in bit 15, as vhost-user carries it for packed rings).
    pub(super) fn from_vring(vring: &VringRwLock) -> Self {
        let guard = vring.get_ref();
        let q = guard.get_queue();
        let base = q.next_avail();
        let (next, wrap) = (base & 0x7fff, base & 0x8000 != 0);
        Packed {
            size: q.size(),
            desc: q.desc_table(),
            driver: q.avail_ring(),
            next_avail: next,
            avail_wrap: wrap,
            next_used: next,
            used_wrap: wrap,
        }
    }

    /// What `GET_VRING_BASE` reports for it.
    pub(super) fn base(&self) -> u16 {
        self.next_avail | if self.avail_wrap { 0x8000 } else { 0 }
    }

    fn slot(&self, i: u16) -> GuestAddress {
        GuestAddress(self.desc + 16 * u64::from(i))
    }

    fn advance(i: &mut u16, wrap: &mut bool, size: u16) {
        *i += 1;
        if *i == size {
            *i = 0;
            *wrap = !*wrap;
        }
    }

    /// The next available buffer, if the driver has made one available (§2.8.1: `AVAIL`
    /// equal to the device's wrap counter, `USED` not).
    pub(super) fn pop(&mut self, mem: &Mem) -> Result<Option<Chain>, String> {
        let err = |e: vm_memory::GuestMemoryError| format!("packed descriptor: {e}");
        let flags_at = |slot: GuestAddress| GuestAddress(slot.0 + 14);
        let head: u16 = mem
            .load(flags_at(self.slot(self.next_avail)), Ordering::Acquire)
            .map_err(err)?;
        let head = u16::from_le(head);
        if (head & F_AVAIL != 0) != self.avail_wrap || (head & F_USED != 0) == self.avail_wrap {
            return Ok(None);
        }
        let mut chain = Chain {
            id: 0,
            descs: 0,
            bufs: Vec::new(),
        };
        let (mut at, mut wrap) = (self.next_avail, self.avail_wrap);
        loop {
            let slot = self.slot(at);
            let addr: u64 = mem.read_obj(slot).map_err(err)?;
            let len: u32 = mem.read_obj(GuestAddress(slot.0 + 8)).map_err(err)?;
            let id: u16 = mem.read_obj(GuestAddress(slot.0 + 12)).map_err(err)?;
            let flags = u16::from_le(mem.read_obj(flags_at(slot)).map_err(err)?);
            if flags & F_INDIRECT != 0 {
                return Err("indirect packed descriptors are not supported here".into());
            }
            chain.bufs.push((
                GuestAddress(u64::from_le(addr)),
                u32::from_le(len),
                flags & F_WRITE != 0,
            ));
            chain.descs += 1;
            Self::advance(&mut at, &mut wrap, self.size);
            if flags & F_NEXT == 0 {
                // §2.8.6: the buffer id is in the chain's last descriptor.
                chain.id = u16::from_le(id);
                break;
            }
            if chain.descs == self.size {
                return Err("packed chain longer than the ring".into());
            }
        }
        (self.next_avail, self.avail_wrap) = (at, wrap);
        Ok(Some(chain))
    }

    /// Writes a used descriptor for buffer `id` (id and length first, then the flags with
    /// release, §2.8.6) and moves past the `descs` slots it took.
    pub(super) fn push_used(
        &mut self,
        mem: &Mem,
        id: u16,
        len: u32,
        descs: u16,
    ) -> Result<(), String> {
        let err = |e: vm_memory::GuestMemoryError| format!("packed used descriptor: {e}");
        let slot = self.slot(self.next_used);
        mem.write_obj(len.to_le(), GuestAddress(slot.0 + 8))
            .map_err(err)?;
        mem.write_obj(id.to_le(), GuestAddress(slot.0 + 12))
            .map_err(err)?;
        let lap = if self.used_wrap { F_AVAIL | F_USED } else { 0 };
        let write = if len > 0 { F_WRITE } else { 0 };
        mem.store(
            (lap | write).to_le(),
            GuestAddress(slot.0 + 14),
            Ordering::Release,
        )
        .map_err(err)?;
        for _ in 0..descs.max(1) {
            Self::advance(&mut self.next_used, &mut self.used_wrap, self.size);
        }
        Ok(())
    }

    /// Whether the driver wants a call (its event suppression flags are not `DISABLE`).
    pub(super) fn wants_call(&self, mem: &Mem) -> bool {
        let flags: u16 = mem
            .load(GuestAddress(self.driver + 2), Ordering::Acquire)
            .unwrap_or(0);
        u16::from_le(flags) & 3 != 1
    }
}

/// Pops the next chain of a split ring through `virtio-queue`.
pub(super) fn split_pop(vring: &VringRwLock, mem: &Mem) -> Option<Chain> {
    let mut guard = vring.get_mut();
    let chain = guard.get_queue_mut().pop_descriptor_chain(mem)?;
    let id = chain.head_index();
    let bufs = chain
        .map(|d| (d.addr(), d.len(), d.is_write_only()))
        .collect();
    Some(Chain { id, descs: 1, bufs })
}

/// Adds a used entry to a split ring through `virtio-queue`.
pub(super) fn split_used(vring: &VringRwLock, id: u16, len: u32) -> Result<(), String> {
    vring
        .add_used(id, len)
        .map_err(|e| format!("add_used({id}, {len}): {e}"))
}

/// Writes a used entry with an id `virtio-queue` would refuse (out of range): a lying device.
pub(super) fn split_used_raw(
    vring: &VringRwLock,
    mem: &Mem,
    id: u32,
    len: u32,
) -> Result<(), String> {
    let mut guard = vring.get_mut();
    let q = guard.get_queue_mut();
    let (used, next) = (q.used_ring(), q.next_used());
    let elem = GuestAddress(used + 4 + 8 * u64::from(next % q.size()));
    let err = |e: vm_memory::GuestMemoryError| format!("raw used entry: {e}");
    mem.write_obj(id.to_le(), elem).map_err(err)?;
    mem.write_obj(len.to_le(), GuestAddress(elem.0 + 4))
        .map_err(err)?;
    let next = next.wrapping_add(1);
    q.set_next_used(next);
    mem.store(next.to_le(), GuestAddress(used + 2), Ordering::Release)
        .map_err(err)
}
