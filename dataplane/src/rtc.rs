//! Run-to-completion: one lcore receives, rewrites and transmits (testpmd io-forward,
//! l2fwd).
//!
//! Each rx queue has a destination tx queue on the same lcore. A burst is received straight
//! into the destination's [`Held`] batch, rewritten in place and sent: no copy between
//! batches. An rx queue whose destination still holds refused packets is not polled (see
//! [`crate::hold`] for the policy).

use sluice_pmd::net::{RxQueue, TxQueue};

use crate::fwd::Rewrite;
use crate::hold::{Held, TxOutlet};
use crate::lcore::Task;

/// One rx queue of a run-to-completion lcore and where its frames go.
#[derive(Debug)]
pub struct RxPath<R> {
    /// The queue.
    pub queue: R,
    /// The rewrite of the forwarding rule of its port.
    pub rewrite: Rewrite,
    /// Index, in the lcore's tx list, of the destination queue.
    pub tx: usize,
}

/// The task of a run-to-completion lcore.
#[derive(Debug)]
pub struct RtcTask<R: RxQueue, T: TxQueue, const N: usize> {
    rx: Vec<RxPath<R>>,
    tx: Vec<Held<TxOutlet<T>, N>>,
}

impl<R: RxQueue + 'static, T: TxQueue + 'static, const N: usize> RtcTask<R, T, N> {
    /// A task polling `rx` and sending on `tx`; every path's `tx` index must be in range
    /// (checked by [`crate::Runtime::spawn_rtc`]). `stall_ticks` as in [`Held::new`].
    pub fn new(rx: Vec<RxPath<R>>, tx: Vec<T>, stall_ticks: u64) -> Self {
        Self {
            rx,
            tx: tx
                .into_iter()
                .map(|q| Held::new(TxOutlet(q), stall_ticks))
                .collect(),
        }
    }
}

impl<R: RxQueue + 'static, T: TxQueue + 'static, const N: usize> Task for RtcTask<R, T, N> {
    #[inline]
    fn poll(&mut self) -> usize {
        let mut moved = 0;
        for path in &mut self.rx {
            // In range by construction; `get_mut` keeps the loop free of a panic path.
            let Some(out) = self.tx.get_mut(path.tx) else {
                continue;
            };
            if !out.ready() {
                continue;
            }
            let n = path.queue.rx_burst(&mut out.batch);
            if n > 0 {
                path.rewrite.apply(&mut out.batch);
                out.flush();
                moved += n;
            }
        }
        moved
    }

    fn drain(&mut self) -> bool {
        let mut done = true;
        for out in &mut self.tx {
            done &= out.ready();
        }
        done
    }
}
