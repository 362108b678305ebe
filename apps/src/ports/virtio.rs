//! Virtio ports: one VFIO container (type1, IOMMU) shared by every virtio port of the run;
//! each port's receive buffers come from its mempool, which the port registers with the
//! container's IOMMU at IOVA = VA when it opens. `virtio-user` ports reach a vhost-user
//! backend through its socket instead: their mempools are made shareable (memfd) so that the
//! backend can map them.

use std::sync::Arc;

use sluice_config::{Config, Port, PortDriver};
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
    mode: Option<IommuMode>,
}

impl Vfio {
    /// The container for `config`'s virtio ports, in the mode their groups are in.
    pub(super) fn for_config(config: &Config) -> Result<Self, AppError> {
        Ok(Vfio {
            container: None,
            mode: Some(iommu_mode(config)?),
        })
    }

    fn container(&mut self, port: &str) -> Result<Arc<Container>, AppError> {
        if let Some(c) = &self.container {
            return Ok(c.clone());
        }
        let mode = self.mode.unwrap_or(IommuMode::Type1v2);
        let c = Container::new(mode).map_err(|source| AppError::Port {
            port: port.to_string(),
            source,
        })?;
        self.container = Some(c.clone());
        Ok(c)
    }
}

/// The IOMMU mode of `config`'s virtio (PCI) ports: no-IOMMU when their VFIO groups are
/// `noiommu-N` (VFIO's unsafe no-IOMMU mode: the devices see physical addresses), type1
/// otherwise (also for a device without a group, whose open then says why). All of them
/// share one container, so they must agree.
pub(super) fn iommu_mode(config: &Config) -> Result<IommuMode, AppError> {
    let sysfs = sluice_pmd::pci::Sysfs::system();
    let mut seen: Option<(IommuMode, &str)> = None;
    for port in config.ports() {
        let PortDriver::Virtio { pci } = &port.driver else {
            continue;
        };
        let err = |source| AppError::Port {
            port: port.name.clone(),
            source,
        };
        let addr = pci
            .to_string()
            .parse::<sluice_pmd::pci::PciAddr>()
            .map_err(err)?;
        let noiommu = sysfs
            .iommu_group(addr)
            .map_err(err)?
            .is_some_and(|g| g.noiommu);
        let mode = if noiommu {
            IommuMode::NoIommu
        } else {
            IommuMode::Type1v2
        };
        match seen {
            Some((m, other)) if m != mode => {
                return Err(AppError::Usage(format!(
                    "port {}: its VFIO group is {}, port {other}'s is {}: virtio ports of one \
                     run share one container, so all or none must be in no-IOMMU mode",
                    port.name,
                    mode_name(mode),
                    mode_name(m)
                )));
            }
            _ => seen = Some((mode, &port.name)),
        }
    }
    Ok(seen.map_or(IommuMode::Type1v2, |s| s.0))
}

fn mode_name(mode: IommuMode) -> &'static str {
    match mode {
        IommuMode::NoIommu => "a no-IOMMU group",
        IommuMode::Type1v2 => "an IOMMU group",
    }
}

/// Whether mempool `id` feeds a virtio (PCI) port in no-IOMMU mode, whose device must see
/// physical addresses (`mode` from [`iommu_mode`]).
pub(super) fn needs_physical_iovas(config: &Config, id: usize, mode: IommuMode) -> bool {
    mode == IommuMode::NoIommu
        && config
            .ports()
            .iter()
            .any(|p| matches!(p.driver, PortDriver::Virtio { .. }) && p.mempool.index() == id)
}

/// Whether mempool `id` is used by a `virtio-user` port, whose backend must map it.
pub(super) fn shared_with_a_backend(config: &Config, id: usize) -> bool {
    config
        .ports()
        .iter()
        .any(|p| matches!(p.driver, PortDriver::VirtioUser { .. }) && p.mempool.index() == id)
}

/// The driver's settings for config port `id`.
fn virtio_config(id: usize, port: &Port) -> VirtioConfig {
    VirtioConfig {
        name: port.name.clone(),
        port_id: id as u16,
        queues: port.queues,
        rx_descriptors: port.rx_descriptors,
        tx_descriptors: port.tx_descriptors,
        mac: port.mac.map(|m| MacAddr(m.0)),
        ..VirtioConfig::default()
    }
}

/// Opens config port `id` on the vhost-user backend listening at `path`.
pub(super) fn open_user(
    pools: &[PktPool],
    id: usize,
    port: &Port,
    path: &std::path::Path,
    packed: bool,
) -> Result<AnyPort, AppError> {
    let pool = pools
        .get(port.mempool.index())
        .ok_or_else(|| AppError::Usage(format!("port {}: no mempool", port.name)))?;
    let mut cfg = virtio_config(id, port);
    if !packed {
        cfg.features &= !sluice_pmd::virtio::feature::RING_PACKED;
    }
    VirtioPort::open_vhost_user(path, &cfg, pool)
        .map(AnyPort::from)
        .map_err(|source| AppError::Port {
            port: port.name.clone(),
            source,
        })
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
    let cfg = virtio_config(id, port);
    let container = vfio.container(&port.name)?;
    VirtioPort::open(addr, &cfg, pool, &container)
        .map(AnyPort::from)
        .map_err(err)
}
