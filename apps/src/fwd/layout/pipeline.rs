//! Pipeline lcores: rx lcores hand batches to workers, which apply the forwarding rules and
//! hand them to tx lcores, over the rings the runtime makes.

use sluice_config::{LcoreRole, TxPolicy};
use sluice_dataplane::PipelineLayout;
use sluice_pmd::net::any::{AnyRxQueue, AnyTxQueue};

use super::Launch;
use super::cores::{role_name, spec};
use super::rules::rewrite;
use crate::capture::{TapRx, TapTx};
use crate::error::AppError;

impl Launch<'_> {
    /// Starts the configuration's lcores as a pipeline.
    pub(super) fn spawn_pipeline(&mut self) -> Result<(), AppError> {
        let p = self
            .config
            .pipeline()
            .ok_or_else(|| AppError::Usage("pipeline lcores without [pipeline]".into()))?;
        let mut layout = PipelineLayout {
            rx: Vec::new(),
            workers: Vec::new(),
            tx: Vec::new(),
            rules: Vec::new(),
            ring_size: p.ring_size as usize,
            burst: usize::from(p.burst),
        };
        self.stages(&mut layout)?;
        for r in self.config.forward() {
            if let Some((to, rw)) = rewrite(self.config, self.ports, r.from) {
                layout
                    .rules
                    .push((r.from.index() as u16, to.index() as u16, rw));
            }
        }
        self.rt.spawn_pipeline(layout)?;
        Ok(())
    }

    /// Adds each lcore to its stage of `layout`, with the queues it owns.
    fn stages(
        &mut self,
        layout: &mut PipelineLayout<TapRx<AnyRxQueue>, TapTx<AnyTxQueue>>,
    ) -> Result<(), AppError> {
        let (config, pin) = (self.config, self.opts.pin);
        for l in config.lcores() {
            let name = format!("lcore {} ({})", l.core, role_name(l.role));
            let lcore = spec(name.clone(), self.cpu(l.core), pin)
                .lossless(l.tx_policy == TxPolicy::Lossless);
            match l.role {
                LcoreRole::Rx => {
                    let qs =
                        l.rx.iter()
                            .map(|&q| Ok((self.rx_tapped(q)?, q.port.index() as u16)))
                            .collect::<Result<Vec<_>, AppError>>()?;
                    layout.rx.push((lcore, qs));
                }
                LcoreRole::Worker => layout.workers.push(lcore),
                LcoreRole::Tx => {
                    let qs =
                        l.tx.iter()
                            .map(|&q| Ok((self.tx_tapped(q)?, q.port.index() as u16)))
                            .collect::<Result<Vec<_>, AppError>>()?;
                    layout.tx.push((lcore, qs));
                }
                LcoreRole::RunToCompletion => {
                    return Err(AppError::Usage(format!(
                        "{name}: rtc lcores cannot be mixed with a pipeline"
                    )));
                }
            }
        }
        Ok(())
    }
}
