//! A virtio-net device bound to vfio-pci: [`VirtioPort::open`] maps its BARs into a
//! [`PciTransport`], and registers the packet pool with the container's IOMMU for as long as
//! the device may reach it.

use std::sync::Arc;

use sluice_mempool::{IdentityMapper, IovaMap, IovaMapper, PktPool};

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
    /// pool with the container as mapper.
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
    if region.mapper_name() == container.name() {
        return Ok(None);
    }
    if container.mode() != IommuMode::Type1v2 || region.mapper_name() != IdentityMapper.name() {
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
