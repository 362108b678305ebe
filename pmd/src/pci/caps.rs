//! Capability lists: the standard list (PCI 3.0 §6.7), the PCIe extended list (PCIe 4.0
//! §7.6), and the vendor-specific capabilities through which virtio exposes its register
//! blocks (virtio 1.2 §4.1.4).
//!
//! The lists are device input: every pointer is checked to stay inside config space and out
//! of the header, and the walks are bounded, so a looping or truncated list is an
//! [`PciError::CapList`], not a hang.

use crate::error::Error;
use crate::pci::PciError;
use crate::pci::config::{CONFIG_SIZE, CONFIG_SIZE_EXTENDED, ConfigSpace, reg};

/// Standard capability IDs used by Sluice's drivers.
pub mod id {
    /// Power management.
    pub const PM: u8 = 0x01;
    /// MSI.
    pub const MSI: u8 = 0x05;
    /// Vendor-specific (virtio's register-block pointers).
    pub const VENDOR: u8 = 0x09;
    /// PCI Express.
    pub const PCIE: u8 = 0x10;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
}

/// One entry of the standard capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID (see [`id`]).
    pub id: u8,
    /// Offset of the capability in config space.
    pub offset: u16,
}

/// One entry of the PCIe extended capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtCapability {
    /// Extended capability ID (e.g. 0x0001 AER, 0x0003 serial number, 0x000b vendor).
    pub id: u16,
    /// Capability version.
    pub version: u8,
    /// Offset in config space (at least 0x100).
    pub offset: u16,
}

/// The standard capability list, in list order.
///
/// Empty when STATUS says there is none.
///
/// # Errors
///
/// [`PciError::CapList`] for a pointer into the header or past the end, or a loop;
/// [`PciError::Config`] if config space cannot be read.
pub fn capabilities<C: ConfigSpace + ?Sized>(cfg: &C) -> Result<Vec<Capability>, Error> {
    let mut caps = Vec::new();
    if cfg.read16(reg::STATUS)? & reg::STATUS_CAP_LIST == 0 {
        return Ok(caps);
    }
    let bad = |offset, why| {
        Error::from(PciError::CapList {
            addr: cfg.addr(),
            offset,
            why,
        })
    };
    // The low two bits of every pointer are reserved (PCI 3.0 §6.7).
    let mut ptr = u16::from(cfg.read8(reg::CAP_PTR)? & !3);
    // At most (256 - 64) / 4 capabilities fit; more steps than that is a loop.
    let max = usize::from((CONFIG_SIZE - 0x40) / 4);
    while ptr != 0 {
        if !(0x40..=CONFIG_SIZE - 2).contains(&ptr) {
            return Err(bad(ptr, "capability pointer outside 0x40..0xfe"));
        }
        if caps.len() == max {
            return Err(bad(ptr, "capability list loops"));
        }
        let id = cfg.read8(ptr)?;
        caps.push(Capability { id, offset: ptr });
        ptr = u16::from(cfg.read8(ptr + 1)? & !3);
    }
    Ok(caps)
}

/// The first capability with ID `id`, if any.
///
/// # Errors
///
/// As [`capabilities`].
pub fn find<C: ConfigSpace + ?Sized>(cfg: &C, id: u8) -> Result<Option<Capability>, Error> {
    Ok(capabilities(cfg)?.into_iter().find(|c| c.id == id))
}

/// The PCIe extended capability list, in list order; empty when config space is only 256
/// bytes (plain PCI, or a backing that does not expose the rest) or the list is empty.
///
/// # Errors
///
/// [`PciError::CapList`] for a pointer below 0x100 or past the end, or a loop.
pub fn ext_capabilities<C: ConfigSpace + ?Sized>(cfg: &C) -> Result<Vec<ExtCapability>, Error> {
    let mut caps = Vec::new();
    if cfg.size() < CONFIG_SIZE_EXTENDED {
        return Ok(caps);
    }
    let max = usize::from((CONFIG_SIZE_EXTENDED - CONFIG_SIZE) / 4);
    let mut ptr = CONFIG_SIZE;
    loop {
        let header = cfg.read32(ptr)?;
        // An all-zero header at 0x100 means no list; all ones means no device answered.
        if header == 0 || header == u32::MAX {
            break;
        }
        if caps.len() == max {
            return Err(PciError::CapList {
                addr: cfg.addr(),
                offset: ptr,
                why: "extended capability list loops",
            }
            .into());
        }
        caps.push(ExtCapability {
            id: header as u16,
            version: ((header >> 16) & 0xf) as u8,
            offset: ptr,
        });
        let next = ((header >> 20) as u16) & !3;
        if next == 0 {
            break;
        }
        if !(CONFIG_SIZE..=CONFIG_SIZE_EXTENDED - 4).contains(&next) {
            return Err(PciError::CapList {
                addr: cfg.addr(),
                offset: ptr,
                why: "extended capability pointer outside 0x100..0xffc",
            }
            .into());
        }
        ptr = next;
    }
    Ok(caps)
}

/// Which virtio register block a vendor capability points at (virtio 1.2 §4.1.4,
/// `cfg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioCfgType {
    /// 1: common configuration.
    Common,
    /// 2: notifications (with `notify_off_multiplier`).
    Notify,
    /// 3: ISR status.
    Isr,
    /// 4: device-specific configuration.
    Device,
    /// 5: PCI configuration access window.
    PciCfg,
    /// 8: shared memory region.
    SharedMemory,
    /// 9: vendor data.
    Vendor,
    /// Any other value; drivers ignore these (virtio 1.2 §4.1.4).
    Other(u8),
}

impl From<u8> for VirtioCfgType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Common,
            2 => Self::Notify,
            3 => Self::Isr,
            4 => Self::Device,
            5 => Self::PciCfg,
            8 => Self::SharedMemory,
            9 => Self::Vendor,
            other => Self::Other(other),
        }
    }
}

/// A virtio PCI capability (`struct virtio_pci_cap`, virtio 1.2 §4.1.4): where in which BAR
/// one register block lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioPciCap {
    /// Offset of the capability in config space.
    pub cap_offset: u16,
    /// Which block.
    pub cfg_type: VirtioCfgType,
    /// The BAR holding it (0..=5; other values are reserved and such caps must be ignored).
    pub bar: u8,
    /// Distinguishes several caps of one type (shared memory IDs).
    pub id: u8,
    /// Offset of the block within the BAR.
    pub offset: u32,
    /// Length of the block in bytes.
    pub length: u32,
    /// For [`VirtioCfgType::Notify`]: the multiplier for `queue_notify_off`.
    pub notify_off_multiplier: Option<u32>,
}

/// Every virtio PCI capability in the standard list, in list order.
///
/// Vendor capabilities that are too short to be virtio's (`cap_len < 16`) are skipped, as are
/// notify capabilities too short to carry their multiplier.
///
/// # Errors
///
/// As [`capabilities`].
pub fn virtio_caps<C: ConfigSpace + ?Sized>(cfg: &C) -> Result<Vec<VirtioPciCap>, Error> {
    let mut out = Vec::new();
    for cap in capabilities(cfg)?
        .into_iter()
        .filter(|c| c.id == id::VENDOR)
    {
        let at = cap.offset;
        let cap_len = cfg.read8(at + 2)?;
        if cap_len < 16 || usize::from(at) + usize::from(cap_len) > usize::from(CONFIG_SIZE) {
            continue;
        }
        let cfg_type = VirtioCfgType::from(cfg.read8(at + 3)?);
        let notify_off_multiplier = if cfg_type == VirtioCfgType::Notify {
            if cap_len < 20 {
                continue;
            }
            Some(cfg.read32(at + 16)?)
        } else {
            None
        };
        out.push(VirtioPciCap {
            cap_offset: at,
            cfg_type,
            bar: cfg.read8(at + 4)?,
            id: cfg.read8(at + 5)?,
            offset: cfg.read32(at + 8)?,
            length: cfg.read32(at + 12)?,
            notify_off_multiplier,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
