//! [`VfioNvme`]: an NVMe controller opened through VFIO (the device bound to vfio-pci).

use std::sync::Arc;

use super::ctrl::{Controller, ControllerConfig};
use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::pci::{PciAddr, Sysfs};
use crate::vfio::{Container, Device, IommuMode};

/// A controller behind VFIO, with the device and container it needs kept open.
///
/// Fields drop in order: the controller first (it disables the device, then its queue memory
/// is unmapped from the IOMMU and freed), then the device, then the container.
pub struct VfioNvme {
    /// The enabled controller.
    pub ctrl: Controller<MmioRegion>,
    device: Device,
    container: Arc<Container>,
}

impl VfioNvme {
    /// Opens `addr` (bound to vfio-pci) in a new container of `mode`, resets it when VFIO
    /// offers a reset, enables bus mastering, maps BAR0 and brings the controller up.
    ///
    /// # Errors
    /// Any VFIO error (not bound, no IOMMU group, ...) or bring-up error.
    pub fn open(addr: PciAddr, mode: IommuMode, cfg: ControllerConfig) -> Result<Self, Error> {
        let container = Container::new(mode)?;
        let mut device = Device::open(&container, &Sysfs::system(), addr)?;
        if device.can_reset() {
            device.reset()?;
        }
        device.enable_bus_master()?;
        // Hot-unplug releases the device (its queues fail with NvmeError::Removed) instead
        // of blocking the kernel.
        device.watch_removal()?;
        let bar0 = device.map_bar(0)?;
        let ctrl = Controller::enable(Arc::new(bar0), container.clone(), cfg)?;
        Ok(VfioNvme {
            ctrl,
            device,
            container,
        })
    }

    /// The PCI address.
    pub fn addr(&self) -> PciAddr {
        self.device.addr()
    }

    /// The VFIO container (the IOVA mapper for buffer pools the device reads and writes).
    pub fn container(&self) -> &Arc<Container> {
        &self.container
    }

    /// Shuts the controller down (NVMe 1.4 §7.6.2) and closes the device.
    ///
    /// # Errors
    /// As [`Controller::shutdown`].
    pub fn shutdown(self) -> Result<(), Error> {
        self.ctrl.shutdown()
    }
}

impl std::fmt::Debug for VfioNvme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioNvme")
            .field("addr", &self.device.addr())
            .field("ctrl", &self.ctrl)
            .finish()
    }
}
