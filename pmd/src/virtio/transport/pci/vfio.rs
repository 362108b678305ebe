//! A virtio-net device bound to vfio-pci: [`VirtioPort::open`] maps its BARs into a
//! [`PciTransport`], and registers the packet pool with the container's IOMMU for as long as
//! the device may reach it.

use std::sync::Arc;

use sluice_mempool::{IdentityMapper, IovaMap, IovaMapper, PagemapMapper, PktPool};

use super::PciTransport;
use crate::error::Error;
use crate::pci::{PciAddr, Sysfs, caps};
use crate::vfio::{Container, Device, IommuMode};
use crate::virtio::transport::Transport;
use crate::virtio::{VirtioConfig, VirtioError, VirtioPort};

impl VirtioPort<PciTransport> {
    /// Opens the virtio-net device at `addr` (bound to vfio-pci) in `container`, resets it,
    /// and brings it up with `cfg`: receive buffers come from `pool`. A pool made with the
    /// identity mapper is registered with a type1 container at IOVA = VA here (once per
    /// container), until the device is reset at teardown; for a no-IOMMU container make the
    /// pool with the container or the pagemap mapper (IOVA = physical address).
    ///
    /// # Errors
    /// VFIO errors (not bound, no group, ...), [`VirtioError::NoCap`],
    /// [`VirtioError::PoolMapper`], and the bring-up errors of
    /// [`VirtioPort::with_transport`].
    pub fn open(
        addr: PciAddr,
        cfg: &VirtioConfig,
        pool: &PktPool,
        container: &Arc<Container>,
    ) -> Result<Self, Error> {
        let mut device = Device::open(container, &Sysfs::system(), addr)?;
        let vcaps = caps::virtio_caps(&device.config())?;
        let mut transport = PciTransport::new(
            addr.to_string(),
            &vcaps,
            |bar| device.map_bar(bar).map(Arc::new),
            cfg.timeout,
        )?;
        // A previous run may have died mid-flight: stop the device before it may master the
        // bus (with memory decoding on, which MMIO needs, and its old IOVAs gone with the
        // old container).
        device.enable_bus_master()?;
        // Hot-unplug releases the device (its port goes down) instead of blocking the kernel.
        device.watch_removal()?;
        transport.reset()?;
        transport.own(device);
        let pool_map = map_pool(container, pool, addr)?;
        Self::bring_up(transport, cfg, pool, container.clone(), pool_map)
    }
}

/// Whether a pool made by the mapper named `pool_mapper` must be registered with a
/// container of `mode` named `container` (`Some(true)`), is usable as it is (`Some(false)`),
/// or cannot be used by its devices (`None`): its buffers' IOVAs must be what the devices
/// see. Type1: IOVA = VA (identity mapper), registered here; no-IOMMU: IOVA = physical
/// address (the pagemap mapper), nothing to register; a pool the container made is mapped.
fn pool_registration(mode: IommuMode, container: &str, pool_mapper: &str) -> Option<bool> {
    if pool_mapper == container {
        return Some(false);
    }
    match mode {
        IommuMode::Type1v2 => (pool_mapper == IdentityMapper.name()).then_some(true),
        IommuMode::NoIommu => (pool_mapper == PagemapMapper.name()).then_some(false),
    }
}

/// A pool's memory registered with a type1 container (IOVA = VA, what the identity mapper
/// gave the pool's buffers), unregistered when dropped.
struct PoolMapping {
    container: Arc<Container>,
    pool: PktPool,
    map: IovaMap,
}

impl Drop for PoolMapping {
    fn drop(&mut self) {
        self.container.unmap(self.pool.region().mem(), &self.map);
    }
}

/// Registers `pool` with `container` at IOVA = VA unless the container maps it already (or
/// made it); `None` when nothing was registered here.
fn map_pool(
    container: &Arc<Container>,
    pool: &PktPool,
    addr: PciAddr,
) -> Result<Option<PoolMapping>, Error> {
    let region = pool.region();
    let register = pool_registration(container.mode(), container.name(), region.mapper_name());
    if register == Some(false) {
        return Ok(None);
    }
    if register.is_none() {
        return Err(VirtioError::PoolMapper {
            device: addr.to_string(),
            pool: pool.name().to_string(),
            mapper: region.mapper_name().to_string(),
        }
        .into());
    }
    let va = region.as_ptr().as_ptr() as u64;
    let len = region.len() as u64;
    if container
        .mappings()
        .iter()
        .any(|&(v, l)| v <= va && va + len <= v + l)
    {
        // Another port of this container registered it already. Known limit: that port
        // unregisters it when it closes, so a port sharing the pool that is still running
        // then has its DMA into the pool refused by the IOMMU (QEMU marks the device
        // NEEDS_RESET; no memory is touched). Ports of one run close together; a refcount
        // in the container would lift this.
        return Ok(None);
    }
    let map = container
        .map(region.mem())
        .map_err(|source| VirtioError::Dma {
            what: format!("{addr} pool {}", pool.name()),
            len: region.len(),
            source: Box::new(source),
        })?;
    Ok(Some(PoolMapping {
        container: container.clone(),
        pool: pool.clone(),
        map,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_registered_only_where_their_iovas_fit_the_mode() {
        use IommuMode::{NoIommu, Type1v2};
        let identity = IdentityMapper.name();
        let pagemap = PagemapMapper.name();
        assert_eq!(
            pool_registration(Type1v2, "vfio-type1", identity),
            Some(true)
        );
        assert_eq!(
            pool_registration(Type1v2, "vfio-type1", "vfio-type1"),
            Some(false)
        );
        assert_eq!(pool_registration(Type1v2, "vfio-type1", pagemap), None);
        // No IOMMU: physical addresses are what the device sees; VAs would be garbage.
        assert_eq!(
            pool_registration(NoIommu, "vfio-noiommu", pagemap),
            Some(false)
        );
        assert_eq!(
            pool_registration(NoIommu, "vfio-noiommu", "vfio-noiommu"),
            Some(false)
        );
        assert_eq!(pool_registration(NoIommu, "vfio-noiommu", identity), None);
    }
}
