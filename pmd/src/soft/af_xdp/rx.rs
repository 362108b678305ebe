//! The receive burst: RX ring → `PktBuf`s, and FILL ring refill from the UMEM's pool.
//! No allocation, no formatting; the only syscall is the FILL wakeup when the kernel's
//! need-wakeup flag asks for it.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use sluice_mempool::{Batch, PktBuf, PktPool};

use super::ring::{ConsRing, ProdRing};
use super::sys::{self, XdpDesc};
use super::umem::ChunkTable;
use super::xsk::Xsk;
use crate::net::{QueueCounters, RxQueue};

/// Buffers posted to FILL per pool request.
const REFILL_BURST: usize = 32;

/// Receive queue of an [`AfXdpPort`](super::AfXdpPort): owns the socket's FILL and RX rings
/// and the buffers posted on them.
pub struct AfXdpRxQueue {
    fill: ProdRing<u64>,
    rx: ConsRing<XdpDesc>,
    /// Buffers on FILL or in the kernel's hands, by chunk.
    table: ChunkTable,
    pool: PktPool,
    counters: Arc<QueueCounters>,
    /// At most this many buffers are posted at once (the FILL ring's size).
    posted_max: usize,
    fd: RawFd,
    port: u16,
    queue: u16,
    // Last: keeps the socket open until the table above was parked in it (see `Drop`).
    xsk: Arc<Xsk>,
}

impl core::fmt::Debug for AfXdpRxQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AfXdpRxQueue")
            .field("queue", &self.queue)
            .field("posted", &self.table.held())
            .finish_non_exhaustive()
    }
}

impl AfXdpRxQueue {
    /// Wraps a bound socket's rings; the FILL ring was primed by `prime` before the bind.
    pub(super) fn new(
        xsk: Arc<Xsk>,
        fill: ProdRing<u64>,
        rx: ConsRing<XdpDesc>,
        table: ChunkTable,
        counters: Arc<QueueCounters>,
        port: u16,
        queue: u16,
    ) -> Self {
        Self {
            posted_max: fill.size() as usize,
            fd: xsk.fd().as_raw_fd(),
            pool: xsk.umem().pool().clone(),
            fill,
            rx,
            table,
            counters,
            port,
            queue,
            xsk,
        }
    }

    /// Posts as many buffers as the FILL ring and the posting limit allow.
    pub(super) fn prime(
        fill: &mut ProdRing<u64>,
        table: &mut ChunkTable,
        pool: &PktPool,
        counters: &QueueCounters,
    ) {
        let max = fill.size() as usize;
        refill(fill, table, pool, counters, max);
    }
}

/// Posts up to `posted_max - held` buffers on FILL; counts `rx_nombuf` for a short pool.
/// Returns how many were posted.
#[inline]
fn refill(
    fill: &mut ProdRing<u64>,
    table: &mut ChunkTable,
    pool: &PktPool,
    counters: &QueueCounters,
    posted_max: usize,
) -> u32 {
    let want = posted_max.saturating_sub(table.held()) as u32;
    let room = fill.free(want).min(want);
    let mut done = 0u32;
    let mut errors = 0u64;
    while done < room {
        let ask = REFILL_BURST.min((room - done) as usize);
        let mut bufs: Batch<PktBuf, REFILL_BURST> = Batch::new();
        let got = pool.alloc_burst(&mut bufs, ask);
        for pkt in bufs.drain() {
            match table.put(pkt) {
                // Aligned mode: the kernel places the frame inside the chunk itself.
                Ok(off) => {
                    fill.write(done, off);
                    done += 1;
                }
                // Not a chunk of this UMEM or already posted: a bookkeeping bug; the
                // buffer goes back to its pool.
                Err(_) => errors += 1,
            }
        }
        if got < ask {
            counters.add_rx_nombuf((ask - got) as u64);
            break;
        }
    }
    fill.submit(done);
    if errors > 0 {
        counters.add_errors(errors);
    }
    done
}

impl RxQueue for AfXdpRxQueue {
    #[inline]
    fn rx_burst<const N: usize>(&mut self, out: &mut Batch<PktBuf, N>) -> usize {
        let (n, bogus) = self.rx.peek(out.remaining() as u32);
        let (mut got, mut bytes, mut bad) = (0usize, 0u64, u64::from(bogus));
        for i in 0..n {
            let d = self.rx.read(i);
            // Every address from the kernel is checked before it is followed.
            match self.table.take_rx(d.addr, d.len) {
                Ok(mut pkt) => {
                    let meta = pkt.meta_mut();
                    meta.port = self.port;
                    meta.queue = self.queue;
                    bytes += u64::from(d.len);
                    // `n <= out.remaining()`, so the push cannot fail; were it to, the
                    // buffer would simply go back to its pool.
                    if out.push(pkt).is_ok() {
                        got += 1;
                    }
                }
                Err(_) => bad += 1,
            }
        }
        self.rx.release(n);
        if got > 0 {
            self.counters.add_packets(got as u64, bytes);
        }
        if bad > 0 {
            self.counters.add_errors(bad);
        }
        // Refill in bursts, not one buffer at a time.
        let mut posted = 0;
        if self.table.held() + REFILL_BURST <= self.posted_max {
            posted = refill(
                &mut self.fill,
                &mut self.table,
                &self.pool,
                &self.counters,
                self.posted_max,
            );
        }
        // af_xdp.rst "XDP_USE_NEED_WAKEUP": the kernel asks for a syscall before it will
        // take buffers from FILL again. Looked at when idle or after posting (as DPDK
        // does), so that a busy queue does not read the kernel's flags line every burst.
        if (got == 0 || posted > 0) && self.fill.needs_wakeup() {
            // EAGAIN and friends are normal; the next burst retries.
            let _ = sys::wakeup_fill(self.fd);
        }
        got
    }

    fn counters(&self) -> &Arc<QueueCounters> {
        &self.counters
    }
}

impl Drop for AfXdpRxQueue {
    fn drop(&mut self) {
        // The kernel may still write into posted buffers until the socket closes, so they
        // go back to the pool only then: hand them to the socket object.
        let geo = self.xsk.umem().geometry();
        let table = core::mem::replace(&mut self.table, ChunkTable::empty(geo));
        self.xsk.park(table);
    }
}
