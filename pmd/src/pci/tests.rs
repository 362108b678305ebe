//! Enumeration and binding against a fake sysfs tree.

use super::fake::{FakeDevice, FakeSysfs};
use super::*;
use crate::error::Error;

fn a(s: &str) -> PciAddr {
    s.parse().unwrap()
}

/// The q35 guest of `bench/qemu`: NVMe, two NICs, the ICH9 functions sharing group 6.
fn q35() -> FakeSysfs {
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
    f.add_netdev(a("00:04.0"), true, "eth0", true);
    f
}

#[test]
fn enumerates_devices_with_driver_group_and_class() {
    let f = q35();
    let devs = f.sysfs().devices().unwrap();
    assert_eq!(devs.len(), 6);
    let nic = &devs[1];
    assert_eq!(nic.addr, a("00:04.0"));
    assert_eq!((nic.vendor, nic.device), (0x1af4, 0x1041));
    assert!(nic.is_network() && !nic.is_storage() && !nic.is_vfio());
    assert_eq!(nic.driver.as_deref(), Some("virtio-pci"));
    assert_eq!(
        nic.iommu_group,
        Some(IommuGroup {
            id: 2,
            noiommu: false
        })
    );
    assert_eq!(nic.numa_node, None);
    assert_eq!(
        nic.net_interfaces,
        [NetInterface {
            name: "eth0".into(),
            up: true
        }]
    );
    assert!(devs[0].is_storage());
    assert!(devs[2].is_vfio());
    assert_eq!(devs[5].driver, None);
    assert_eq!(
        f.sysfs().group_members(6).unwrap(),
        [a("00:1f.0"), a("00:1f.2"), a("00:1f.3")]
    );
    assert!(f.sysfs().has_iommu_groups());
    assert!(f.sysfs().driver_loaded("vfio-pci"));
    assert!(!f.sysfs().driver_loaded("ixgbe"));
}

#[test]
fn noiommu_groups_are_named_for_dev_vfio() {
    let f = q35();
    std::fs::write(
        f.root().join("kernel/iommu_groups/2/name"),
        "vfio-noiommu\n",
    )
    .unwrap();
    let g = f.sysfs().iommu_group(a("00:04.0")).unwrap().unwrap();
    assert!(g.noiommu);
    assert_eq!(g.node_name(), "noiommu-2");
    assert_eq!(
        f.sysfs()
            .iommu_group(a("00:03.0"))
            .unwrap()
            .unwrap()
            .node_name(),
        "1"
    );
}

#[test]
fn missing_device_and_bad_attributes_are_typed_errors() {
    let f = q35();
    let e = f.sysfs().device(a("00:09.0")).unwrap_err();
    assert!(matches!(e, Error::NoDevice { .. }), "{e}");
    assert!(e.to_string().starts_with("no PCI device 0000:00:09.0"));
    std::fs::write(
        f.root().join("bus/pci/devices/0000:00:03.0/vendor"),
        "nope\n",
    )
    .unwrap();
    let e = f.sysfs().device(a("00:03.0")).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("/vendor holds 'nope', expected a hex number"),
        "{e}"
    );
    std::fs::write(
        f.root().join("bus/pci/devices/0000:00:04.0/numa_node"),
        "1\n",
    )
    .unwrap();
    assert_eq!(f.sysfs().device(a("00:04.0")).unwrap().numa_node, Some(1));
}

#[test]
fn binding_writes_override_unbind_and_probe() {
    let f = q35();
    let s = f.sysfs();
    s.set_driver_override(a("00:03.0"), Some("vfio-pci"))
        .unwrap();
    assert_eq!(
        f.read("bus/pci/devices/0000:00:03.0/driver_override"),
        "vfio-pci"
    );
    s.unbind(a("00:03.0")).unwrap();
    assert_eq!(f.read("bus/pci/drivers/nvme/unbind"), "0000:00:03.0");
    s.drivers_probe(a("00:03.0")).unwrap();
    assert_eq!(f.read("bus/pci/drivers_probe"), "0000:00:03.0");
    s.set_driver_override(a("00:03.0"), None).unwrap();
    assert_eq!(f.read("bus/pci/devices/0000:00:03.0/driver_override"), "");
    s.unbind(a("00:1f.3")).unwrap(); // no driver: nothing to do
}

#[test]
fn sysfs_config_and_caps_through_the_tree() {
    let f = q35();
    let addr = a("00:04.0");
    f.set_config(addr, include_bytes!("testdata/virtio-net-modern.cfg"));
    let cfg = SysfsConfig::open(addr, &f.sysfs().device_dir(addr)).unwrap();
    assert_eq!(cfg.read16(reg::VENDOR_ID).unwrap(), 0x1af4);
    assert_eq!(caps::virtio_caps(&cfg).unwrap().len(), 5);
}
