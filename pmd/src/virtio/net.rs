//! The datapath: receive and transmit queue handles (virtio 1.2 §5.1.6), each owning its
//! virtqueue (split or packed, one code path over [`Virtqueue`]), its ring memory and its
//! transport's [`Doorbell`]. No allocation, no formatting, no locks; the only access to the
//! device outside ring memory is the doorbell, rung when the device asks for it.
//!
//! - Receive: every posted buffer is one device-writable descriptor starting
//!   [`NET_HDR_LEN`] bytes before the buffer's data offset, so the device writes the
//!   virtio-net header into the headroom and the frame where the data starts (zero copy).
//!   With `MRG_RXBUF` a frame may span several buffers (`num_buffers` > 1); a [`PktBuf`]
//!   holds one segment, so such a frame is dropped (counted in `drops`) and all of its
//!   buffers go back to the pool — with the default 2 KiB data room this happens only for
//!   frames above 2 KiB, which the ports do not carry. The continuation buffers skipped are
//!   counted ([`VirtioRxQueue::skipped`]). `num_buffers` is the device's word, so it is
//!   bounded: without `MRG_RXBUF` every frame is one buffer and a value other than 1 is a
//!   device error (the frame is still delivered); with it, 0 or more buffers than the
//!   largest frame needs ([`VirtioRxQueue::max_merge`]) is a device error, and that
//!   buffer is dropped without skipping any of the frames that follow.
//! - Transmit: a zero header is prepended into the headroom and header and frame go out as
//!   one device-readable descriptor (VERSION_1 lets the header share it); the buffer stays
//!   in the queue's shadow until the used ring returns it, and completions are reclaimed in
//!   bulk at the start of each burst.

use std::sync::Arc;

use sluice_mempool::{Batch, OffloadFlags, PktBuf, PktPool};

use super::NET_HDR_LEN;
use super::ring::{Segment, Used, UsedFault, Virtqueue};
use super::shared::Shared;
use super::transport::{Doorbell, PciTransport, Transport};
use crate::net::{QueueCounters, RxQueue, TxQueue};

/// Buffers allocated from the pool per request when refilling.
const REFILL_BURST: usize = 32;

/// The most bytes a device writes for one received frame, header included: a 65 535-byte
/// IP packet (the largest, even with GSO) behind an Ethernet and a VLAN header, and the
/// virtio-net header. A merged frame never needs more buffers than it takes to hold this.
const MAX_MERGED_BYTES: usize = 65_535 + 18 + NET_HDR_LEN;

/// `struct virtio_net_hdr_v1` (virtio 1.2 §5.1.6), in front of every frame on the receive
/// and transmit rings: little-endian, `num_buffers` always present with VERSION_1.
///
/// ```
/// use sluice_pmd::virtio::NetHdr;
///
/// let mut b = [0u8; NetHdr::LEN];
/// let h = NetHdr { flags: NetHdr::F_DATA_VALID, num_buffers: 3, ..NetHdr::default() };
/// h.write(&mut b);
/// assert_eq!(b, [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0]);
/// assert_eq!(NetHdr::read(&b), h);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHdr {
    /// [`F_NEEDS_CSUM`](Self::F_NEEDS_CSUM), [`F_DATA_VALID`](Self::F_DATA_VALID).
    pub flags: u8,
    /// Segmentation offload type (0: none; this driver negotiates no GSO).
    pub gso_type: u8,
    /// Length of the headers to replicate per segment (GSO).
    pub hdr_len: u16,
    /// Segment payload size (GSO).
    pub gso_size: u16,
    /// Where checksumming starts (with `F_NEEDS_CSUM`).
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes (with `F_NEEDS_CSUM`).
    pub csum_offset: u16,
    /// How many receive buffers the frame spans (`MRG_RXBUF`; 1 otherwise, and 0 for a
    /// transmitted frame).
    pub num_buffers: u16,
}

impl NetHdr {
    /// Its length on the rings.
    pub const LEN: usize = 12;
    /// `flags`: the checksum is partial (receive: the driver must complete it).
    pub const F_NEEDS_CSUM: u8 = 1;
    /// `flags`: the device validated the checksum.
    pub const F_DATA_VALID: u8 = 2;

    /// Decodes the header in `b`.
    #[inline]
    pub fn read(b: &[u8; Self::LEN]) -> Self {
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
            num_buffers: le(10),
        }
    }

    /// Encodes the header into `b`.
    #[inline]
    pub fn write(&self, b: &mut [u8; Self::LEN]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        let fields = [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
            self.num_buffers,
        ];
        for (i, v) in fields.into_iter().enumerate() {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Receive queue of a [`VirtioPort`](super::VirtioPort).
pub struct VirtioRxQueue<T: Transport = PciTransport> {
    vq: Virtqueue<PktBuf>,
    doorbell: T::Doorbell,
    pool: PktPool,
    counters: Arc<QueueCounters>,
    /// Used entries still to skip: the rest of a merged frame that was dropped.
    skip: u16,
    /// Continuation buffers skipped so far (the rest of merged frames that were dropped).
    skipped: u64,
    /// Whether `MRG_RXBUF` was negotiated: without it every frame is one buffer.
    mrg_rxbuf: bool,
    /// The most buffers one frame may span (1 without `MRG_RXBUF`).
    max_merge: u16,
    /// Refill once this many descriptors are free (a burst, or a quarter of a small ring).
    refill_at: usize,
    guest_csum: bool,
    port: u16,
    queue: u16,
    // Last: keeps the device (and its reset on drop) alive until the ring is parked.
    shared: Arc<Shared<T>>,
}

impl<T: Transport> core::fmt::Debug for VirtioRxQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioRxQueue")
            .field("queue", &self.queue)
            .field("vq", &self.vq)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> VirtioRxQueue<T> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        vq: Virtqueue<PktBuf>,
        doorbell: T::Doorbell,
        pool: PktPool,
        counters: Arc<QueueCounters>,
        features: u64,
        port: u16,
        queue: u16,
        shared: Arc<Shared<T>>,
    ) -> Self {
        let mrg_rxbuf = features & super::feature::MRG_RXBUF != 0;
        // Each buffer takes the header and the data room: see `fill`.
        let room = (pool.buf_len() - pool.headroom() + NET_HDR_LEN).max(1);
        let max_merge = if mrg_rxbuf {
            MAX_MERGED_BYTES
                .div_ceil(room)
                .clamp(1, usize::from(vq.size())) as u16
        } else {
            1
        };
        Self {
            refill_at: (usize::from(vq.size()) / 4).clamp(1, REFILL_BURST),
            vq,
            doorbell,
            pool,
            counters,
            skip: 0,
            skipped: 0,
            mrg_rxbuf,
            max_merge,
            guest_csum: features & super::feature::GUEST_CSUM != 0,
            port,
            queue,
            shared,
        }
    }

    /// Buffers posted to the device.
    pub fn posted(&self) -> usize {
        self.vq.in_flight()
    }

    /// Whether a device fault stopped the queue.
    pub fn is_broken(&self) -> bool {
        self.vq.is_broken()
    }

    /// The last device fault found on this queue's ring (counted in `errors`), cleared by
    /// the call.
    pub fn take_fault(&mut self) -> Option<UsedFault> {
        self.vq.take_fault()
    }

    /// Continuation buffers skipped: the rest of merged frames (`num_buffers` > 1) that were
    /// dropped, each buffer counted once.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The most buffers this queue lets one frame span: 1 without `MRG_RXBUF`; with it,
    /// what the largest frame a device may write takes, at most the queue size. A larger
    /// `num_buffers` is a device error.
    pub fn max_merge(&self) -> u16 {
        self.max_merge
    }

    /// Posts as many buffers as there are free descriptors and pool buffers (in bursts),
    /// publishes them once, and notifies the device if it asks. Returns how many were posted.
    pub fn refill(&mut self) -> usize {
        let (done, asked) = self.fill();
        // QEMU keeps frames queued when it runs out of buffers and looks again only when
        // notified (docs/devices.md#qemu-virtio-net-modern-pci), so a refill notifies if the
        // device asks for it.
        if asked {
            self.notify();
        }
        done
    }

    /// [`refill`](Self::refill) without the notification, for bring-up: virtio 1.2 §3.1.1
    /// allows none before DRIVER_OK. Returns how many were posted and whether the device asked
    /// to be notified.
    pub(super) fn fill(&mut self) -> (usize, bool) {
        let mut done = 0;
        // A broken ring takes no buffer (`add` refuses them), though it has free descriptors:
        // stop at the first refusal rather than allocate and free forever.
        while self.vq.free_descs() > 0 && !self.vq.is_broken() {
            let ask = REFILL_BURST.min(self.vq.free_descs());
            let mut bufs: Batch<PktBuf, REFILL_BURST> = Batch::new();
            let got = self.pool.alloc_burst(&mut bufs, ask);
            let mut refused = false;
            for pkt in bufs.drain() {
                let head = pkt.headroom();
                // A fresh buffer's data offset is the pool's headroom (>= 128): the header
                // goes in the 12 bytes before it.
                let seg = Segment {
                    iova: pkt.buf_iova().add((head - NET_HDR_LEN) as u64),
                    len: (pkt.buf_len() - head + NET_HDR_LEN) as u32,
                    writable: true,
                };
                if self.vq.add(&[seg], pkt).is_ok() {
                    done += 1;
                } else {
                    refused = true;
                }
            }
            if refused {
                break;
            }
            if got < ask {
                self.counters.add_rx_nombuf((ask - got) as u64);
                break;
            }
        }
        (done, self.vq.publish())
    }

    /// Tells the device about the buffers published; a failed doorbell counts as an error.
    pub(super) fn notify(&mut self) {
        if self.doorbell.notify().is_err() {
            self.counters.add_errors(1);
        }
    }
}

impl<T: Transport> RxQueue for VirtioRxQueue<T> {
    #[inline]
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        let (mut got, mut bytes, mut bad, mut drops) = (0usize, 0u64, 0u64, 0u64);
        if self.vq.used_ready().is_err() {
            bad += 1;
        }
        while out.remaining() > 0 {
            let Some(used) = self.vq.pop_used() else {
                break;
            };
            let (mut pkt, len) = match used {
                Used::Done(pkt, len) => (pkt, len as usize),
                Used::BadLen(pkt, _) => {
                    bad += 1;
                    drop(pkt);
                    continue;
                }
                Used::BadId(_) => {
                    bad += 1;
                    continue;
                }
            };
            if self.skip > 0 {
                // A continuation of a merged frame already dropped.
                self.skip -= 1;
                self.skipped += 1;
                continue;
            }
            let hdr_at = pkt.headroom() - NET_HDR_LEN;
            // `len <= descriptor length` was checked by the queue, so this fits the buffer.
            if len < NET_HDR_LEN || !pkt.set_data(hdr_at, len) {
                bad += 1;
                continue;
            }
            let Some(hdr) = pkt.data().first_chunk().map(NetHdr::read) else {
                bad += 1;
                continue;
            };
            if !self.mrg_rxbuf {
                // One buffer per frame whatever the device says (it must say 1): count a
                // device error for anything else, and skip nothing.
                if hdr.num_buffers != 1 {
                    bad += 1;
                }
            } else if hdr.num_buffers == 0 || hdr.num_buffers > self.max_merge {
                // No frame spans 0 buffers or more than the largest frame needs: the header
                // is not to be trusted, and neither is the frame.
                bad += 1;
                continue;
            } else if hdr.num_buffers > 1 {
                self.skip = hdr.num_buffers - 1;
                drops += 1;
                continue;
            }
            pkt.trim_front(NET_HDR_LEN);
            let meta = pkt.meta_mut();
            meta.port = self.port;
            meta.queue = self.queue;
            meta.ol_flags = OffloadFlags::default();
            if self.guest_csum {
                if hdr.flags & NetHdr::F_DATA_VALID != 0 {
                    meta.ol_flags.insert(OffloadFlags::RX_L4_CSUM_GOOD);
                }
                if hdr.flags & NetHdr::F_NEEDS_CSUM != 0 {
                    meta.ol_flags.insert(OffloadFlags::RX_L4_CSUM_NONE);
                }
            }
            bytes += (len - NET_HDR_LEN) as u64;
            if out.push(pkt).is_ok() {
                got += 1;
            }
        }
        if got > 0 {
            self.counters.add_packets(got as u64, bytes);
        }
        if bad > 0 {
            self.counters.add_errors(bad);
        }
        if drops > 0 {
            self.counters.add_drops(drops);
        }
        // Refill in bursts, not one buffer at a time.
        if self.vq.free_descs() >= self.refill_at || (got == 0 && self.vq.free_descs() > 0) {
            self.refill();
        }
        got
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}

impl<T: Transport> Drop for VirtioRxQueue<T> {
    fn drop(&mut self) {
        // The device may still write into posted buffers until it is reset: park them (and
        // the ring) with the device, which frees them after its reset.
        self.shared.park(&mut self.vq);
    }
}

/// Transmit queue of a [`VirtioPort`](super::VirtioPort).
pub struct VirtioTxQueue<T: Transport = PciTransport> {
    vq: Virtqueue<PktBuf>,
    doorbell: T::Doorbell,
    counters: Arc<QueueCounters>,
    queue: u16,
    // Last: see `VirtioRxQueue`.
    shared: Arc<Shared<T>>,
}

impl<T: Transport> core::fmt::Debug for VirtioTxQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioTxQueue")
            .field("queue", &self.queue)
            .field("vq", &self.vq)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> VirtioTxQueue<T> {
    pub(super) fn new(
        vq: Virtqueue<PktBuf>,
        doorbell: T::Doorbell,
        counters: Arc<QueueCounters>,
        queue: u16,
        shared: Arc<Shared<T>>,
    ) -> Self {
        Self {
            vq,
            doorbell,
            counters,
            queue,
            shared,
        }
    }

    /// Buffers handed to the device and not yet reclaimed.
    pub fn in_flight(&self) -> usize {
        self.vq.in_flight()
    }

    /// Whether a device fault stopped the queue.
    pub fn is_broken(&self) -> bool {
        self.vq.is_broken()
    }

    /// The last device fault found on this queue's ring (counted in `errors`), cleared by
    /// the call.
    pub fn take_fault(&mut self) -> Option<UsedFault> {
        self.vq.take_fault()
    }

    /// Returns completed buffers to their pools, in bulk.
    #[inline]
    pub fn reclaim(&mut self) {
        let mut bad = 0u64;
        if self.vq.used_ready().is_err() {
            bad += 1;
        }
        let mut done: Batch<PktBuf> = Batch::new();
        while let Some(used) = self.vq.pop_used() {
            match used {
                // QEMU reports 0 bytes for TX. The queue checks `len <= writable bytes`
                // (0 for a transmit chain), so a device reporting more is `BadLen` below,
                // and the buffer still goes back.
                Used::Done(pkt, _) => {
                    if let Err(pkt) = done.push(pkt) {
                        PktBuf::free_bulk(&mut done);
                        // `done` is empty now.
                        let _ = done.push(pkt);
                    }
                }
                Used::BadLen(pkt, _) => {
                    bad += 1;
                    drop(pkt);
                }
                Used::BadId(_) => bad += 1,
            }
        }
        PktBuf::free_bulk(&mut done);
        if bad > 0 {
            self.counters.add_errors(bad);
        }
    }
}

impl<T: Transport> TxQueue for VirtioTxQueue<T> {
    #[inline]
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        self.reclaim();
        let offered = pkts.len();
        if offered == 0 {
            return 0;
        }
        // A broken queue takes nothing: the caller keeps its packets (and may drop them).
        let take = if self.vq.is_broken() {
            0
        } else {
            offered.min(self.vq.free_descs())
        };
        let (mut sent, mut bytes, mut bad) = (0u64, 0u64, 0u64);
        for mut pkt in pkts.drain_front(take) {
            let len = pkt.len();
            let Some(hdr) = pkt.prepend(NET_HDR_LEN).and_then(|h| h.first_chunk_mut()) else {
                // No headroom for the header: cannot go out without a copy.
                bad += 1;
                continue;
            };
            // No offloads asked for.
            NetHdr::default().write(hdr);
            let seg = Segment {
                iova: pkt.data_iova(),
                len: pkt.len() as u32,
                writable: false,
            };
            match self.vq.add(&[seg], pkt) {
                Ok(()) => {
                    sent += 1;
                    bytes += len as u64;
                }
                Err(_) => bad += 1,
            }
        }
        // One publish (and at most one doorbell) per burst.
        if self.vq.publish() && self.doorbell.notify().is_err() {
            bad += 1;
        }
        if sent > 0 {
            self.counters.add_packets(sent, bytes);
        }
        if bad > 0 {
            self.counters.add_errors(bad);
        }
        if take < offered {
            self.counters.add_full(1);
        }
        take
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}

impl<T: Transport> Drop for VirtioTxQueue<T> {
    fn drop(&mut self) {
        self.reclaim();
        self.shared.park(&mut self.vq);
    }
}
