//! Enumeration and binding against a fake sysfs tree.

use super::fake::FakeSysfs;
use super::*;
use crate::error::Error;
use crate::pci::PciError;

fn a(s: &str) -> PciAddr {
    s.parse().unwrap()
}

#[test]
fn enumerates_devices_with_driver_group_and_class() {
    let f = FakeSysfs::q35_guest();
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
    let f = FakeSysfs::q35_guest();
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
    let f = FakeSysfs::q35_guest();
    let e = f.sysfs().device(a("00:09.0")).unwrap_err();
    assert!(matches!(e, Error::Pci(PciError::NoDevice { .. })), "{e}");
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
    let f = FakeSysfs::q35_guest();
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
    let f = FakeSysfs::q35_guest();
    let addr = a("00:04.0");
    f.set_config(addr, include_bytes!("testdata/virtio-net-modern.cfg"));
    let cfg = SysfsConfig::open(addr, &f.sysfs().device_dir(addr)).unwrap();
    assert_eq!(cfg.read16(reg::VENDOR_ID).unwrap(), 0x1af4);
    assert_eq!(caps::virtio_caps(&cfg).unwrap().len(), 5);
}
