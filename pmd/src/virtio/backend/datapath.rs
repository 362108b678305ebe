//! The lcores' side: a receive queue copies what the frontend transmits (its transmit ring)
//! into [`PktBuf`]s; a transmit queue copies packets into the frontend's receive buffers,
//! merging buffers for one packet with `MRG_RXBUF`. Both give the frontend's buffers back in
//! one batch per burst and call it at most once per burst, when its event index (or flags)
//! asks for it.
//!
//! Each burst `try_lock`s its ring once and skips the burst when the control thread holds it
//! ([`vring`](super::vring)). Nothing here allocates, waits or formats; the one system call
//! is the call eventfd's write, when the frontend asked for it.
//!
//! What the frontend gets wrong is counted as errors on the queue: a chain to give back
//! unused ([`ChainFault`]) costs that chain (and the packet); a broken ring ([`RingFault`])
//! stops the ring until the frontend sets it up again, its fault kept for
//! [`VhostUserBackendPort::take_fault`](super::VhostUserBackendPort::take_fault).

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use super::error::RingFault;
use super::guest::GuestMap;
use super::ring::{BATCH, ChainFault, GuestRing, One, Pop, Popped, Used};
use super::vring::{Shared, Vring, signal};
use crate::net::{QueueCounters, RxQueue, TxQueue};
use crate::virtio::NET_HDR_LEN;
use sluice_mempool::{Batch, PktBuf, PktPool};

/// Most buffers one packet is merged over (`MRG_RXBUF`); a packet that needs more is dropped.
pub const MAX_MERGE: usize = 32;

/// `virtio_net_hdr_v1` of a packet in one receive buffer: no offloads, `num_buffers` 1 (also
/// what a device without `MRG_RXBUF` writes there).
const HDR_ONE_BUFFER: [u8; NET_HDR_LEN] = {
    let mut h = [0; NET_HDR_LEN];
    h[10] = 1;
    h
};

/// Used entries a queue gathers in one burst.
pub(crate) const USED_BATCH: usize = 512;

/// The lcore's try at ring `i`: `None` while the control thread holds it.
fn try_ring(m: &Mutex<Vring>) -> Option<MutexGuard<'_, Vring>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A receive queue of a [`VhostUserBackendPort`](super::VhostUserBackendPort): the
/// frontend's transmit ring `2q + 1`.
pub struct VhostBackendRxQueue {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ring: usize,
    pub(crate) pool: PktPool,
    pub(crate) counters: Arc<QueueCounters>,
    pub(crate) port: u16,
    pub(crate) queue: u16,
    pub(crate) used: Vec<Used>,
}

impl std::fmt::Debug for VhostBackendRxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostBackendRxQueue")
            .field("ring", &self.ring)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Copies one readable buffer into `pkt`, past the `skip` header bytes still to skip.
#[inline]
fn copy_in(
    map: &GuestMap,
    pkt: &mut PktBuf,
    skip: &mut usize,
    addr: u64,
    len: u32,
) -> Result<(), ChainFault> {
    let fault = ChainFault::Memory { addr, len };
    let len = len as usize;
    let s = (*skip).min(len);
    *skip -= s;
    if s == len {
        return Ok(());
    }
    let at = addr.checked_add(s as u64).ok_or(fault)?;
    let dst = pkt.append(len - s).ok_or(ChainFault::TooBig)?;
    if map.read(at, dst) {
        Ok(())
    } else {
        Err(fault)
    }
}

/// A receive burst: where its chains and packets go, and what it took so far.
struct Rx<'a> {
    used: &'a mut Vec<Used>,
    pool: &'a PktPool,
    counters: &'a QueueCounters,
    port: u16,
    queue: u16,
    n: u64,
    bytes: u64,
    errors: u64,
    bad: Option<ChainFault>,
}

/// Why a receive burst stops early.
enum Stop {
    NoBuffers,
    Fault(RingFault),
}

impl Rx<'_> {
    /// Hands a chain back (used) and its packet on, or counts the chain's fault.
    #[inline]
    fn take<const N: usize>(
        &mut self,
        chain: Popped,
        pkt: Result<PktBuf, ChainFault>,
        out: &mut Batch<PktBuf, N>,
    ) {
        self.used.push(Used { chain, len: 0 });
        match pkt {
            Ok(mut pkt) => {
                let meta = pkt.meta_mut();
                (meta.port, meta.queue) = (self.port, self.queue);
                self.bytes += pkt.len() as u64;
                self.n += 1;
                let _ = out.push(pkt);
            }
            Err(f) => {
                self.bad = Some(f);
                self.errors += 1;
            }
        }
    }

    /// Takes a batch of single-descriptor buffers ([`GuestRing::pop_batch`]); `false`: none
    /// (the single path goes on).
    fn rx_batch<const N: usize>(
        &mut self,
        ring: &mut GuestRing,
        map: &GuestMap,
        out: &mut Batch<PktBuf, N>,
    ) -> Result<bool, Stop> {
        let cursor = ring.cursor();
        let Some(descs) = ring.pop_batch(false).map_err(Stop::Fault)? else {
            return Ok(false);
        };
        let mut pkts: Batch<PktBuf, BATCH> = Batch::new();
        if !self.pool.alloc_bulk(&mut pkts, BATCH) {
            // Nothing of the batch was used yet: it is taken again next time.
            ring.rewind(cursor);
            self.counters.add_rx_nombuf(1);
            return Err(Stop::NoBuffers);
        }
        for (d, mut pkt) in descs.into_iter().zip(pkts.drain()) {
            let mut skip = NET_HDR_LEN;
            let got = copy_in(map, &mut pkt, &mut skip, d.addr, d.len).map(|()| pkt);
            self.take(d.chain, got, out);
        }
        Ok(true)
    }
}

impl RxQueue for VhostBackendRxQueue {
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        let Self {
            shared,
            ring: at,
            pool,
            counters,
            port,
            queue,
            used,
        } = self;
        let Some(mut guard) = try_ring(&shared.rings[*at]) else {
            return 0;
        };
        let v = &mut *guard;
        let Some((ring, map, call)) = v.walkable() else {
            return 0;
        };
        // An empty poll costs one load, no buffer.
        if !ring.has_avail() {
            return 0;
        }
        used.clear();
        let mut t = Rx {
            used,
            pool,
            counters,
            port: *port,
            queue: *queue,
            n: 0,
            bytes: 0,
            errors: 0,
            bad: None,
        };
        let mut fault = None;
        while out.remaining() > 0 && t.used.len() < USED_BATCH {
            if out.remaining() >= BATCH && t.used.len() + BATCH <= USED_BATCH {
                match t.rx_batch(ring, map, out) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(Stop::NoBuffers) => break,
                    Err(Stop::Fault(f)) => {
                        fault = Some(f);
                        break;
                    }
                }
            }
            let Some(mut pkt) = t.pool.alloc() else {
                t.counters.add_rx_nombuf(1);
                break;
            };
            let mut skip = NET_HDR_LEN;
            match ring.pop(false, |a, l| copy_in(map, &mut pkt, &mut skip, a, l)) {
                Ok(Pop::Empty) => break,
                Ok(Pop::Chain(chain)) => t.take(chain, Ok(pkt), out),
                Ok(Pop::Bad(chain, f)) => t.take(chain, Err(f), out),
                Err(f) => {
                    fault = Some(f);
                    break;
                }
            }
        }
        let (n, bytes, mut errors, bad) = (t.n, t.bytes, t.errors, t.bad);
        finish(ring, call, (t.used, true), &mut fault);
        v.chain_fault = bad.or(v.chain_fault);
        if let Some(f) = fault {
            v.fail(f);
            errors += 1;
        }
        if n > 0 {
            self.counters.add_packets(n, bytes);
        }
        if errors > 0 {
            self.counters.add_errors(errors);
        }
        n as usize
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}

/// Publishes a burst's used entries (of buffers the device `read`, or wrote) and calls the
/// frontend if it asked.
fn finish(
    ring: &mut GuestRing,
    call: &mut Option<std::fs::File>,
    (used, read): (&[Used], bool),
    fault: &mut Option<RingFault>,
) {
    if used.is_empty() {
        return;
    }
    if let Err(f) = ring.publish(used, read) {
        fault.get_or_insert(f);
        return;
    }
    // `needs_call` fences before it reads the driver's event fields: one fence per burst.
    if ring.needs_call() {
        signal(call);
    }
}

/// A transmit queue of a [`VhostUserBackendPort`](super::VhostUserBackendPort): the
/// frontend's receive ring `2q`.
pub struct VhostBackendTxQueue {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ring: usize,
    pub(crate) counters: Arc<QueueCounters>,
    pub(crate) used: Vec<Used>,
}

impl std::fmt::Debug for VhostBackendTxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostBackendTxQueue")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

/// Where the bytes of one outgoing packet ([`HDR_ONE_BUFFER`], then the frame) stand.
struct Outgoing<'a> {
    data: &'a [u8],
    off: usize,
    /// Guest addresses of the header's `num_buffers` bytes, once written.
    num_buffers: [u64; 2],
}

impl Outgoing<'_> {
    fn total(&self) -> usize {
        NET_HDR_LEN + self.data.len()
    }

    /// Writes what fits of the rest into one writable buffer.
    fn write(&mut self, map: &GuestMap, addr: u64, len: u32) -> Result<(), ChainFault> {
        let fault = ChainFault::Memory { addr, len };
        let (mut at, mut room) = (addr, len as usize);
        if self.off == 0 && room >= self.total() {
            // The whole packet in this buffer: header and frame in one translation.
            self.num_buffers = [addr.wrapping_add(10), addr.wrapping_add(11)];
            self.off = self.total();
            return if map.write2(addr, &HDR_ONE_BUFFER, self.data) {
                Ok(())
            } else {
                Err(fault)
            };
        }
        while room > 0 && self.off < self.total() {
            let src = if self.off < NET_HDR_LEN {
                &HDR_ONE_BUFFER[self.off..]
            } else {
                &self.data[self.off - NET_HDR_LEN..]
            };
            let n = room.min(src.len());
            for (k, b) in [10usize, 11].into_iter().enumerate() {
                if (self.off..self.off + n).contains(&b) {
                    self.num_buffers[k] = at.wrapping_add((b - self.off) as u64);
                }
            }
            if !map.write(at, &src[..n]) {
                return Err(fault);
            }
            self.off += n;
            room -= n;
            at = at.checked_add(n as u64).ok_or(fault)?;
        }
        Ok(())
    }
}

/// How one packet went.
enum Sent {
    Done,
    /// No (more) buffers: the packet stays for the next burst.
    Full,
    /// Dropped: it does not fit, or a buffer was bad.
    Dropped(ChainFault),
    Fault(RingFault),
}

impl VhostBackendTxQueue {
    /// Copies `data` into as many receive buffers as it needs (one without `MRG_RXBUF`).
    fn send(
        ring: &mut GuestRing,
        map: &GuestMap,
        used: &mut Vec<Used>,
        data: &[u8],
        merge: bool,
    ) -> Sent {
        let (start, cursor) = (used.len(), ring.cursor());
        let most = if merge { MAX_MERGE } else { 1 };
        // The header says num_buffers 1, as most packets take one buffer; patched below
        // when not.
        let mut out = Outgoing {
            data,
            off: 0,
            num_buffers: [0; 2],
        };
        while out.off < out.total() {
            if used.len() - start == most {
                ring.rewind(cursor);
                used.truncate(start);
                return Sent::Dropped(ChainFault::TooBig);
            }
            let before = out.off;
            match ring.pop(true, |a, l| out.write(map, a, l)) {
                Ok(Pop::Empty) => {
                    ring.rewind(cursor);
                    used.truncate(start);
                    return Sent::Full;
                }
                Ok(Pop::Chain(chain)) => used.push(Used {
                    chain,
                    len: (out.off - before) as u32,
                }),
                Ok(Pop::Bad(chain, f)) => {
                    // Give back what this packet took, unused.
                    used.push(Used { chain, len: 0 });
                    used[start..].iter_mut().for_each(|u| u.len = 0);
                    return Sent::Dropped(f);
                }
                Err(f) => {
                    used.truncate(start);
                    return Sent::Fault(f);
                }
            }
        }
        let count = (used.len() - start) as u16;
        if count == 1 {
            return Sent::Done;
        }
        for (addr, b) in out.num_buffers.into_iter().zip(count.to_le_bytes()) {
            if !map.write(addr, &[b]) {
                used[start..].iter_mut().for_each(|u| u.len = 0);
                return Sent::Dropped(ChainFault::Memory { addr, len: 1 });
            }
        }
        Sent::Done
    }
}

/// A batch of packets sent ([`VhostBackendTxQueue::send_batch`]): each packet's fault, if
/// its buffer was bad.
type SentBatch = [Option<ChainFault>; BATCH];

impl VhostBackendTxQueue {
    /// Copies `pkts` into a batch of single-descriptor receive buffers
    /// ([`GuestRing::pop_batch`]) when each packet fits its buffer whole; `None` (nothing
    /// taken): [`send`](Self::send) them one by one.
    fn send_batch(
        ring: &mut GuestRing,
        map: &GuestMap,
        used: &mut Vec<Used>,
        pkts: &[PktBuf; BATCH],
    ) -> Result<Option<SentBatch>, RingFault> {
        let cursor = ring.cursor();
        let Some(descs) = ring.pop_batch(true)? else {
            return Ok(None);
        };
        let fits = |(d, p): (&One, &PktBuf)| NET_HDR_LEN + p.len() <= d.len as usize;
        if !descs.iter().zip(pkts).all(fits) {
            ring.rewind(cursor);
            return Ok(None);
        }
        let mut sent = [None; BATCH];
        for ((d, p), s) in descs.iter().zip(pkts).zip(&mut sent) {
            let total = NET_HDR_LEN + p.len();
            let ok = map.write2(d.addr, &HDR_ONE_BUFFER, p.data());
            let len = if ok { total as u32 } else { 0 };
            used.push(Used {
                chain: d.chain,
                len,
            });
            if !ok {
                *s = Some(ChainFault::Memory {
                    addr: d.addr,
                    len: d.len,
                });
            }
        }
        Ok(Some(sent))
    }
}

impl TxQueue for VhostBackendTxQueue {
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let Some(mut guard) = try_ring(&self.shared.rings[self.ring]) else {
            return 0;
        };
        let v = &mut *guard;
        let merge = v.live.as_ref().is_some_and(|l| l.mrg_rxbuf);
        let Some((ring, map, call)) = v.walkable() else {
            // Nobody to send to (no frontend, ring stopped): dropped, as a link that is down.
            let n = pkts.len();
            pkts.clear();
            self.counters.add_drops(n as u64);
            return n;
        };
        self.used.clear();
        let (mut taken, mut sent, mut bytes, mut dropped) = (0usize, 0u64, 0u64, 0u64);
        let (mut fault, mut bad) = (None, None);
        while let Some(pkt) = pkts.as_slice().get(taken) {
            if self.used.len() + MAX_MERGE > USED_BATCH {
                break;
            }
            let four = pkts.as_slice()[taken..].first_chunk::<BATCH>();
            match four.map(|b| Self::send_batch(ring, map, &mut self.used, b)) {
                Some(Ok(Some(done))) => {
                    for (p, f) in four.into_iter().flatten().zip(done) {
                        match f {
                            None => {
                                sent += 1;
                                bytes += p.len() as u64;
                            }
                            Some(f) => {
                                bad = Some(f);
                                dropped += 1;
                            }
                        }
                    }
                    taken += BATCH;
                    continue;
                }
                Some(Err(f)) => {
                    fault = Some(f);
                    break;
                }
                Some(Ok(None)) | None => {}
            }
            match Self::send(ring, map, &mut self.used, pkt.data(), merge) {
                Sent::Done => {
                    sent += 1;
                    bytes += pkt.len() as u64;
                }
                Sent::Full => break,
                Sent::Dropped(f) => {
                    bad = Some(f);
                    dropped += 1;
                }
                Sent::Fault(f) => {
                    fault = Some(f);
                    break;
                }
            }
            taken += 1;
        }
        finish(ring, call, (&self.used, false), &mut fault);
        v.chain_fault = bad.or(v.chain_fault);
        if let Some(f) = fault {
            v.fail(f);
            self.counters.add_errors(1);
        }
        drop(pkts.drain_front(taken));
        if !pkts.is_empty() && fault.is_none() {
            self.counters.add_full(1);
        }
        if sent > 0 {
            self.counters.add_packets(sent, bytes);
        }
        if dropped > 0 {
            self.counters.add_errors(dropped);
        }
        taken
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}
