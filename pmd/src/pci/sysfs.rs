//! PCI devices as sysfs shows them: enumeration, and the driver-binding files.
//!
//! Everything goes through a [`Sysfs`] value holding the sysfs root, `/sys` on a live system
//! and a temporary directory in tests (see the `test-utils` feature's
//! [`FakeSysfs`](crate::pci::fake::FakeSysfs)), so that nothing here reaches for a global path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::pci::PciAddr;
use crate::pci::PciError;

/// Name of the VFIO PCI driver.
pub const VFIO_PCI: &str = "vfio-pci";

/// The name sysfs gives an IOMMU group that VFIO created for no-IOMMU mode.
const NOIOMMU_GROUP_NAME: &str = "vfio-noiommu";

/// A sysfs tree.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

/// One PCI function as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDevice {
    /// Its address.
    pub addr: PciAddr,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code: base class 23:16, subclass 15:8, programming interface 7:0.
    pub class: u32,
    /// The driver it is bound to, if any.
    pub driver: Option<String>,
    /// Its IOMMU group, if it has one (none: the IOMMU is off and no-IOMMU mode is not on).
    pub iommu_group: Option<IommuGroup>,
    /// Its NUMA node, if the platform reports one.
    pub numa_node: Option<u32>,
    /// Kernel network interfaces on it (directly, or through a virtio device), with whether
    /// each is administratively up.
    pub net_interfaces: Vec<NetInterface>,
}

/// An IOMMU group as VFIO names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IommuGroup {
    /// The group number (the directory name under `/sys/kernel/iommu_groups`).
    pub id: u32,
    /// Whether VFIO created it for no-IOMMU mode (its node is `/dev/vfio/noiommu-N`).
    pub noiommu: bool,
}

impl IommuGroup {
    /// The group's node name under `/dev/vfio`: `N`, or `noiommu-N`.
    pub fn node_name(&self) -> String {
        if self.noiommu {
            format!("noiommu-{}", self.id)
        } else {
            self.id.to_string()
        }
    }
}

/// A kernel network interface found on a PCI device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInterface {
    /// Interface name (`eth0`).
    pub name: String,
    /// Whether `IFF_UP` is set: the kernel is using it.
    pub up: bool,
}

impl PciDevice {
    /// Whether the class is a network controller (base class 0x02).
    pub fn is_network(&self) -> bool {
        self.class >> 16 == 0x02
    }

    /// Whether the class is a mass-storage controller (base class 0x01).
    pub fn is_storage(&self) -> bool {
        self.class >> 16 == 0x01
    }

    /// Whether it is bound to vfio-pci.
    pub fn is_vfio(&self) -> bool {
        self.driver.as_deref() == Some(VFIO_PCI)
    }
}

impl Sysfs {
    /// The live system's sysfs, `/sys`.
    pub fn system() -> Self {
        Sysfs::new("/sys")
    }

    /// A sysfs tree rooted at `root` (tests).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `…/bus/pci/devices/ADDR`.
    pub fn device_dir(&self, addr: PciAddr) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr.to_string())
    }

    /// `…/bus/pci/drivers/NAME`.
    pub fn driver_dir(&self, driver: &str) -> PathBuf {
        self.root.join("bus/pci/drivers").join(driver)
    }

    /// Every PCI function, sorted by address.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the device directory cannot be listed or a device's attributes
    /// cannot be read.
    pub fn devices(&self) -> Result<Vec<PciDevice>, Error> {
        let dir = self.root.join("bus/pci/devices");
        let mut out = Vec::new();
        for entry in read_dir(&dir)? {
            // Entries that are not PCI addresses are not devices; skip them.
            if let Ok(addr) = entry.parse::<PciAddr>() {
                out.push(self.device(addr)?);
            }
        }
        out.sort_by_key(|d| d.addr);
        Ok(out)
    }

    /// The device at `addr`.
    ///
    /// # Errors
    ///
    /// [`PciError::NoDevice`] if there is none; [`PciError::Sysfs`] or [`PciError::SysfsValue`] if its
    /// attributes cannot be read or parsed.
    pub fn device(&self, addr: PciAddr) -> Result<PciDevice, Error> {
        let dir = self.device_dir(addr);
        if !dir.is_dir() {
            return Err(PciError::NoDevice { addr, path: dir }.into());
        }
        Ok(PciDevice {
            addr,
            vendor: read_hex(&dir.join("vendor"))? as u16,
            device: read_hex(&dir.join("device"))? as u16,
            class: read_hex(&dir.join("class"))?,
            driver: self.driver(addr)?,
            iommu_group: self.iommu_group(addr)?,
            numa_node: read_numa_node(&dir.join("numa_node"))?,
            net_interfaces: net_interfaces(&dir),
        })
    }

    /// The driver `addr` is bound to, if any.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the `driver` link exists but cannot be read.
    pub fn driver(&self, addr: PciAddr) -> Result<Option<String>, Error> {
        Ok(link_name(&self.device_dir(addr).join("driver"))?)
    }

    /// The IOMMU group of `addr`, if it has one.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] / [`PciError::SysfsValue`] if the `iommu_group` link is unreadable or not
    /// a number.
    pub fn iommu_group(&self, addr: PciAddr) -> Result<Option<IommuGroup>, Error> {
        let link = self.device_dir(addr).join("iommu_group");
        let Some(name) = link_name(&link)? else {
            return Ok(None);
        };
        let id = name.parse().map_err(|_| PciError::SysfsValue {
            path: link,
            value: name.clone(),
            expected: "a link to an IOMMU group number",
        })?;
        let group_name = fs::read_to_string(self.group_dir(id).join("name")).unwrap_or_default();
        Ok(Some(IommuGroup {
            id,
            noiommu: group_name.trim() == NOIOMMU_GROUP_NAME,
        }))
    }

    /// The members of IOMMU group `id`, sorted.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the group's `devices` directory cannot be listed.
    pub fn group_members(&self, id: u32) -> Result<Vec<PciAddr>, Error> {
        let mut v: Vec<PciAddr> = read_dir(&self.group_dir(id).join("devices"))?
            .into_iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Whether any IOMMU group exists: false means the IOMMU is off (or absent) and no-IOMMU
    /// mode has created none.
    pub fn has_iommu_groups(&self) -> bool {
        fs::read_dir(self.root.join("kernel/iommu_groups"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// Whether the PCI driver `name` is registered (its module is loaded or built in).
    pub fn driver_loaded(&self, name: &str) -> bool {
        self.driver_dir(name).is_dir()
    }

    /// Sets (`Some`) or clears (`None`) the device's `driver_override`, so that the next probe
    /// binds it only to that driver.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the write fails (not root, or no such device).
    pub fn set_driver_override(&self, addr: PciAddr, driver: Option<&str>) -> Result<(), Error> {
        // An empty line clears the override (Linux `driver_override_store`).
        Ok(write(
            &self.device_dir(addr).join("driver_override"),
            driver.unwrap_or("\n"),
        )?)
    }

    /// Unbinds `addr` from its driver; does nothing if it has none.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the write fails.
    pub fn unbind(&self, addr: PciAddr) -> Result<(), Error> {
        match self.driver(addr)? {
            Some(d) => Ok(write(
                &self.driver_dir(&d).join("unbind"),
                &addr.to_string(),
            )?),
            None => Ok(()),
        }
    }

    /// Asks the kernel to probe drivers for `addr` (`…/bus/pci/drivers_probe`), which honours
    /// `driver_override`.
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the write fails (for example no driver accepted the device).
    pub fn drivers_probe(&self, addr: PciAddr) -> Result<(), Error> {
        Ok(write(
            &self.root.join("bus/pci/drivers_probe"),
            &addr.to_string(),
        )?)
    }

    fn group_dir(&self, id: u32) -> PathBuf {
        self.root.join("kernel/iommu_groups").join(id.to_string())
    }
}

fn sysfs_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PciError + 'a {
    move |source| PciError::Sysfs {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn read_dir(dir: &Path) -> Result<Vec<String>, PciError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(sysfs_err("listing", dir))? {
        let entry = entry.map_err(sysfs_err("listing", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn read_trimmed(path: &Path) -> Result<String, PciError> {
    Ok(fs::read_to_string(path)
        .map_err(sysfs_err("reading", path))?
        .trim()
        .to_owned())
}

/// Reads a `0x…` hex attribute (vendor, device, class).
fn read_hex(path: &Path) -> Result<u32, PciError> {
    let s = read_trimmed(path)?;
    let digits = s.strip_prefix("0x").unwrap_or(&s);
    u32::from_str_radix(digits, 16).map_err(|_| PciError::SysfsValue {
        path: path.to_path_buf(),
        value: s.clone(),
        expected: "a hex number",
    })
}

/// `numa_node` is -1 when the platform has no NUMA information; a missing file means the
/// same.
fn read_numa_node(path: &Path) -> Result<Option<u32>, PciError> {
    if !path.exists() {
        return Ok(None);
    }
    let s = read_trimmed(path)?;
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Ok(None),
        Ok(n) => Ok(u32::try_from(n).ok()),
        Err(_) => Err(PciError::SysfsValue {
            path: path.to_path_buf(),
            value: s,
            expected: "a NUMA node number or -1",
        }),
    }
}

/// The last component of the symlink at `link`, or `None` if there is no link.
fn link_name(link: &Path) -> Result<Option<String>, PciError> {
    match fs::read_link(link) {
        Ok(target) => Ok(target
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sysfs_err("reading", link)(e)),
    }
}

fn write(path: &Path, value: &str) -> Result<(), PciError> {
    fs::write(path, value).map_err(sysfs_err("writing", path))
}

/// Interfaces under `dir/net/` and, for virtio, `dir/virtioN/net/`.
fn net_interfaces(dir: &Path) -> Vec<NetInterface> {
    let mut net_dirs = vec![dir.join("net")];
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("virtio"))
            {
                net_dirs.push(e.path().join("net"));
            }
        }
    }
    let mut out = Vec::new();
    for net in net_dirs {
        let Ok(entries) = fs::read_dir(&net) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // `flags` holds the interface flags in hex; IFF_UP is bit 0.
            let up = read_hex(&e.path().join("flags")).is_ok_and(|f| f & 1 != 0);
            out.push(NetInterface { name, up });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
