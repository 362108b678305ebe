//! Capability walks over config spaces captured from QEMU 7.2 (`virtio-net-pci,
//! disable-legacy=on,iommu_platform=on` and `nvme` on q35), and over broken lists.

use super::*;
use crate::pci::PciError;
use crate::pci::config::ConfigBytes;

const VIRTIO_NET: &[u8] = include_bytes!("../testdata/virtio-net-modern.cfg");
const NVME: &[u8] = include_bytes!("../testdata/qemu-nvme.cfg");

fn bytes(b: &[u8]) -> ConfigBytes {
    ConfigBytes::new("00:04.0".parse().unwrap(), b.to_vec())
}

#[test]
fn virtio_net_caps_match_qemu_7_2() {
    let cfg = bytes(VIRTIO_NET);
    let caps = capabilities(&cfg).unwrap();
    let got: Vec<(u8, u16)> = caps.iter().map(|c| (c.id, c.offset)).collect();
    assert_eq!(
        got,
        [
            (id::MSIX, 0x98),
            (id::VENDOR, 0x84),
            (id::VENDOR, 0x70),
            (id::VENDOR, 0x60),
            (id::VENDOR, 0x50),
            (id::VENDOR, 0x40),
        ]
    );
    assert_eq!(find(&cfg, id::MSIX).unwrap().map(|c| c.offset), Some(0x98));
    assert_eq!(find(&cfg, id::PCIE).unwrap(), None, "plain PCI on pcie.0");
    assert!(
        ext_capabilities(&cfg).unwrap().is_empty(),
        "256-byte config space"
    );
}

#[test]
fn virtio_net_register_blocks_sit_in_bar4() {
    let caps = virtio_caps(&bytes(VIRTIO_NET)).unwrap();
    let find = |t| caps.iter().find(|c| c.cfg_type == t).copied().unwrap();
    let common = find(VirtioCfgType::Common);
    assert_eq!((common.bar, common.offset, common.length), (4, 0, 0x1000));
    assert_eq!(common.cap_offset, 0x40);
    let isr = find(VirtioCfgType::Isr);
    assert_eq!((isr.bar, isr.offset), (4, 0x1000));
    let dev = find(VirtioCfgType::Device);
    assert_eq!((dev.bar, dev.offset), (4, 0x2000));
    let notify = find(VirtioCfgType::Notify);
    assert_eq!((notify.bar, notify.offset), (4, 0x3000));
    assert_eq!(notify.notify_off_multiplier, Some(4));
    assert!(caps.iter().any(|c| c.cfg_type == VirtioCfgType::PciCfg));
    assert_eq!(caps.len(), 5);
}

#[test]
fn nvme_has_msix_pcie_pm_and_no_extended_caps() {
    let cfg = bytes(NVME);
    assert_eq!(cfg.size(), 4096);
    let ids: Vec<u8> = capabilities(&cfg).unwrap().iter().map(|c| c.id).collect();
    assert_eq!(ids, [id::MSIX, id::PCIE, id::PM]);
    assert!(virtio_caps(&cfg).unwrap().is_empty());
    assert_eq!(cfg.read16(0).unwrap(), 0x1b36);
    assert_eq!(cfg.read16(2).unwrap(), 0x0010);
    assert!(ext_capabilities(&cfg).unwrap().is_empty());
}

#[test]
fn no_cap_list_bit_means_no_caps() {
    let mut b = VIRTIO_NET.to_vec();
    b[6] &= !0x10;
    assert!(capabilities(&bytes(&b)).unwrap().is_empty());
}

#[test]
fn a_looping_list_is_an_error_not_a_hang() {
    let mut b = VIRTIO_NET.to_vec();
    b[0x41] = 0x98; // the last cap points back to the first
    let e = capabilities(&bytes(&b)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Pci(PciError::CapList {
                why: "capability list loops",
                ..
            })
        ),
        "{e}"
    );
}

#[test]
fn a_pointer_into_the_header_or_past_the_end_is_an_error() {
    let mut b = VIRTIO_NET.to_vec();
    b[0x34] = 0x10;
    assert!(matches!(
        capabilities(&bytes(&b)),
        Err(Error::Pci(PciError::CapList { offset: 0x10, .. }))
    ));
    b[0x34] = 0xff; // masked to 0xfc, then 0xfd is read as next: still inside
    b[0xfc] = 0x09;
    b[0xfd] = 0x00;
    assert_eq!(capabilities(&bytes(&b)).unwrap().len(), 1);
    // A truncated (64-byte, unprivileged sysfs) view cannot hold the list.
    let e = capabilities(&bytes(&VIRTIO_NET[..64])).unwrap_err();
    assert!(matches!(e, Error::Pci(PciError::Config { .. })), "{e}");
}

#[test]
fn short_vendor_caps_are_skipped() {
    let mut b = VIRTIO_NET.to_vec();
    b[0x42] = 8; // common cfg cap claims 8 bytes
    b[0x72] = 16; // notify cap too short for its multiplier
    let caps = virtio_caps(&bytes(&b)).unwrap();
    assert!(!caps.iter().any(|c| c.cfg_type == VirtioCfgType::Common));
    assert!(!caps.iter().any(|c| c.cfg_type == VirtioCfgType::Notify));
    assert_eq!(caps.len(), 3);
}

#[test]
fn extended_list_walk_and_loop() {
    let mut b = vec![0u8; 4096];
    // 0x100: AER v2 -> 0x140: serial number v1 -> end
    b[0x100..0x104].copy_from_slice(&(0x0001u32 | 2 << 16 | 0x140 << 20).to_le_bytes());
    b[0x140..0x144].copy_from_slice(&(0x0003u32 | 1 << 16).to_le_bytes());
    let caps = ext_capabilities(&bytes(&b)).unwrap();
    assert_eq!(
        caps,
        [
            ExtCapability {
                id: 1,
                version: 2,
                offset: 0x100
            },
            ExtCapability {
                id: 3,
                version: 1,
                offset: 0x140
            },
        ]
    );
    b[0x140..0x144].copy_from_slice(&(0x0003u32 | 1 << 16 | 0x100 << 20).to_le_bytes());
    assert!(ext_capabilities(&bytes(&b)).is_err(), "loop");
    b[0x140..0x144].copy_from_slice(&(0x0003u32 | 0x40 << 20).to_le_bytes());
    assert!(ext_capabilities(&bytes(&b)).is_err(), "pointer below 0x100");
    b[0x100..0x104].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(
        ext_capabilities(&bytes(&b)).unwrap().is_empty(),
        "device gone"
    );
}
