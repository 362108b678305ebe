//! Config-space access: one trait, three backings.
//!
//! [`ConfigSpace`] is what the capability walk and the drivers read through. It is
//! implemented by [`SysfsConfig`] (the device's sysfs `config` file, for enumeration and
//! tools), by the VFIO config region ([`VfioConfig`](crate::vfio::VfioConfig), for a device
//! this process owns), and by [`ConfigBytes`] (captured bytes, for tests).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::Error;
use crate::pci::PciAddr;
use crate::pci::PciError;

/// Standard header offsets used in this crate (PCI Local Bus 3.0 §6.1).
pub mod reg {
    /// Vendor ID (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// COMMAND (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// STATUS (16 bits); bit 4 = capability list present.
    pub const STATUS: u16 = 0x06;
    /// Revision ID (8 bits), then class code (24 bits).
    pub const REVISION: u16 = 0x08;
    /// Header type (8 bits); bits 6:0 = layout, bit 7 = multi-function.
    pub const HEADER_TYPE: u16 = 0x0e;
    /// BAR 0 (32 bits each, 6 of them for a type-0 header).
    pub const BAR0: u16 = 0x10;
    /// Subsystem vendor ID (16 bits).
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
    /// Subsystem ID (16 bits).
    pub const SUBSYSTEM_ID: u16 = 0x2e;
    /// Capabilities pointer (8 bits, low 2 bits reserved).
    pub const CAP_PTR: u16 = 0x34;

    /// COMMAND bit 1: respond to memory-space accesses.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// COMMAND bit 2: bus master (the device may issue DMA).
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    /// COMMAND bit 10: legacy INTx disabled.
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// STATUS bit 4: a capability list is present.
    pub const STATUS_CAP_LIST: u16 = 1 << 4;
}

/// Size of the conventional PCI config space.
pub const CONFIG_SIZE: u16 = 256;
/// Size of the PCI Express extended config space.
pub const CONFIG_SIZE_EXTENDED: u16 = 4096;

/// Byte-granular access to one function's config space.
///
/// Implementors provide [`read`](Self::read), [`write`](Self::write) and [`size`](Self::size);
/// the typed accessors are little-endian and bounds-checked against `size`.
pub trait ConfigSpace {
    /// The device this config space belongs to (for error messages).
    fn addr(&self) -> PciAddr;

    /// Bytes of config space readable: 256, or 4096 for PCIe where the backing exposes it.
    fn size(&self) -> u16;

    /// Reads `buf.len()` bytes at `offset`. Implementations issue one access of that width
    /// where the backing allows (1, 2 or 4 bytes), since some registers have side effects.
    fn read(&self, offset: u16, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `buf` at `offset`, as one access where the backing allows.
    fn write(&self, offset: u16, buf: &[u8]) -> io::Result<()>;

    /// Reads one byte.
    fn read8(&self, offset: u16) -> Result<u8, Error> {
        let mut b = [0u8; 1];
        checked(self, "read", offset, 1, |s| s.read(offset, &mut b))?;
        Ok(b[0])
    }

    /// Reads a little-endian `u16`.
    fn read16(&self, offset: u16) -> Result<u16, Error> {
        let mut b = [0u8; 2];
        checked(self, "read", offset, 2, |s| s.read(offset, &mut b))?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    fn read32(&self, offset: u16) -> Result<u32, Error> {
        let mut b = [0u8; 4];
        checked(self, "read", offset, 4, |s| s.read(offset, &mut b))?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian `u16`.
    fn write16(&self, offset: u16, value: u16) -> Result<(), Error> {
        checked(self, "write", offset, 2, |s| {
            s.write(offset, &value.to_le_bytes())
        })?;
        Ok(())
    }

    /// Writes a little-endian `u32`.
    fn write32(&self, offset: u16, value: u32) -> Result<(), Error> {
        checked(self, "write", offset, 4, |s| {
            s.write(offset, &value.to_le_bytes())
        })?;
        Ok(())
    }
}

/// Runs `op` if `offset..offset+len` lies inside the config space, mapping failures to
/// [`PciError::Config`].
fn checked<C: ConfigSpace + ?Sized>(
    cfg: &C,
    op: &'static str,
    offset: u16,
    len: usize,
    f: impl FnOnce(&C) -> io::Result<()>,
) -> Result<(), PciError> {
    let inside = usize::from(offset) + len <= usize::from(cfg.size());
    let result = if inside {
        f(cfg)
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("config space is {} bytes", cfg.size()),
        ))
    };
    result.map_err(|source| PciError::Config {
        addr: cfg.addr(),
        op,
        offset,
        len,
        source,
    })
}

/// Config space through sysfs (`/sys/bus/pci/devices/ADDR/config`).
///
/// Unprivileged readers see only the first 64 bytes; root sees 256, or 4096 for PCIe.
/// Opened read-write when possible, read-only otherwise.
#[derive(Debug)]
pub struct SysfsConfig {
    addr: PciAddr,
    file: File,
    size: u16,
}

impl SysfsConfig {
    /// Opens `dir/config` for the device at `addr` (`dir` is its sysfs directory).
    ///
    /// # Errors
    ///
    /// [`PciError::Sysfs`] if the file cannot be opened.
    pub fn open(addr: PciAddr, dir: &Path) -> Result<Self, Error> {
        let path = dir.join("config");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .or_else(|_| File::open(&path))
            .map_err(|source| PciError::Sysfs {
                op: "opening",
                path: path.clone(),
                source,
            })?;
        let len = file
            .metadata()
            .map_err(|source| PciError::Sysfs {
                op: "reading",
                path,
                source,
            })?
            .len();
        let size = len.min(u64::from(CONFIG_SIZE_EXTENDED)) as u16;
        Ok(SysfsConfig { addr, file, size })
    }
}

impl ConfigSpace for SysfsConfig {
    fn addr(&self) -> PciAddr {
        self.addr
    }

    fn size(&self) -> u16 {
        self.size
    }

    fn read(&self, offset: u16, buf: &mut [u8]) -> io::Result<()> {
        // The kernel's sysfs config reader issues aligned 1/2/4-byte accesses itself.
        self.file.read_exact_at(buf, u64::from(offset))
    }

    fn write(&self, offset: u16, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, u64::from(offset))
    }
}

/// Config space held in memory: captured bytes in tests, or a snapshot.
///
/// Writes change the bytes (through a `RefCell`, so the type is `!Sync`: it is a test tool).
#[derive(Debug)]
pub struct ConfigBytes {
    addr: PciAddr,
    bytes: std::cell::RefCell<Vec<u8>>,
}

impl ConfigBytes {
    /// Config space `bytes` of the device at `addr`; its size is `bytes.len()` (at most 4096).
    pub fn new(addr: PciAddr, mut bytes: Vec<u8>) -> Self {
        bytes.truncate(usize::from(CONFIG_SIZE_EXTENDED));
        ConfigBytes {
            addr,
            bytes: std::cell::RefCell::new(bytes),
        }
    }

    /// The current bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.borrow().clone()
    }
}

impl ConfigSpace for ConfigBytes {
    fn addr(&self) -> PciAddr {
        self.addr
    }

    fn size(&self) -> u16 {
        self.bytes.borrow().len() as u16
    }

    fn read(&self, offset: u16, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes.borrow();
        let src = bytes
            .get(usize::from(offset)..usize::from(offset) + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&self, offset: u16, buf: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.borrow_mut();
        let dst = bytes
            .get_mut(usize::from(offset)..usize::from(offset) + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const VIRTIO_NET: &[u8] = include_bytes!("testdata/virtio-net-modern.cfg");

    fn cfg() -> ConfigBytes {
        ConfigBytes::new("00:04.0".parse().unwrap(), VIRTIO_NET.to_vec())
    }

    #[test]
    fn reads_header_fields_little_endian() {
        let c = cfg();
        assert_eq!(c.size(), 256);
        assert_eq!(c.read16(reg::VENDOR_ID).unwrap(), 0x1af4);
        assert_eq!(c.read16(reg::DEVICE_ID).unwrap(), 0x1041);
        assert_eq!(
            c.read32(reg::REVISION).unwrap() >> 8,
            0x020000,
            "class: ethernet"
        );
        assert_ne!(c.read16(reg::STATUS).unwrap() & reg::STATUS_CAP_LIST, 0);
        assert_eq!(c.read8(reg::CAP_PTR).unwrap(), 0x98);
    }

    #[test]
    fn accesses_past_the_end_are_config_errors() {
        let c = cfg();
        assert!(c.read8(255).is_ok());
        let e = c.read16(255).unwrap_err();
        assert_eq!(
            e.to_string(),
            "0000:00:04.0: config space read of 2 bytes at 0xff failed"
        );
        assert!(c.write32(0x100, 0).is_err());
        assert!(c.read32(u16::MAX).is_err(), "no overflow");
    }

    #[test]
    fn writes_land_little_endian() {
        let c = cfg();
        c.write16(reg::COMMAND, 0x0507).unwrap();
        assert_eq!(&c.bytes()[4..6], &[0x07, 0x05]);
    }

    #[test]
    fn sysfs_config_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), VIRTIO_NET).unwrap();
        let c = SysfsConfig::open("00:04.0".parse().unwrap(), &dir).unwrap();
        assert_eq!(c.size(), 256);
        assert_eq!(c.read16(reg::DEVICE_ID).unwrap(), 0x1041);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
