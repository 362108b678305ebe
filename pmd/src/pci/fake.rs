//! A fake sysfs tree in a temporary directory, for tests of enumeration and binding here and
//! in the applications (feature `test-utils`).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::pci::{PciAddr, Sysfs};

/// A sysfs tree under a fresh temporary directory, removed on drop.
///
/// It has the files the device layer reads (`vendor`, `device`, `class`, `numa_node`,
/// `config`, the `driver` and `iommu_group` links, group member links, network interfaces)
/// and the ones binding writes (`driver_override`, drivers' `unbind`, `drivers_probe`), as
/// plain files whose content tests can inspect. It does not play the kernel: writing
/// `unbind` does not remove the `driver` link.
#[derive(Debug)]
pub struct FakeSysfs {
    root: PathBuf,
}

/// Device description for [`FakeSysfs::add`].
#[derive(Clone, Debug)]
pub struct FakeDevice<'a> {
    /// Address.
    pub addr: &'a str,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (24 bits).
    pub class: u32,
    /// Bound driver.
    pub driver: Option<&'a str>,
    /// IOMMU group.
    pub group: Option<u32>,
}

impl FakeSysfs {
    /// The q35 guest of `bench/qemu`: NVMe at 00:03.0, two virtio-net NICs (00:04.0 on
    /// virtio-pci with `eth0` up, 00:05.0 on vfio-pci), and the ICH9 functions sharing
    /// IOMMU group 6.
    pub fn q35_guest() -> Self {
        let f = FakeSysfs::new();
        for d in [
            FakeDevice {
                addr: "0000:00:03.0",
                vendor: 0x1b36,
                device: 0x0010,
                class: 0x010802,
                driver: Some("nvme"),
                group: Some(1),
            },
            FakeDevice {
                addr: "0000:00:04.0",
                vendor: 0x1af4,
                device: 0x1041,
                class: 0x020000,
                driver: Some("virtio-pci"),
                group: Some(2),
            },
            FakeDevice {
                addr: "0000:00:05.0",
                vendor: 0x1af4,
                device: 0x1041,
                class: 0x020000,
                driver: Some("vfio-pci"),
                group: Some(3),
            },
            FakeDevice {
                addr: "0000:00:1f.0",
                vendor: 0x8086,
                device: 0x2918,
                class: 0x060100,
                driver: Some("lpc_ich"),
                group: Some(6),
            },
            FakeDevice {
                addr: "0000:00:1f.2",
                vendor: 0x8086,
                device: 0x2922,
                class: 0x010601,
                driver: Some("ahci"),
                group: Some(6),
            },
            FakeDevice {
                addr: "0000:00:1f.3",
                vendor: 0x8086,
                device: 0x2930,
                class: 0x0c0500,
                driver: None,
                group: Some(6),
            },
        ] {
            f.add(&d);
        }
        f.add_netdev("00:04.0".parse().expect("address"), true, "eth0", true);
        f
    }

    /// An empty tree with `bus/pci/{devices,drivers}`, `drivers_probe` and
    /// `kernel/iommu_groups`.
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "sluice-fake-sysfs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        for d in ["bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups"] {
            fs::create_dir_all(root.join(d)).expect("create fake sysfs");
        }
        fs::write(root.join("bus/pci/drivers_probe"), "").expect("create fake sysfs");
        FakeSysfs { root }
    }

    /// The tree as a [`Sysfs`].
    pub fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.root)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Adds a device (and its driver's directory and group, as needed).
    pub fn add(&self, d: &FakeDevice<'_>) -> &Self {
        let addr: PciAddr = d.addr.parse().expect("fake device address");
        let dir = self.root.join("bus/pci/devices").join(addr.to_string());
        fs::create_dir_all(&dir).expect("create fake device");
        let w = |name: &str, v: String| fs::write(dir.join(name), v).expect("write fake attr");
        w("vendor", format!("0x{:04x}\n", d.vendor));
        w("device", format!("0x{:04x}\n", d.device));
        w("class", format!("0x{:06x}\n", d.class));
        w("numa_node", "-1\n".into());
        w("driver_override", "(null)\n".into());
        if let Some(drv) = d.driver {
            self.bind(addr, drv);
        }
        if let Some(g) = d.group {
            let gdir = self.root.join("kernel/iommu_groups").join(g.to_string());
            fs::create_dir_all(gdir.join("devices")).expect("create fake group");
            symlink(&dir, gdir.join("devices").join(addr.to_string())).expect("link member");
            symlink(&gdir, dir.join("iommu_group")).expect("link group");
        }
        self
    }

    /// Points `addr`'s `driver` link at `driver` (creating the driver's directory).
    pub fn bind(&self, addr: PciAddr, driver: &str) {
        let ddir = self.root.join("bus/pci/drivers").join(driver);
        fs::create_dir_all(&ddir).expect("create fake driver");
        let _ = fs::write(ddir.join("unbind"), "");
        let link = self
            .root
            .join("bus/pci/devices")
            .join(addr.to_string())
            .join("driver");
        let _ = fs::remove_file(&link);
        symlink(&ddir, link).expect("link driver");
    }

    /// Removes `addr`'s `driver` link.
    pub fn unbind(&self, addr: PciAddr) {
        let link = self
            .root
            .join("bus/pci/devices")
            .join(addr.to_string())
            .join("driver");
        let _ = fs::remove_file(link);
    }

    /// Registers a driver with no devices.
    pub fn add_driver(&self, driver: &str) {
        let ddir = self.root.join("bus/pci/drivers").join(driver);
        fs::create_dir_all(&ddir).expect("create fake driver");
        let _ = fs::write(ddir.join("unbind"), "");
    }

    /// Adds network interface `name` on `addr` (under a `virtio0` child when `virtio`), up or
    /// down.
    pub fn add_netdev(&self, addr: PciAddr, virtio: bool, name: &str, up: bool) {
        let mut dir = self.root.join("bus/pci/devices").join(addr.to_string());
        if virtio {
            dir = dir.join("virtio0");
        }
        let ndir = dir.join("net").join(name);
        fs::create_dir_all(&ndir).expect("create fake netdev");
        let flags = if up { "0x1003\n" } else { "0x1002\n" };
        fs::write(ndir.join("flags"), flags).expect("write flags");
    }

    /// Writes the device's `config` file.
    pub fn set_config(&self, addr: PciAddr, bytes: &[u8]) {
        let path = self
            .root
            .join("bus/pci/devices")
            .join(addr.to_string())
            .join("config");
        fs::write(path, bytes).expect("write fake config");
    }

    /// Reads a file relative to the root, trimmed (empty if absent).
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

impl Default for FakeSysfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}
