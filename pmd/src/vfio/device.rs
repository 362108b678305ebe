//! A PCI device opened through VFIO: its regions, config space, BAR mappings, bus mastering
//! and reset.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::pci::{ConfigSpace, IommuGroup, PciAddr, PciError, Sysfs, reg};
use crate::vfio::container::Container;
use crate::vfio::info::{REGION_INFO_LEN, RegionInfo, parse_region_info};
use crate::vfio::sys;
use crate::vfio::{BarProblem, Target, VfioError};

/// VFIO region index of PCI config space (`VFIO_PCI_CONFIG_REGION_INDEX`).
pub const CONFIG_REGION: u32 = 7;
/// `VFIO_DEVICE_FLAGS_RESET`.
const FLAG_RESET: u32 = 1;
/// `VFIO_DEVICE_FLAGS_PCI`.
const FLAG_PCI: u32 = 2;

/// A PCI device owned by this process through VFIO.
///
/// ```no_run
/// use sluice_pmd::pci::{ConfigSpace, Sysfs};
/// use sluice_pmd::regs::Registers;
/// use sluice_pmd::vfio::{Container, Device, IommuMode};
///
/// let container = Container::new(IommuMode::Type1v2)?;
/// let dev = Device::open(&container, &Sysfs::system(), "00:03.0".parse()?)?;
/// println!("{:04x}:{:04x}", dev.config().read16(0)?, dev.config().read16(2)?);
/// dev.enable_bus_master()?;
/// let bar0 = dev.map_bar(0)?;
/// let cap = bar0.read64(0x00)?; // NVMe CAP, low half first
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping it closes the device descriptor; its group and the container stay until the
/// container's last user is gone (see [`Container`]'s drop order). A mapped BAR
/// ([`MmioRegion`]) keeps its own mapping and may outlive the `Device`.
#[derive(Debug)]
pub struct Device {
    addr: PciAddr,
    flags: u32,
    num_irqs: u32,
    regions: Vec<RegionInfo>,
    /// Its mapped BARs, replaced by all-ones memory if the kernel asks for the device back.
    bars: Arc<super::sys_req::BarSet>,
    /// Declared before `file`: the watcher thread ends before the descriptor closes.
    watch: Option<super::removal::Watch>,
    // Declared before `container`: the device descriptor closes before the container (and
    // the group it owns) can go.
    file: Arc<File>,
    container: Arc<Container>,
}

impl Device {
    /// Opens the device at `addr`: checks it is bound to vfio-pci and has an IOMMU group,
    /// adds the group to `container` (if it is not there yet), and gets the device's
    /// descriptor, info and region layout.
    ///
    /// # Errors
    ///
    /// [`PciError::NoDevice`], [`VfioError::NotBoundToVfio`] (still on its kernel driver),
    /// [`VfioError::NoIommuGroup`] (IOMMU off), [`VfioError::GroupMode`], [`VfioError::Open`] (no access
    /// to `/dev/vfio/N`), [`VfioError::GroupNotViable`], [`VfioError::Ioctl`] for the failing ioctl.
    pub fn open(container: &Arc<Container>, sysfs: &Sysfs, addr: PciAddr) -> Result<Device, Error> {
        let group = preflight(sysfs, addr)?;
        // The device name is its address, which never contains a NUL.
        let name = CString::new(addr.to_string()).map_err(|_| PciError::ParseAddr {
            input: addr.to_string(),
            why: "contains a NUL byte",
        })?;
        let fd = container.with_group(sysfs, addr, &group, |g| {
            sys::group_get_device_fd(g.fd(), &name).map_err(|source| {
                Error::from(VfioError::Ioctl {
                    target: g.target(),
                    ioctl: "VFIO_GROUP_GET_DEVICE_FD",
                    source,
                })
            })
        })?;
        let ioctl = |name| {
            move |source| VfioError::Ioctl {
                target: Target::Device(addr),
                ioctl: name,
                source,
            }
        };
        let info = sys::device_get_info(fd.as_fd()).map_err(ioctl("VFIO_DEVICE_GET_INFO"))?;
        if info.flags & FLAG_PCI == 0 {
            return Err(VfioError::NotPci { addr }.into());
        }
        // BARs 0-5, ROM, config; later indices (VGA, device-specific) are not needed.
        let mut regions = Vec::new();
        for index in 0..info.num_regions.min(CONFIG_REGION + 1) {
            let (r, bytes) = sys::device_get_region_info(fd.as_fd(), index)
                .map_err(ioctl("VFIO_DEVICE_GET_REGION_INFO"))?;
            debug_assert!(bytes.is_empty() || bytes.len() >= REGION_INFO_LEN);
            regions.push(parse_region_info(
                index,
                r.flags,
                r.size,
                r.offset,
                r.cap_offset,
                &bytes,
            )?);
        }
        Ok(Device {
            addr,
            flags: info.flags,
            num_irqs: info.num_irqs,
            regions,
            bars: Arc::default(),
            watch: None,
            file: Arc::new(File::from(fd)),
            container: Arc::clone(container),
        })
    }

    /// The device's address.
    pub fn addr(&self) -> PciAddr {
        self.addr
    }

    /// The container it belongs to.
    pub fn container(&self) -> &Arc<Container> {
        &self.container
    }

    /// Number of interrupt indices VFIO reports (INTx, MSI, MSI-X, ...).
    pub fn num_irqs(&self) -> u32 {
        self.num_irqs
    }

    /// Region `index` (BAR n = n, ROM = 6, config = 7), if the device has it.
    pub fn region(&self, index: u32) -> Option<&RegionInfo> {
        self.regions.get(index as usize)
    }

    /// Config space through the VFIO config region (`pread`/`pwrite` on the device).
    ///
    /// vfio-pci virtualizes parts of it (BARs, some capability bits); reads of IDs and
    /// capability lists are the device's own.
    pub fn config(&self) -> VfioConfig<'_> {
        let (offset, size) = self
            .region(CONFIG_REGION)
            .map(|r| (r.offset, r.size.min(4096) as u16))
            .unwrap_or((0, 0));
        VfioConfig {
            device: self,
            offset,
            size,
        }
    }

    /// Maps BAR `bar` whole and returns it as the [`MmioRegion`] drivers use.
    ///
    /// # Errors
    ///
    /// [`VfioError::Bar`] if the BAR is absent, empty (an I/O BAR, or the upper half of a
    /// 64-bit BAR), not mappable, or mappable only in parts; [`VfioError::Mmap`] if `mmap`
    /// fails.
    pub fn map_bar(&self, bar: u8) -> Result<MmioRegion, Error> {
        let bar_err = |problem| VfioError::Bar {
            addr: self.addr,
            bar,
            problem,
        };
        if bar > 5 {
            return Err(bar_err(BarProblem::NotABar).into());
        }
        let r = self
            .region(u32::from(bar))
            .ok_or_else(|| bar_err(BarProblem::Missing))?;
        if r.size == 0 {
            return Err(bar_err(BarProblem::Empty).into());
        }
        if !r.whole_mappable() {
            return Err(bar_err(match &r.sparse {
                Some(areas) => BarProblem::Sparse {
                    areas: areas.clone(),
                },
                None => BarProblem::NotMappable,
            })
            .into());
        }
        let len = usize::try_from(r.size).map_err(|_| bar_err(BarProblem::TooLarge))?;
        let mut map =
            sys::Mmap::map_shared(self.file.as_fd(), r.offset, len).map_err(|source| {
                VfioError::Mmap {
                    addr: self.addr,
                    bar,
                    len,
                    source,
                }
            })?;
        map.join(&self.bars);
        Ok(MmioRegion::from_mmap(map))
    }

    /// Listens for the kernel's request to have the device back (`VFIO_PCI_REQ_IRQ_INDEX`:
    /// hot-unplug, or an unbind from vfio-pci), as DPDK's "req notifier" does. When it comes,
    /// a thread of this device's own prints a line naming the device, replaces every BAR
    /// mapping of it (those made before and after this call) with memory that reads all ones
    /// and points the device descriptor at `/dev/null`: the kernel can then finish the
    /// removal (vfio-pci disables the device, so it does no more DMA), nothing faults
    /// (SIGBUS), and drivers see [`Registers::removed`](crate::regs::Registers::removed) and
    /// go down. Without this, the kernel's removal waits until the process closes the device.
    ///
    /// Returns `false` (and does nothing) when the kernel has no request channel for it.
    ///
    /// # Errors
    /// [`VfioError::Ioctl`] (`VFIO_DEVICE_SET_IRQS`) or [`VfioError::Removal`] when the
    /// eventfd or the thread cannot be had.
    pub fn watch_removal(&mut self) -> Result<bool, Error> {
        if self.watch.is_some() {
            return Ok(true);
        }
        if self.num_irqs <= super::sys_req::REQ_IRQ_INDEX {
            return Ok(false);
        }
        self.watch = Some(super::removal::Watch::start(
            self.addr,
            self.file.clone(),
            self.bars.clone(),
        )?);
        Ok(true)
    }

    /// Whether the device was released after the kernel asked for it back.
    pub fn is_removed(&self) -> bool {
        self.bars.is_removed()
    }

    /// Sets COMMAND.MEMORY (bit 1) and COMMAND.BUS_MASTER (bit 2) if they are clear, so the
    /// device decodes its memory BARs and may issue DMA. vfio-pci does not leave bus
    /// mastering on for a new user (docs/devices.md#vfio). Returns the COMMAND value written
    /// (or found).
    ///
    /// # Errors
    ///
    /// [`PciError::Config`] if config space cannot be read or written.
    pub fn enable_bus_master(&self) -> Result<u16, Error> {
        let cfg = self.config();
        let cmd = cfg.read16(reg::COMMAND)?;
        let want = cmd | reg::COMMAND_MEMORY | reg::COMMAND_BUS_MASTER;
        if want != cmd {
            cfg.write16(reg::COMMAND, want)?;
        }
        Ok(want)
    }

    /// Whether VFIO offers a function reset for this device (`VFIO_DEVICE_FLAGS_RESET`).
    pub fn can_reset(&self) -> bool {
        self.flags & FLAG_RESET != 0
    }

    /// Resets the function through VFIO (FLR, PM or bus reset, whichever the kernel has).
    ///
    /// Devices without one (QEMU's virtio-net on `pcie.0`) are reset through their own
    /// registers instead.
    ///
    /// # Errors
    ///
    /// [`VfioError::NoReset`] when not offered; [`VfioError::Ioctl`] when the reset fails.
    pub fn reset(&self) -> Result<(), Error> {
        if !self.can_reset() {
            return Err(VfioError::NoReset { addr: self.addr }.into());
        }
        sys::device_reset(self.file.as_fd()).map_err(|source| VfioError::Ioctl {
            target: Target::Device(self.addr),
            ioctl: "VFIO_DEVICE_RESET",
            source,
        })?;
        Ok(())
    }
}

/// The checks before any VFIO node is touched: the device exists, is bound to vfio-pci, and
/// has an IOMMU group (whose group it is).
pub(crate) fn preflight(sysfs: &Sysfs, addr: PciAddr) -> Result<IommuGroup, Error> {
    let dev = sysfs.device(addr)?;
    if !dev.is_vfio() {
        return Err(VfioError::NotBoundToVfio {
            addr,
            driver: dev.driver,
        }
        .into());
    }
    Ok(dev.iommu_group.ok_or(VfioError::NoIommuGroup { addr })?)
}

/// A device's config space through its VFIO config region.
#[derive(Debug)]
pub struct VfioConfig<'a> {
    device: &'a Device,
    offset: u64,
    size: u16,
}

impl ConfigSpace for VfioConfig<'_> {
    fn addr(&self) -> PciAddr {
        self.device.addr
    }

    fn size(&self) -> u16 {
        self.size
    }

    fn read(&self, offset: u16, buf: &mut [u8]) -> io::Result<()> {
        // One pread of the access width: vfio-pci performs it as one config access.
        self.device
            .file
            .read_exact_at(buf, self.offset + u64::from(offset))
    }

    fn write(&self, offset: u16, buf: &[u8]) -> io::Result<()> {
        self.device
            .file
            .write_all_at(buf, self.offset + u64::from(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::fake::{FakeDevice, FakeSysfs};

    fn tree() -> FakeSysfs {
        let f = FakeSysfs::new();
        for (addr, driver, group) in [
            ("00:03.0", Some("nvme"), Some(1)),
            ("00:04.0", Some("vfio-pci"), Some(2)),
            ("00:05.0", None, Some(3)),
            ("00:06.0", Some("vfio-pci"), None),
        ] {
            f.add(&FakeDevice {
                addr,
                vendor: 0x1af4,
                device: 0x1041,
                class: 0x020000,
                driver,
                group,
            });
        }
        f
    }

    #[test]
    fn preflight_names_the_kernel_driver_still_bound() {
        let f = tree();
        let e = preflight(&f.sysfs(), "00:03.0".parse().unwrap()).unwrap_err();
        assert!(
            matches!(&e, Error::Vfio(VfioError::NotBoundToVfio { driver: Some(d), .. }) if d == "nvme"),
            "{e}"
        );
        let e = preflight(&f.sysfs(), "00:05.0".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "0000:00:05.0 is bound to no driver, not vfio-pci; bind it with `sluice-devbind \
             bind 0000:00:05.0`"
        );
    }

    #[test]
    fn preflight_says_when_the_iommu_is_off() {
        let f = tree();
        let e = preflight(&f.sysfs(), "00:06.0".parse().unwrap()).unwrap_err();
        assert!(
            matches!(e, Error::Vfio(VfioError::NoIommuGroup { .. })),
            "{e}"
        );
        let g = preflight(&f.sysfs(), "00:04.0".parse().unwrap()).unwrap();
        assert_eq!(g.node_name(), "2");
        let e = preflight(&f.sysfs(), "00:09.0".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::Pci(PciError::NoDevice { .. })), "{e}");
    }
}
