//! `vhost-user` ports: this process as the vhost-user backend of a VM or a virtio-user
//! container. Its mempool stays private (packets are copied into and out of the frontend's
//! memory); the port listens on its socket as it opens, and its link comes up when a
//! frontend has connected and started its rings.

use sluice_config::Port;
use sluice_mempool::PktPool;
use sluice_pmd::net::MacAddr;
use sluice_pmd::net::any::AnyPort;
use sluice_pmd::virtio::backend::{BackendConfig, VhostUserBackendPort};

use crate::error::AppError;

/// Opens config port `id` listening at `path`.
pub(super) fn open(
    pools: &[PktPool],
    id: usize,
    port: &Port,
    path: &std::path::Path,
) -> Result<AnyPort, AppError> {
    let pool = pools
        .get(port.mempool.index())
        .ok_or_else(|| AppError::Usage(format!("port {}: no mempool", port.name)))?;
    let cfg = BackendConfig {
        name: port.name.clone(),
        port_id: id as u16,
        queues: port.queues,
        mac: port.mac.map(|m| MacAddr(m.0)),
    };
    VhostUserBackendPort::open(path, &cfg, pool)
        .map(AnyPort::from)
        .map_err(|source| AppError::Port {
            port: port.name.clone(),
            source,
        })
}
