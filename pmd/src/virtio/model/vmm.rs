//! The rust-vmm ring engine ([`RingEngine::RustVmm`](super::RingEngine::RustVmm)): the
//! receive and transmit queues' split rings are walked by `virtio_queue::Queue`, rust-vmm's
//! device side of a virtqueue (Cloud Hypervisor's devices and rust-vmm's vhost-user-backend
//! use it), over a `vm_memory::GuestMemoryMmap` of the memory the driver gave the device
//! ([`guest`](super::guest)). The driver is then checked against code not written with it:
//! chains are popped, buffers read and written, used entries added and notifications
//! suppressed (`enable_notification`, EVENT_IDX's `avail_event`) by that crate.
//!
//! What is the model's own on top: the virtio-net meaning of the chains (header, frames,
//! `num_buffers` of a frame merged over several receive chains), the register file, and the
//! control queue (its command page is memory only the driver knows of; it stays on the own
//! engine).
//!
//! Anything `virtio-queue` or `vm-memory` refuses is a driver bug and panics, naming the
//! queue and the error, as the own engine's checks do.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;

use sluice_mempool::{IdentityMapper, IovaMapper, PktPool};
use virtio_queue::{DescriptorChain, Queue as VirtQueue, QueueOwnedT, QueueT, Reader, Writer};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::{ModelConfig, NET_HDR_LEN, Queue, guest, rx_frame};

type Mem = Arc<GuestMemoryMmap>;
type Chain = DescriptorChain<Mem>;

/// One queue as `virtio-queue` runs it.
struct Ring {
    queue: VirtQueue,
    /// The rings' parts, `(start, len)`: descriptor table, available and used ring.
    parts: [(u64, u64); 3],
    /// Receive chains popped and not used yet, with their writable bytes: the buffers
    /// gathered for the next frame, which does not fit in them yet. They are held rather
    /// than left in the ring (QEMU puts them back) because `enable_notification` sets
    /// `avail_event` to the next chain to pop: with chains left in the ring, the driver's
    /// next publish would not cross it and would not notify.
    held: VecDeque<(Chain, usize)>,
}

/// How received frames are written.
#[derive(Clone, Copy, Debug)]
pub(super) struct RxShape {
    /// MRG_RXBUF negotiated: a frame may span several chains.
    pub(super) mrg: bool,
    /// `virtio_net_hdr.flags` of every frame.
    pub(super) hdr_flags: u8,
}

/// The engine's state: the queues it runs, the pools mapped and the guest memory over them.
pub(super) struct RustVmmRings {
    rings: Vec<Option<Ring>>,
    pools: Vec<PktPool>,
    /// Built when first needed after a change to the queues or pools.
    mem: Option<Mem>,
    /// [`ModelConfig::no_notify`].
    no_notify: bool,
    /// [`ModelConfig::tx_out_of_order`].
    tx_out_of_order: bool,
}

fn fail(q: u16, what: &str, e: impl core::fmt::Debug) -> ! {
    panic!("model (rust-vmm): queue {q}: {what}: {e:?}")
}

impl RustVmmRings {
    /// An engine for `queues` queues of a device shaped as `cfg`.
    pub(super) fn new(queues: usize, cfg: &ModelConfig) -> Self {
        Self {
            rings: (0..queues).map(|_| None).collect(),
            pools: Vec::new(),
            mem: None,
            no_notify: cfg.no_notify,
            tx_out_of_order: cfg.tx_out_of_order,
        }
    }

    /// Makes `pool`'s buffers reachable (and keeps the pool alive with the model).
    ///
    /// # Panics
    /// If the pool's IOVAs are not its virtual addresses.
    pub(super) fn map_pool(&mut self, pool: &PktPool) {
        assert_eq!(
            pool.region().mapper_name(),
            IdentityMapper.name(),
            "model: pool {} is not at IOVA = VA",
            pool.name()
        );
        self.pools.push(pool.clone());
        self.mem = None;
    }

    /// Forgets every queue (device reset): nothing of the driver's rings is reachable after.
    pub(super) fn reset(&mut self) {
        for r in &mut self.rings {
            *r = None;
        }
        self.mem = None;
    }

    /// Whether queue `q` is run here.
    pub(super) fn runs(&self, q: u16) -> bool {
        matches!(self.rings.get(usize::from(q)), Some(Some(_)))
    }

    fn memory(&mut self) -> Mem {
        if let Some(m) = &self.mem {
            return m.clone();
        }
        let mut ranges: Vec<(u64, u64)> =
            self.rings.iter().flatten().flat_map(|r| r.parts).collect();
        for p in &self.pools {
            let r = p.region();
            ranges.push((r.as_ptr().as_ptr() as u64, r.len() as u64));
        }
        let mem = Arc::new(
            guest::guest_memory(&ranges)
                .unwrap_or_else(|e| panic!("model (rust-vmm): guest memory: {e}")),
        );
        self.mem = Some(mem.clone());
        mem
    }

    /// Queue `q` was enabled with the registers in `regs` (virtio 1.2 §4.1.5.1.3): sets up
    /// a `virtio_queue::Queue` the way a VMM's transport does, and checks it is valid in the
    /// guest memory.
    pub(super) fn enable(&mut self, q: u16, regs: &Queue, max: u16, event_idx: bool) {
        let mut queue = VirtQueue::new(max).unwrap_or_else(|e| fail(q, "maximum size", e));
        queue
            .try_set_size(regs.size)
            .unwrap_or_else(|e| fail(q, "queue_size", e));
        queue
            .try_set_desc_table_address(GuestAddress(regs.desc))
            .unwrap_or_else(|e| fail(q, "queue_desc", e));
        queue
            .try_set_avail_ring_address(GuestAddress(regs.avail))
            .unwrap_or_else(|e| fail(q, "queue_driver", e));
        queue
            .try_set_used_ring_address(GuestAddress(regs.used))
            .unwrap_or_else(|e| fail(q, "queue_device", e));
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        // virtio 1.2 §2.7: descriptor table 16·n, available ring 6 + 2·n, used ring 6 + 8·n;
        // each part a region of its own (merged where they share a page), so that padding
        // between them is outside the memory too.
        let n = u64::from(regs.size);
        let parts = [
            (regs.desc, 16 * n),
            (regs.avail, 6 + 2 * n),
            (regs.used, 6 + 8 * n),
        ];
        self.rings[usize::from(q)] = Some(Ring {
            queue,
            parts,
            held: VecDeque::new(),
        });
        self.mem = None;
        let mem = self.memory();
        let no_notify = self.no_notify;
        let ring = self.ring(q);
        assert!(
            ring.queue.is_valid(&*mem),
            "model (rust-vmm): queue {q}: rings outside guest memory: {:x?}",
            ring.queue.state()
        );
        if no_notify {
            disable(&mut ring.queue, &mem, q);
        }
    }

    fn ring(&mut self, q: u16) -> &mut Ring {
        match self.rings.get_mut(usize::from(q)) {
            Some(Some(r)) => r,
            _ => panic!("model (rust-vmm): queue {q} is not enabled"),
        }
    }

    /// Pops every chain of transmit queue `q` and returns their bytes (header included), in
    /// order; each is used with length 0 (the device wrote nothing).
    pub(super) fn transmit(&mut self, q: u16) -> Vec<Vec<u8>> {
        let mem = self.memory();
        let (no_notify, reverse) = (self.no_notify, self.tx_out_of_order);
        let ring = self.ring(q);
        let (mut frames, mut heads) = (Vec::new(), Vec::new());
        // virtio-queue's consumer loop: notifications off while draining, back on after, and
        // drain again if the driver published more in between.
        loop {
            disable(&mut ring.queue, &mem, q);
            while let Some(chain) = pop(&mut ring.queue, &mem, q) {
                let head = chain.head_index();
                check_chain(&chain, q, false);
                let mut reader = Reader::<()>::new(&*mem, chain)
                    .unwrap_or_else(|e| fail(q, "transmit chain", e));
                let mut bytes = Vec::with_capacity(reader.available_bytes());
                reader
                    .read_to_end(&mut bytes)
                    .unwrap_or_else(|e| fail(q, "reading a transmit chain", e));
                frames.push(bytes);
                heads.push(head);
            }
            if reverse {
                heads.reverse();
            }
            for head in heads.drain(..) {
                ring.queue
                    .add_used(&*mem, head, 0)
                    .unwrap_or_else(|e| fail(q, "add_used", e));
            }
            if no_notify || !enable(&mut ring.queue, &mem, q) {
                return frames;
            }
        }
    }

    /// Writes the frames of `pending` into receive queue `q`'s chains, in order, until it
    /// runs out of them (the rest wait, and the device asks to be notified of more). Returns
    /// how many frames were dropped for being larger than a buffer without MRG_RXBUF.
    pub(super) fn receive(&mut self, q: u16, pending: &mut VecDeque<Vec<u8>>, rx: RxShape) -> u64 {
        let mem = self.memory();
        let no_notify = self.no_notify;
        let ring = self.ring(q);
        let mut too_small = 0;
        loop {
            disable(&mut ring.queue, &mem, q);
            while let Some(frame) = pending.front() {
                let need = NET_HDR_LEN + frame.len();
                let mut room: usize = ring.held.iter().map(|h| h.1).sum();
                // Gather chains until the frame fits (a single one without MRG_RXBUF).
                while room < need && (rx.mrg || ring.held.is_empty()) {
                    let Some(chain) = pop(&mut ring.queue, &mem, q) else {
                        break;
                    };
                    check_chain(&chain, q, true);
                    let w = Writer::<()>::new(&*mem, chain.clone())
                        .unwrap_or_else(|e| fail(q, "receive chain", e));
                    room += w.available_bytes();
                    ring.held.push_back((chain, w.available_bytes()));
                }
                if !rx.mrg && room > 0 && room < need {
                    // QEMU drops such a frame silently; the chain waits for the next one.
                    pending.pop_front();
                    too_small += 1;
                    continue;
                }
                if room < need {
                    break; // out of buffers: the held chains wait for the rest
                }
                let data = rx_frame(frame, rx.hdr_flags, ring.held.len() as u16);
                pending.pop_front();
                let mut at = 0;
                for (chain, room) in ring.held.drain(..) {
                    let head = chain.head_index();
                    let k = room.min(data.len() - at);
                    let mut w = Writer::<()>::new(&*mem, chain)
                        .unwrap_or_else(|e| fail(q, "receive chain", e));
                    w.write_all(&data[at..at + k])
                        .unwrap_or_else(|e| fail(q, "writing a receive chain", e));
                    at += k;
                    ring.queue
                        .add_used(&*mem, head, k as u32)
                        .unwrap_or_else(|e| fail(q, "add_used", e));
                }
            }
            if no_notify || !enable(&mut ring.queue, &mem, q) {
                return too_small;
            }
            if pending.is_empty() {
                // More chains than frames: they stay available for later frames.
                return too_small;
            }
        }
    }
}

fn pop(queue: &mut VirtQueue, mem: &Mem, q: u16) -> Option<Chain> {
    // `iter` checks the available index against the queue size (virtio-queue's guard
    // against a driver that hands over more than a ring's worth).
    queue
        .iter(mem.clone())
        .unwrap_or_else(|e| fail(q, "available ring", e))
        .next()
}

fn disable(queue: &mut VirtQueue, mem: &Mem, q: u16) {
    queue
        .disable_notification(&**mem)
        .unwrap_or_else(|e| fail(q, "disable_notification", e));
}

/// Turns notifications back on; true if the driver made more chains available meanwhile.
fn enable(queue: &mut VirtQueue, mem: &Mem, q: u16) -> bool {
    queue
        .enable_notification(&**mem)
        .unwrap_or_else(|e| fail(q, "enable_notification", e))
}

/// The chain's shape, as QEMU checks it: at least one descriptor, none empty, all
/// device-writable on a receive queue and all device-readable on a transmit queue.
fn check_chain(chain: &Chain, q: u16, writable: bool) {
    let mut n = 0;
    for d in chain.clone() {
        n += 1;
        assert!(
            d.len() > 0,
            "model (rust-vmm): queue {q}: zero-sized descriptor in chain {}",
            chain.head_index()
        );
        assert_eq!(
            d.is_write_only(),
            writable,
            "model (rust-vmm): queue {q}: descriptor of the wrong direction in chain {}",
            chain.head_index()
        );
    }
    assert!(
        n > 0,
        "model (rust-vmm): queue {q}: chain {} has no descriptor (head out of range?)",
        chain.head_index()
    );
}
