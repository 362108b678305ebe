//! Virtio ports: one VFIO container (type1, IOMMU) shared by every virtio port of the run;
//! each port's receive buffers come from its mempool, which the port registers with the
//! container's IOMMU at IOVA = VA when it opens.

use std::sync::Arc;

use sluice_config::Port;
use sluice_mempool::PktPool;
use sluice_pmd::net::MacAddr;
use sluice_pmd::net::any::AnyPort;
use sluice_pmd::vfio::{Container, IommuMode};
use sluice_pmd::virtio::{VirtioConfig, VirtioPort};

use crate::error::AppError;

/// The run's VFIO container, made when the first virtio port opens.
#[derive(Default)]
pub(super) struct Vfio {
    container: Option<Arc<Container>>,
}

impl Vfio {
    fn container(&mut self, port: &str) -> Result<Arc<Container>, AppError> {
        if let Some(c) = &self.container {
            return Ok(c.clone());
        }
        let c = Container::new(IommuMode::Type1v2).map_err(|source| AppError::Port {
            port: port.to_string(),
            source,
        })?;
        self.container = Some(c.clone());
        Ok(c)
    }
}

/// Opens config port `id` on the virtio-net device at `pci`.
pub(super) fn open(
    vfio: &mut Vfio,
    pools: &[PktPool],
    id: usize,
    port: &Port,
    pci: &sluice_config::PciAddr,
) -> Result<AnyPort, AppError> {
    let err = |source| AppError::Port {
        port: port.name.clone(),
        source,
    };
    let addr = pci
        .to_string()
        .parse::<sluice_pmd::pci::PciAddr>()
        .map_err(err)?;
    let pool = pools
        .get(port.mempool.index())
        .ok_or_else(|| AppError::Usage(format!("port {}: no mempool", port.name)))?;
    let cfg = VirtioConfig {
        name: port.name.clone(),
        port_id: id as u16,
        queues: port.queues,
        rx_descriptors: port.rx_descriptors,
        tx_descriptors: port.tx_descriptors,
        mac: port.mac.map(|m| MacAddr(m.0)),
        ..VirtioConfig::default()
    };
    let container = vfio.container(&port.name)?;
    VirtioPort::open(addr, &cfg, pool, &container)
        .map(AnyPort::from)
        .map_err(err)
}
