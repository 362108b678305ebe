//! Identify data (NVMe 1.4 §5.15), parsed from the 4 KiB pages the controller returns.

use crate::error::Error;
use crate::nvme::NvmeError;

/// What the driver uses from Identify Controller (CNS 01h).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    /// PCI vendor ID.
    pub vid: u16,
    /// Serial number (trimmed).
    pub serial: String,
    /// Model number (trimmed).
    pub model: String,
    /// Firmware revision (trimmed).
    pub firmware: String,
    /// MDTS: largest transfer as a power of two of the minimum page size (0: no limit).
    pub mdts: u8,
    /// OACS: optional admin commands.
    pub oacs: u16,
    /// ONCS: optional NVM commands.
    pub oncs: u16,
    /// VWC: volatile write cache.
    pub vwc: u8,
    /// NN: number of namespaces.
    pub nn: u32,
}

impl ControllerInfo {
    /// OACS bit 8: Doorbell Buffer Config is supported.
    pub fn supports_doorbell_buffer(&self) -> bool {
        self.oacs >> 8 & 1 == 1
    }
    /// ONCS bit 2: Dataset Management.
    pub fn supports_dsm(&self) -> bool {
        self.oncs >> 2 & 1 == 1
    }
    /// ONCS bit 3: Write Zeroes.
    pub fn supports_write_zeroes(&self) -> bool {
        self.oncs >> 3 & 1 == 1
    }
    /// Largest transfer in bytes given the minimum page size, capped at `cap`.
    pub fn max_transfer(&self, min_page: usize, cap: usize) -> usize {
        if self.mdts == 0 || self.mdts >= 32 {
            cap
        } else {
            (min_page << self.mdts).min(cap)
        }
    }

    /// Parses an Identify Controller page.
    pub fn parse(page: &[u8; 4096]) -> Self {
        ControllerInfo {
            vid: u16_at(page, 0x00),
            serial: text(&page[0x04..0x18]),
            model: text(&page[0x18..0x40]),
            firmware: text(&page[0x40..0x48]),
            mdts: page[0x4D],
            oacs: u16_at(page, 0x100),
            oncs: u16_at(page, 0x208),
            vwc: page[0x20D],
            nn: u32_at(page, 0x204),
        }
    }
}

/// A namespace (Identify Namespace, CNS 00h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Namespace ID.
    pub nsid: u32,
    /// NSZE: size in logical blocks.
    pub blocks: u64,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Metadata bytes per block (the driver needs 0).
    pub metadata_size: u16,
}

impl NamespaceInfo {
    /// Parses an Identify Namespace page for `nsid`.
    pub fn parse(nsid: u32, page: &[u8; 4096]) -> Result<Self, Error> {
        let flbas = page[0x1A];
        let index = usize::from(flbas & 0xf) | usize::from(flbas >> 5 & 0x3) << 4;
        if index > usize::from(page[0x19]) || index >= 64 {
            return Err(NvmeError::LbaFormat {
                nsid,
                flbas,
                index,
                formats: usize::from(page[0x19]) + 1,
            }
            .into());
        }
        let lbaf = u32_at(page, 0x80 + 4 * index);
        let lbads = (lbaf >> 16 & 0xff) as u8;
        if !(9..=16).contains(&lbads) {
            return Err(NvmeError::BlockSize { nsid, lbads }.into());
        }
        Ok(NamespaceInfo {
            nsid,
            blocks: u64::from(u32_at(page, 0)) | u64::from(u32_at(page, 4)) << 32,
            block_size: 1 << lbads,
            metadata_size: lbaf as u16,
        })
    }
}

/// The active namespace IDs in a CNS 02h page (ascending, zero-terminated).
pub fn active_namespaces(page: &[u8; 4096]) -> Vec<u32> {
    (0..1024)
        .map(|i| u32_at(page, 4 * i))
        .take_while(|&id| id != 0)
        .collect()
}

fn u16_at(p: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([p[o], p[o + 1]])
}

fn u32_at(p: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_fields() {
        let mut p = [0u8; 4096];
        p[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        p[0x18..0x18 + 10].copy_from_slice(b"QEMU NVMe ");
        p[0x4D] = 7;
        p[0x100..0x102].copy_from_slice(&0x10Au16.to_le_bytes());
        p[0x208..0x20A].copy_from_slice(&0x15Du16.to_le_bytes());
        p[0x204..0x208].copy_from_slice(&256u32.to_le_bytes());
        let c = ControllerInfo::parse(&p);
        assert_eq!((c.vid, c.model.as_str(), c.nn), (0x1b36, "QEMU NVMe", 256));
        assert!(c.supports_doorbell_buffer() && c.supports_dsm() && c.supports_write_zeroes());
        assert_eq!(c.max_transfer(4096, 1 << 30), 512 << 10);
        assert_eq!(
            ControllerInfo { mdts: 0, ..c }.max_transfer(4096, 1 << 20),
            1 << 20
        );
    }

    #[test]
    fn namespace_fields_and_bad_format() {
        let mut p = [0u8; 4096];
        p[0..8].copy_from_slice(&(1u64 << 21).to_le_bytes());
        p[0x19] = 7;
        p[0x1A] = 4;
        p[0x80 + 16..0x80 + 20].copy_from_slice(&(12u32 << 16).to_le_bytes());
        let ns = NamespaceInfo::parse(1, &p).unwrap();
        assert_eq!(
            (ns.blocks, ns.block_size, ns.metadata_size),
            (1 << 21, 4096, 0)
        );
        p[0x1A] = 9;
        assert!(
            NamespaceInfo::parse(1, &p)
                .unwrap_err()
                .to_string()
                .contains("FLBAS")
        );
        let mut l = [0u8; 4096];
        l[0..4].copy_from_slice(&1u32.to_le_bytes());
        l[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(active_namespaces(&l), vec![1, 3]);
    }
}
