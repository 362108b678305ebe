//! Run-to-completion lcores: each polls its rx queues and sends on its own tx queues.

use sluice_config::{QueueRef, TxPolicy};
use sluice_dataplane::{RtcLayout, RxPath};
use sluice_pmd::net::any::{AnyRxQueue, AnyTxQueue};

use super::Launch;
use super::cores::spec;
use super::rules::{mac_of, rewrite};
use super::seed::seed;
use crate::capture::TapRx;
use crate::error::AppError;

impl Launch<'_> {
    /// Starts every lcore of the configuration as a run-to-completion lcore.
    pub(super) fn spawn_rtc(&mut self) -> Result<(), AppError> {
        let config = self.config;
        for l in config.lcores() {
            let name = format!("lcore {} (rtc)", l.core);
            let rx =
                l.rx.iter()
                    .map(|&q| self.rx_path(&name, q, &l.tx))
                    .collect::<Result<Vec<_>, _>>()?;
            let mut tx =
                l.tx.iter()
                    .map(|&t| self.tx_tapped(t))
                    .collect::<Result<Vec<_>, _>>()?;
            if self.opts.tx_first > 0 {
                for (q, &t) in tx.iter_mut().zip(&l.tx) {
                    self.seed(q.inner_mut(), t)?;
                }
            }
            self.rt.spawn_rtc(RtcLayout {
                lcore: spec(name, self.cpu(l.core), self.opts.pin)
                    .lossless(l.tx_policy == TxPolicy::Lossless),
                rx,
                tx,
            })?;
        }
        Ok(())
    }

    /// Seeds tx queue `t` (`--tx-first`) with frames from its port's pool and says so.
    fn seed(&self, q: &mut AnyTxQueue, t: QueueRef) -> Result<(), AppError> {
        let config = self.config;
        let port = config.port(t.port);
        let pool = self
            .pools
            .get(port.mempool.index())
            .ok_or_else(|| AppError::Usage(format!("port {}: no mempool", port.name)))?;
        let mac = mac_of(config, self.ports, t.port).0;
        let s = seed(q, pool, self.opts.tx_first, mac);
        eprintln!(
            "sluice: --tx-first {}: {} frames sent on {} ({} refused by a full queue, {} \
             not built for want of buffers)",
            self.opts.tx_first,
            s.sent,
            config.queue_name(t),
            s.refused,
            s.no_buffers
        );
        Ok(())
    }

    /// Rx queue `q` of lcore `name`, whose tx queues are `tx`: its rewrite, and which of `tx`
    /// it sends on (the same queue index on the destination port, else the first queue there).
    fn rx_path(
        &mut self,
        name: &str,
        q: QueueRef,
        tx: &[QueueRef],
    ) -> Result<RxPath<TapRx<AnyRxQueue>>, AppError> {
        let config = self.config;
        let (to, rw) = rewrite(config, self.ports, q.port).ok_or_else(|| {
            AppError::Usage(format!(
                "{name}: no forwarding rule for {}",
                config.queue_name(q)
            ))
        })?;
        let tx = tx
            .iter()
            .position(|t| t.port == to && t.queue == q.queue)
            .or_else(|| tx.iter().position(|t| t.port == to))
            .ok_or_else(|| {
                AppError::Usage(format!("{name}: no tx queue on {}", config.port(to).name))
            })?;
        Ok(RxPath {
            queue: self.rx_tapped(q)?,
            rewrite: rw,
            tx,
        })
    }
}
