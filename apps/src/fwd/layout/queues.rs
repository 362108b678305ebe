//! The ports' queues, taken once from the ports and then handed out one by one to the lcore,
//! generator or sink the configuration gives them to.

use sluice_config::{Config, QueueRef};
use sluice_pmd::net::NetPort;
use sluice_pmd::net::any::{AnyPort, AnyRxQueue, AnyTxQueue};

use crate::error::AppError;

/// Queue handles by port and queue index, taken one by one.
pub(super) struct QueueTable {
    rx: Vec<Vec<Option<AnyRxQueue>>>,
    tx: Vec<Vec<Option<AnyTxQueue>>>,
}

impl QueueTable {
    /// Takes the queues of every port.
    pub(super) fn take(config: &Config, ports: &mut [AnyPort]) -> Result<Self, AppError> {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for (i, p) in ports.iter_mut().enumerate() {
            let q = p.take_queues().ok_or_else(|| {
                AppError::Usage(format!(
                    "port {}: queues already taken",
                    config.ports()[i].name
                ))
            })?;
            rx.push(q.rx.into_iter().map(Some).collect());
            tx.push(q.tx.into_iter().map(Some).collect());
        }
        Ok(Self { rx, tx })
    }

    /// Rx queue `q`, which must not have been handed out before.
    pub(super) fn rx(&mut self, config: &Config, q: QueueRef) -> Result<AnyRxQueue, AppError> {
        self.rx[q.port.index()]
            .get_mut(usize::from(q.queue))
            .and_then(Option::take)
            .ok_or_else(|| AppError::Usage(format!("rx queue {} is missing", config.queue_name(q))))
    }

    /// Tx queue `q`, which must not have been handed out before.
    pub(super) fn tx(&mut self, config: &Config, q: QueueRef) -> Result<AnyTxQueue, AppError> {
        self.tx[q.port.index()]
            .get_mut(usize::from(q.queue))
            .and_then(Option::take)
            .ok_or_else(|| AppError::Usage(format!("tx queue {} is missing", config.queue_name(q))))
    }
}
