//! `sluice-devbind` against a fake sysfs tree. The fake does not play the kernel (a write to
//! `drivers_probe` binds nothing), so a bind there ends in `NotTaken` after the writes a real
//! kernel needs; the bind itself is exercised in the QEMU guest (`.ci/run`).

use super::*;
use sluice_pmd::pci::fake::{FakeDevice, FakeSysfs};

fn a(s: &str) -> PciAddr {
    s.parse().unwrap()
}

#[test]
fn status_lists_nics_and_storage_with_verdicts() {
    let f = FakeSysfs::q35_guest();
    let s = Devbind::new(f.root()).status().unwrap();
    assert!(
        s.contains("Network devices\n  0000:00:04.0  1af4:1041  driver=virtio-pci"),
        "{s}"
    );
    assert!(
        s.contains("if=eth0(up)  vfio: yes with --force (interface up)"),
        "{s}"
    );
    assert!(
        s.contains("0000:00:05.0  1af4:1041  driver=vfio-pci     group=3"),
        "{s}"
    );
    assert!(s.contains("vfio: bound, ready"), "{s}");
    assert!(
        s.contains("Storage devices\n  0000:00:03.0  1b36:0010  driver=nvme"),
        "{s}"
    );
    assert!(s.contains("0000:00:1f.2  8086:2922  driver=ahci         group=6    numa=-   vfio: group shared with 0000:00:1f.0 (lpc_ich)"), "{s}");
    assert!(
        !s.contains("\n  0000:00:1f.0"),
        "not network or storage, not vfio: {s}"
    );
    assert!(!s.contains("IOMMU is off"));
}

#[test]
fn status_says_when_the_iommu_is_off() {
    let f = FakeSysfs::new();
    f.add(&FakeDevice {
        addr: "00:04.0",
        vendor: 0x1af4,
        device: 0x1041,
        class: 0x020000,
        driver: None,
        group: None,
    });
    let s = Devbind::new(f.root()).status().unwrap();
    assert!(
        s.starts_with("No IOMMU groups: the IOMMU is off. Boot with intel_iommu=on"),
        "{s}"
    );
    assert!(s.contains("vfio: no (no IOMMU group: IOMMU off)"), "{s}");
}

#[test]
fn refuses_a_nic_whose_interface_is_up() {
    let f = FakeSysfs::q35_guest();
    f.add_driver("vfio-pci");
    let e = Devbind::new(f.root())
        .bind(&[a("00:04.0")], VFIO_PCI, false)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "0000:00:04.0 has kernel network interface eth0 up; taking it would cut that link. \
         Bring it down first (`ip link set eth0 down`) or pass --force"
    );
    assert_eq!(
        f.read("bus/pci/devices/0000:00:04.0/driver_override"),
        "(null)",
        "nothing written"
    );
}

#[test]
fn checks_every_device_before_touching_any() {
    let f = FakeSysfs::q35_guest();
    let e = Devbind::new(f.root())
        .bind(&[a("00:03.0"), a("00:04.0")], VFIO_PCI, false)
        .unwrap_err();
    assert!(matches!(e, DevbindError::InterfaceUp { .. }));
    assert_eq!(
        f.read("bus/pci/drivers/nvme/unbind"),
        "",
        "the NVMe was left alone"
    );
}

#[test]
fn bind_writes_override_unbind_probe_then_restores_when_not_taken() {
    let f = FakeSysfs::q35_guest();
    let e = Devbind::new(f.root())
        .bind(&[a("00:04.0")], VFIO_PCI, true)
        .unwrap_err();
    // The fake kernel binds nothing: the device stays where the fake says.
    assert!(
        matches!(&e, DevbindError::NotTaken { now: Some(d), .. } if d == "virtio-pci"),
        "{e}"
    );
    assert!(e.to_string().contains("see `dmesg | tail`"), "{e}");
    assert_eq!(f.read("bus/pci/drivers/virtio-pci/unbind"), "0000:00:04.0");
    assert_eq!(f.read("bus/pci/drivers_probe"), "0000:00:04.0");
    assert_eq!(
        f.read("bus/pci/devices/0000:00:04.0/driver_override"),
        "",
        "override cleared again"
    );
}

#[test]
fn already_bound_is_a_no_op_and_missing_driver_is_named() {
    let f = FakeSysfs::q35_guest();
    let d = Devbind::new(f.root());
    assert_eq!(
        d.bind(&[a("00:05.0")], VFIO_PCI, false).unwrap(),
        ["0000:00:05.0: already bound to vfio-pci"]
    );
    let e = d
        .bind(&[a("00:03.0")], "uio_pci_generic", false)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("driver uio_pci_generic is not loaded"),
        "{e}"
    );
    let e = d.bind(&[a("00:09.0")], VFIO_PCI, false).unwrap_err();
    assert!(
        e.to_string().starts_with("no PCI device 0000:00:09.0"),
        "{e}"
    );
}

#[test]
fn bind_refuses_without_an_iommu_group() {
    let f = FakeSysfs::new();
    f.add(&FakeDevice {
        addr: "00:04.0",
        vendor: 0x1af4,
        device: 0x1041,
        class: 0x020000,
        driver: None,
        group: None,
    });
    f.add_driver("vfio-pci");
    let e = Devbind::new(f.root())
        .bind(&[a("00:04.0")], VFIO_PCI, false)
        .unwrap_err();
    assert!(e.to_string().contains("intel_iommu=on"), "{e}");
}

#[test]
fn bind_takes_a_device_without_a_group_in_no_iommu_mode() {
    // No IOMMU: the device has no group until vfio-pci, with VFIO's no-IOMMU mode on, makes
    // one (`/dev/vfio/noiommu-N`). The bind must go ahead (the fake kernel then binds
    // nothing, hence `NotTaken` after the writes).
    let f = FakeSysfs::new();
    f.add(&FakeDevice {
        addr: "00:04.0",
        vendor: 0x1af4,
        device: 0x1041,
        class: 0x020000,
        driver: None,
        group: None,
    });
    f.add_driver("vfio-pci");
    let param = f.root().join("module/vfio/parameters");
    std::fs::create_dir_all(&param).unwrap();
    std::fs::write(param.join("enable_unsafe_noiommu_mode"), "Y\n").unwrap();
    let d = Devbind::new(f.root());
    let s = d.status().unwrap();
    assert!(s.starts_with("VFIO no-IOMMU mode is on"), "{s}");
    assert!(s.contains("vfio: yes (no-IOMMU mode)"), "{s}");
    let e = d.bind(&[a("00:04.0")], VFIO_PCI, false).unwrap_err();
    assert!(
        matches!(e, DevbindError::NotTaken { .. }),
        "refused before binding: {e}"
    );
    assert_eq!(
        f.read("bus/pci/devices/0000:00:04.0/driver_override"),
        "",
        "the override was set, then cleared when nothing took it"
    );
    // With the mode off again, the same device is refused up front.
    std::fs::write(param.join("enable_unsafe_noiommu_mode"), "N\n").unwrap();
    let e = d.bind(&[a("00:04.0")], VFIO_PCI, false).unwrap_err();
    assert!(e.to_string().contains("intel_iommu=on"), "{e}");
}

#[test]
fn unbind_clears_override_and_unbinds() {
    let f = FakeSysfs::q35_guest();
    let r = Devbind::new(f.root()).unbind(&[a("00:05.0")]).unwrap();
    assert_eq!(r, ["0000:00:05.0: unbound from vfio-pci"]);
    assert_eq!(f.read("bus/pci/drivers/vfio-pci/unbind"), "0000:00:05.0");
    assert_eq!(f.read("bus/pci/devices/0000:00:05.0/driver_override"), "");
}

#[test]
fn driver_names_only_no_paths_options_or_odd_characters() {
    for ok in [
        "vfio-pci",
        "virtio_pci",
        "nvme",
        "ixgbe",
        "uio_pci_generic",
        "a",
    ] {
        assert_eq!(parse_driver_name(ok).as_deref(), Ok(ok));
    }
    let long = "a".repeat(MAX_DRIVER_NAME + 1);
    for bad in [
        "",
        "../../../../dev/sda",
        "..",
        "vfio/pci",
        "/sbin/evil",
        "-r",
        "--help",
        "-",
        "vfio pci",
        "vfio\npci",
        "nvme;reboot",
        "vfio.pci",
        "vfio\0",
        "pcié",
        &long,
    ] {
        let e = parse_driver_name(bad).expect_err(bad);
        assert!(
            e.starts_with(&format!("{bad:?} is not a driver name")),
            "{e}"
        );
    }
}

#[test]
fn bind_refuses_a_driver_path_before_touching_sysfs() {
    let f = FakeSysfs::q35_guest();
    let d = Devbind::new(f.root());
    let e = d
        .bind(&[a("00:04.0")], "../../../../tmp/x", true)
        .unwrap_err();
    assert!(matches!(e, DevbindError::BadDriverName(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "\"../../../../tmp/x\" is not a driver name: '.' is not allowed (letters, digits, '_' and '-')"
    );
    // Nothing was written: the device's override is as it was.
    let over = f
        .root()
        .join("bus/pci/devices/0000:00:04.0/driver_override");
    assert_eq!(std::fs::read_to_string(over).unwrap(), "(null)\n");
}

#[test]
fn the_command_line_refuses_bad_driver_names() {
    use clap::Parser;
    let parse = |args: &[&str]| DevbindArgs::try_parse_from(args.iter().copied());
    let ok = parse(&[
        "sluice-devbind",
        "bind",
        "00:04.0",
        "--driver",
        "virtio-pci",
    ])
    .unwrap();
    assert!(matches!(ok.cmd, DevbindCmd::Bind { ref driver, .. } if driver == "virtio-pci"));
    let dflt = parse(&["sluice-devbind", "bind", "00:04.0"]).unwrap();
    assert!(matches!(dflt.cmd, DevbindCmd::Bind { ref driver, .. } if driver == "vfio-pci"));
    for bad in ["--driver=../x", "--driver=-r", "--driver=a/b", "--driver="] {
        let e = parse(&["sluice-devbind", "bind", "00:04.0", bad]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--driver"), "{text}");
        assert!(text.contains("is not a driver name"), "{text}");
    }
}
