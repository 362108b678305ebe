//! A VFIO group: the unit of isolation the IOMMU can enforce, opened as `/dev/vfio/N`
//! (`/dev/vfio/noiommu-N` in no-IOMMU mode).
//!
//! A group is usable only when it is *viable*: every member is bound to vfio-pci (or to a
//! driver that does not do DMA of its own, or to none). Otherwise the kernel refuses to put
//! it in a container, and the error here names the members that hold it and their drivers.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use crate::error::Error;
use crate::pci::{IommuGroup, PciAddr, Sysfs, VFIO_PCI};
use crate::vfio::sys;
use crate::vfio::{Target, VfioError};

/// `VFIO_GROUP_FLAGS_VIABLE`.
const VIABLE: u32 = 1;

/// Drivers that may share a group with a vfio-pci device: they do no DMA of their own
/// (Linux 6.1 `driver_managed_dma`: vfio-pci, pci-stub, pcieport).
const GROUP_SAFE_DRIVERS: [&str; 3] = [VFIO_PCI, "pci-stub", "pcieport"];

/// An open, viable VFIO group.
#[derive(Debug)]
pub(crate) struct Group {
    fd: OwnedFd,
    group: IommuGroup,
}

impl Group {
    /// Opens the group of `addr` and checks that it is viable.
    ///
    /// # Errors
    ///
    /// [`VfioError::Open`] if the node cannot be opened, [`VfioError::Ioctl`] if its status cannot be
    /// read, [`VfioError::GroupNotViable`] naming the members that hold it.
    pub(crate) fn open(sysfs: &Sysfs, addr: PciAddr, group: &IommuGroup) -> Result<Group, Error> {
        let path = PathBuf::from("/dev/vfio").join(group.node_name());
        let fd: OwnedFd = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| VfioError::Open { path, source })?
            .into();
        let flags = sys::group_get_status(fd.as_fd()).map_err(|source| VfioError::Ioctl {
            target: Target::Group(group.node_name()),
            ioctl: "VFIO_GROUP_GET_STATUS",
            source,
        })?;
        if flags & VIABLE == 0 {
            return Err(not_viable(sysfs, addr, group).into());
        }
        Ok(Group {
            fd,
            group: group.clone(),
        })
    }

    /// The group as sysfs names it.
    pub(crate) fn iommu_group(&self) -> &IommuGroup {
        &self.group
    }

    /// The group's descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// [`Target`] for errors about this group.
    pub(crate) fn target(&self) -> Target {
        Target::Group(self.group.node_name())
    }
}

/// The error for a non-viable group: the other members bound to drivers that may do DMA.
pub(crate) fn not_viable(sysfs: &Sysfs, addr: PciAddr, group: &IommuGroup) -> VfioError {
    let others = sysfs
        .group_members(group.id)
        .unwrap_or_default()
        .into_iter()
        .filter(|&m| m != addr)
        .filter_map(|m| {
            let driver = sysfs.driver(m).ok().flatten();
            match driver.as_deref() {
                None => None,
                Some(d) if GROUP_SAFE_DRIVERS.contains(&d) => None,
                Some(_) => Some((m, driver)),
            }
        })
        .collect();
    VfioError::GroupNotViable {
        addr,
        group: group.node_name(),
        others,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::fake::{FakeDevice, FakeSysfs};

    #[test]
    fn not_viable_lists_only_members_on_dma_capable_drivers() {
        let f = FakeSysfs::new();
        for (addr, driver) in [
            ("00:1f.0", Some("lpc_ich")),
            ("00:1f.2", Some("vfio-pci")),
            ("00:1f.3", Some("i801_smbus")),
            ("00:1f.4", None),
            ("00:1f.5", Some("pcieport")),
        ] {
            f.add(&FakeDevice {
                addr,
                vendor: 0x8086,
                device: 0x2918,
                class: 0x060100,
                driver,
                group: Some(6),
            });
        }
        let addr = "00:1f.2".parse().unwrap();
        let e = not_viable(
            &f.sysfs(),
            addr,
            &IommuGroup {
                id: 6,
                noiommu: false,
            },
        );
        let VfioError::GroupNotViable { others, group, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(group, "6");
        let names: Vec<String> = others.iter().map(|(a, _)| a.to_string()).collect();
        assert_eq!(names, ["0000:00:1f.0", "0000:00:1f.3"]);
        assert!(
            e.to_string().contains("0000:00:1f.0 is bound to lpc_ich"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("sluice-devbind bind 0000:00:1f.0 0000:00:1f.3"),
            "{e}"
        );
    }

    #[test]
    fn not_viable_without_sysfs_detail_still_says_what_to_do() {
        let f = FakeSysfs::new();
        let e = not_viable(
            &f.sysfs(),
            "00:04.0".parse().unwrap(),
            &IommuGroup {
                id: 9,
                noiommu: true,
            },
        );
        let s = e.to_string();
        assert!(
            s.starts_with("IOMMU group noiommu-9 of 0000:00:04.0 is not viable: another member"),
            "{s}"
        );
    }
}
