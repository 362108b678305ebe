//! The transmit burst: `PktBuf`s → TX ring, completions → buffers back to their pool.
//! No allocation, no formatting; the only syscall is the TX kick (`sendto(MSG_DONTWAIT)`),
//! made when the kernel's need-wakeup flag asks for it (always, in copy mode).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use sluice_mempool::{Batch, PktBuf, PktPool};

use super::ring::{ConsRing, ProdRing};
use super::sys::{self, XdpDesc};
use super::umem::{ChunkTable, Geometry};
use super::xsk::Xsk;
use crate::net::{QueueCounters, TxQueue};

/// Most `sendto` kicks per burst (each moves up to 32 frames in copy mode).
const KICK_TRIES: usize = 4;

/// Transmit queue of an [`AfXdpPort`](super::AfXdpPort): owns the socket's TX and
/// COMPLETION rings and the buffers in flight on them.
///
/// A `PktBuf` of the port's UMEM goes out from where its data lies (zero copy) and stays
/// in the shadow table until the COMPLETION ring returns its address. A `PktBuf` of any
/// other pool is copied into a chunk of the UMEM first and dropped at once.
pub struct AfXdpTxQueue {
    tx: ProdRing<XdpDesc>,
    comp: ConsRing<u64>,
    /// Buffers on TX or not yet completed, by chunk.
    table: ChunkTable,
    geo: Geometry,
    pool: PktPool,
    counters: Arc<QueueCounters>,
    fd: RawFd,
    queue: u16,
    // Last: see `AfXdpRxQueue`.
    xsk: Arc<Xsk>,
}

impl core::fmt::Debug for AfXdpTxQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AfXdpTxQueue")
            .field("queue", &self.queue)
            .field("in_flight", &self.table.held())
            .finish_non_exhaustive()
    }
}

impl AfXdpTxQueue {
    /// Wraps a bound socket's rings.
    pub(super) fn new(
        xsk: Arc<Xsk>,
        tx: ProdRing<XdpDesc>,
        comp: ConsRing<u64>,
        table: ChunkTable,
        counters: Arc<QueueCounters>,
        queue: u16,
    ) -> Self {
        Self {
            geo: xsk.umem().geometry(),
            pool: xsk.umem().pool().clone(),
            fd: xsk.fd().as_raw_fd(),
            tx,
            comp,
            table,
            counters,
            queue,
            xsk,
        }
    }

    /// Buffers handed to the kernel and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.table.held()
    }

    /// Returns completed buffers to their pool.
    #[inline]
    fn reclaim(&mut self) {
        let (n, bogus) = self.comp.peek(self.comp.size());
        let mut bad = u64::from(bogus);
        for i in 0..n {
            // Checked like an RX address: a completion for a chunk we did not send is
            // counted, not followed.
            match self.table.take(self.comp.read(i)) {
                Ok(pkt) => drop(pkt),
                Err(_) => bad += 1,
            }
        }
        self.comp.release(n);
        if bad > 0 {
            self.counters.add_errors(bad);
        }
    }

    /// Kicks the kernel if it asks to be (copy mode: always) and something awaits it.
    ///
    /// In copy mode one `sendto` transmits at most 32 descriptors and then answers EAGAIN
    /// (it also does when the COMPLETION ring is full), so the kick is repeated — after
    /// reclaiming completions — while the ring still holds frames, up to [`KICK_TRIES`]
    /// times per burst: a backlog left by a busy moment drains instead of persisting until
    /// the TX ring fills (DPDK's `kick_tx` loops the same way, unbounded).
    #[inline]
    fn kick(&mut self, sent: u32) {
        if !(sent > 0 || self.tx.outstanding() > 0) || !self.tx.needs_wakeup() {
            return;
        }
        for _ in 0..KICK_TRIES {
            match sys::kick_tx(self.fd) {
                Ok(()) => return,
                Err(libc::EAGAIN) => {
                    self.reclaim();
                    if self.tx.outstanding() == 0 {
                        return;
                    }
                }
                // Busy or out of skbs: the next burst kicks again.
                Err(libc::EBUSY | libc::ENOBUFS) => return,
                Err(_) => {
                    self.counters.add_errors(1);
                    return;
                }
            }
        }
    }

    /// Kicks the kernel and reclaims completions without sending (for a drain at stop).
    pub fn flush(&mut self) {
        self.kick(0);
        self.reclaim();
    }
}

impl TxQueue for AfXdpTxQueue {
    #[inline]
    fn tx_burst<const N: usize>(&mut self, pkts: &mut Batch<PktBuf, N>) -> usize {
        self.reclaim();
        let offered = pkts.len();
        if offered == 0 {
            self.kick(0);
            return 0;
        }
        let mut take = (self.tx.free(offered as u32) as usize).min(offered);
        // Buffers of other pools need a chunk of ours each; take only as many of them as
        // the pool can give.
        let geo = self.geo;
        let foreign = pkts.as_slice()[..take]
            .iter()
            .filter(|p| geo.chunk_offset(p).is_none())
            .count();
        let mut spare: Batch<PktBuf, N> = Batch::new();
        if foreign > 0 {
            let got = self.pool.alloc_burst(&mut spare, foreign);
            if got < foreign {
                let mut seen = 0;
                for (i, p) in pkts.as_slice()[..take].iter().enumerate() {
                    if geo.chunk_offset(p).is_none() {
                        if seen == got {
                            take = i;
                            break;
                        }
                        seen += 1;
                    }
                }
            }
        }
        let (mut sent, mut bytes, mut bad) = (0u32, 0u64, 0u64);
        for pkt in pkts.drain_front(take) {
            let pkt = if geo.chunk_offset(&pkt).is_some() {
                pkt
            } else {
                let Some(mut copy) = spare.pop() else {
                    bad += 1;
                    continue;
                };
                // A frame longer than a chunk's data room cannot be sent from a chunk.
                if copy.extend_from_slice(pkt.data()).is_none() {
                    bad += 1;
                    continue;
                }
                copy
            };
            let (data_off, len) = (pkt.headroom() as u64, pkt.len() as u32);
            match self.table.put(pkt) {
                Ok(off) => {
                    // The data never crosses its chunk: headroom + len <= buf_len == chunk.
                    self.tx.write(
                        sent,
                        XdpDesc {
                            addr: off + data_off,
                            len,
                            options: 0,
                        },
                    );
                    sent += 1;
                    bytes += u64::from(len);
                }
                Err(_) => bad += 1,
            }
        }
        self.tx.submit(sent);
        self.kick(sent);
        if sent > 0 {
            self.counters.add_packets(u64::from(sent), bytes);
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

impl Drop for AfXdpTxQueue {
    fn drop(&mut self) {
        // Give the kernel a last chance to send and complete, then park what is still in
        // flight until the socket closes (it may still be read until then).
        self.flush();
        let table = core::mem::replace(&mut self.table, ChunkTable::empty(self.geo));
        self.xsk.park(table);
    }
}
