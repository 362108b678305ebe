//! Parsing the variable-size answers of `VFIO_IOMMU_GET_INFO` and
//! `VFIO_DEVICE_GET_REGION_INFO`: a fixed header followed by a chain of capabilities
//! `{u16 id, u16 version, u32 next}`, where `next` is an offset from the start of the answer
//! and 0 ends the chain (`linux/vfio.h`, `struct vfio_info_cap_header`).
//!
//! Pure functions over bytes, so they are tested here on hand-built answers; the kernel's
//! bytes are input like any other, so offsets are bounds-checked and the walk is bounded.

use crate::vfio::VfioError;

/// One usable IOVA range of the IOMMU, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaRange {
    /// First usable IOVA.
    pub start: u64,
    /// Last usable IOVA (inclusive).
    pub end: u64,
}

impl IovaRange {
    /// Whether `iova..iova+len` lies inside this range (false for `len == 0` or overflow).
    pub fn contains(&self, iova: u64, len: u64) -> bool {
        match len.checked_sub(1).and_then(|l| iova.checked_add(l)) {
            Some(last) => iova >= self.start && last <= self.end,
            None => false,
        }
    }
}

/// What a type1 IOMMU reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IommuInfo {
    /// Bitmap of supported IOMMU page sizes (bit n set: 2^n bytes).
    pub iova_pgsizes: u64,
    /// Usable IOVA ranges (empty if the kernel did not report them: assume all).
    pub ranges: Vec<IovaRange>,
    /// How many more DMA mappings the container accepts, if reported.
    pub dma_avail: Option<u32>,
}

impl IommuInfo {
    /// The smallest IOMMU page size: the alignment every mapping needs (4 KiB if none is
    /// reported).
    pub fn min_page(&self) -> u64 {
        if self.iova_pgsizes == 0 {
            4096
        } else {
            1 << self.iova_pgsizes.trailing_zeros()
        }
    }

    /// Whether `iova..iova+len` fits in one reported range (true when none were reported).
    pub fn allows(&self, iova: u64, len: u64) -> bool {
        self.ranges.is_empty() || self.ranges.iter().any(|r| r.contains(iova, len))
    }
}

/// Where a device region may be mapped with `mmap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// Region index (BAR n = n, ROM = 6, config = 7).
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`: READ 1, WRITE 2, MMAP 4, CAPS 8.
    pub flags: u32,
    /// Size in bytes (0: the region does not exist, e.g. the upper half of a 64-bit BAR).
    pub size: u64,
    /// Offset of the region in the device file (for `pread`, `pwrite` and `mmap`).
    pub offset: u64,
    /// Only these `(offset, size)` areas may be mapped, when the kernel says so
    /// (`VFIO_REGION_INFO_CAP_SPARSE_MMAP`: an MSI-X table inside the BAR).
    pub sparse: Option<Vec<(u64, u64)>>,
    /// The MSI-X table inside this BAR may be mapped too
    /// (`VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`: interrupt remapping makes it safe).
    pub msix_mappable: bool,
}

impl RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_MMAP`.
    pub const FLAG_MMAP: u32 = 4;
    /// `VFIO_REGION_INFO_FLAG_CAPS`.
    pub const FLAG_CAPS: u32 = 8;

    /// Whether the whole region can be mapped in one `mmap`.
    pub fn whole_mappable(&self) -> bool {
        self.size > 0
            && self.flags & Self::FLAG_MMAP != 0
            && (self.sparse.is_none() || self.msix_mappable)
    }
}

const CAP_IOVA_RANGE: u16 = 1;
const CAP_DMA_AVAIL: u16 = 3;
const CAP_SPARSE_MMAP: u16 = 1;
const CAP_MSIX_MAPPABLE: u16 = 3;

/// Size of `struct vfio_iommu_type1_info`.
const IOMMU_INFO_LEN: usize = 24;
/// Size of `struct vfio_region_info`.
pub(crate) const REGION_INFO_LEN: usize = 32;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Walks the capability chain starting at `first`, calling `f(id, offset)` for each.
fn walk_caps(
    ioctl: &'static str,
    b: &[u8],
    fixed_len: usize,
    first: u32,
    mut f: impl FnMut(u16, usize) -> Result<(), VfioError>,
) -> Result<(), VfioError> {
    let bad = |offset, why| VfioError::InfoCaps { ioctl, offset, why };
    let mut next = first;
    // Each header is at least 8 bytes, so more steps than this means a loop.
    let mut budget = b.len() / 8 + 1;
    while next != 0 {
        let at = next as usize;
        if at < fixed_len || !at.is_multiple_of(4) || at + 8 > b.len() {
            return Err(bad(
                next,
                "capability offset outside the answer or misaligned",
            ));
        }
        if budget == 0 {
            return Err(bad(next, "capability chain loops"));
        }
        budget -= 1;
        let id = u16_at(b, at).unwrap_or(0);
        f(id, at)?;
        next = u32_at(b, at + 4).unwrap_or(0);
    }
    Ok(())
}

/// Parses a `VFIO_IOMMU_GET_INFO` answer.
///
/// # Errors
///
/// [`VfioError::InfoCaps`] for a short answer or a malformed chain.
pub fn parse_iommu_info(b: &[u8]) -> Result<IommuInfo, VfioError> {
    const IOCTL: &str = "VFIO_IOMMU_GET_INFO";
    let short = || VfioError::InfoCaps {
        ioctl: IOCTL,
        offset: 0,
        why: "answer shorter than its fixed part",
    };
    if b.len() < IOMMU_INFO_LEN {
        return Err(short());
    }
    let flags = u32_at(b, 4).ok_or_else(short)?;
    let mut info = IommuInfo {
        iova_pgsizes: u64_at(b, 8).ok_or_else(short)?,
        ranges: Vec::new(),
        dma_avail: None,
    };
    // VFIO_IOMMU_INFO_CAPS (2): cap_offset is valid.
    let first = if flags & 2 != 0 {
        u32_at(b, 16).ok_or_else(short)?
    } else {
        0
    };
    walk_caps(IOCTL, b, IOMMU_INFO_LEN, first, |id, at| {
        let trunc = VfioError::InfoCaps {
            ioctl: IOCTL,
            offset: at as u32,
            why: "capability truncated",
        };
        match id {
            CAP_IOVA_RANGE => {
                let nr = u32_at(b, at + 8).ok_or(trunc)? as usize;
                for i in 0..nr {
                    let r = at + 16 + 16 * i;
                    let (Some(start), Some(end)) = (u64_at(b, r), u64_at(b, r + 8)) else {
                        return Err(VfioError::InfoCaps {
                            ioctl: IOCTL,
                            offset: at as u32,
                            why: "IOVA range list runs past the answer",
                        });
                    };
                    info.ranges.push(IovaRange { start, end });
                }
            }
            CAP_DMA_AVAIL => info.dma_avail = Some(u32_at(b, at + 8).ok_or(trunc)?),
            _ => {} // migration and later capabilities: not needed
        }
        Ok(())
    })?;
    Ok(info)
}

/// Parses a `VFIO_DEVICE_GET_REGION_INFO` answer: `fixed` from the ioctl, `b` the whole
/// answer (empty when the region has no capabilities).
///
/// # Errors
///
/// [`VfioError::InfoCaps`] for a malformed chain.
pub fn parse_region_info(
    index: u32,
    flags: u32,
    size: u64,
    offset: u64,
    cap_offset: u32,
    b: &[u8],
) -> Result<RegionInfo, VfioError> {
    const IOCTL: &str = "VFIO_DEVICE_GET_REGION_INFO";
    let mut info = RegionInfo {
        index,
        flags,
        size,
        offset,
        sparse: None,
        msix_mappable: false,
    };
    if flags & RegionInfo::FLAG_CAPS == 0 || b.is_empty() {
        return Ok(info);
    }
    walk_caps(IOCTL, b, REGION_INFO_LEN, cap_offset, |id, at| {
        match id {
            CAP_SPARSE_MMAP => {
                let nr = u32_at(b, at + 8).unwrap_or(0) as usize;
                let mut areas = Vec::new();
                for i in 0..nr {
                    let r = at + 16 + 16 * i;
                    let (Some(off), Some(len)) = (u64_at(b, r), u64_at(b, r + 8)) else {
                        return Err(VfioError::InfoCaps {
                            ioctl: IOCTL,
                            offset: at as u32,
                            why: "sparse mmap area list runs past the answer",
                        });
                    };
                    areas.push((off, len));
                }
                info.sparse = Some(areas);
            }
            CAP_MSIX_MAPPABLE => info.msix_mappable = true,
            _ => {}
        }
        Ok(())
    })?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        if b.len() < at + bytes.len() {
            b.resize(at + bytes.len(), 0);
        }
        b[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// An answer shaped like the one QEMU's intel-iommu with aw-bits=48 gives
    /// (docs/devices.md#qemu-intel-iommu): IOVA ranges [0, 0xFEDFFFFF] and
    /// [0xFEF00000, 2^48-1], pgsizes 4K|2M|1G, DMA_AVAIL 65535.
    fn aw48_answer() -> Vec<u8> {
        let mut b = vec![0u8; 24];
        put(&mut b, 0, &116u32.to_ne_bytes());
        put(&mut b, 4, &3u32.to_ne_bytes()); // PGSIZES | CAPS
        put(&mut b, 8, &0x4020_1000u64.to_ne_bytes());
        put(&mut b, 16, &24u32.to_ne_bytes());
        // IOVA_RANGE at 24, next -> 72
        put(&mut b, 24, &[1, 0, 1, 0]);
        put(&mut b, 28, &72u32.to_ne_bytes());
        put(&mut b, 32, &2u32.to_ne_bytes());
        put(&mut b, 40, &0u64.to_ne_bytes());
        put(&mut b, 48, &0xfedf_ffffu64.to_ne_bytes());
        put(&mut b, 56, &0xfef0_0000u64.to_ne_bytes());
        put(&mut b, 64, &0xffff_ffff_ffffu64.to_ne_bytes());
        // DMA_AVAIL at 72, end
        put(&mut b, 72, &[3, 0, 1, 0]);
        put(&mut b, 76, &0u32.to_ne_bytes());
        put(&mut b, 80, &65535u32.to_ne_bytes());
        put(&mut b, 84, &[0; 4]);
        b
    }

    #[test]
    fn iommu_info_ranges_pages_and_avail() {
        let info = parse_iommu_info(&aw48_answer()).unwrap();
        assert_eq!(info.min_page(), 4096);
        assert_eq!(
            info.ranges,
            [
                IovaRange {
                    start: 0,
                    end: 0xfedf_ffff
                },
                IovaRange {
                    start: 0xfef0_0000,
                    end: 0xffff_ffff_ffff
                }
            ]
        );
        assert_eq!(info.dma_avail, Some(65535));
        let va = 0x7f12_3440_0000u64;
        assert!(info.allows(va, 2 << 20), "IOVA = VA fits in 48 bits");
        assert!(
            !info.allows(0xfee0_0000, 4096),
            "the MSI window is reserved"
        );
        assert!(!info.allows(1 << 50, 4096));
        assert!(
            !info.allows(0xfedf_f000, 0x2000),
            "straddles the reserved window"
        );
        assert!(!info.allows(u64::MAX, 2), "no overflow");
    }

    #[test]
    fn iommu_info_without_caps() {
        let mut b = aw48_answer();
        b[4] = 1; // PGSIZES only
        let info = parse_iommu_info(&b).unwrap();
        assert!(info.ranges.is_empty() && info.dma_avail.is_none());
        assert!(
            info.allows(1 << 50, 4096),
            "no ranges reported: trust the kernel"
        );
        assert!(parse_iommu_info(&b[..20]).is_err());
    }

    #[test]
    fn malformed_chains_are_errors() {
        let mut b = aw48_answer();
        put(&mut b, 76, &24u32.to_ne_bytes()); // DMA_AVAIL -> IOVA_RANGE: loop
        let e = parse_iommu_info(&b).unwrap_err();
        assert!(e.to_string().contains("loops"), "{e}");
        let mut b = aw48_answer();
        put(&mut b, 28, &200u32.to_ne_bytes());
        assert!(parse_iommu_info(&b).is_err(), "next past the end");
        let mut b = aw48_answer();
        put(&mut b, 16, &8u32.to_ne_bytes());
        assert!(parse_iommu_info(&b).is_err(), "cap inside the fixed part");
        let mut b = aw48_answer();
        put(&mut b, 32, &100u32.to_ne_bytes());
        let e = parse_iommu_info(&b).unwrap_err();
        assert!(e.to_string().contains("runs past"), "{e}");
    }

    #[test]
    fn region_info_sparse_and_msix_mappable() {
        // NVMe BAR0, 16 KiB, MSI-X table inside: sparse areas around it, then MSIX_MAPPABLE.
        let mut b = vec![0u8; 32];
        put(&mut b, 32, &[1, 0, 1, 0]);
        put(&mut b, 36, &64u32.to_ne_bytes());
        put(&mut b, 40, &1u32.to_ne_bytes());
        put(&mut b, 48, &0u64.to_ne_bytes());
        put(&mut b, 56, &0x2000u64.to_ne_bytes());
        put(&mut b, 64, &[3, 0, 1, 0]);
        put(&mut b, 68, &0u32.to_ne_bytes());
        let r = parse_region_info(0, 0xf, 0x4000, 0, 32, &b).unwrap();
        assert_eq!(r.sparse.as_deref(), Some(&[(0, 0x2000)][..]));
        assert!(r.msix_mappable);
        assert!(r.whole_mappable());
        put(&mut b, 64, &[2, 0, 1, 0]); // a TYPE cap instead of MSIX_MAPPABLE
        let r = parse_region_info(0, 0xf, 0x4000, 0, 32, &b).unwrap();
        assert!(!r.whole_mappable(), "sparse without MSIX_MAPPABLE");
        let r = parse_region_info(5, 0x7, 0, 5 << 40, 0, &[]).unwrap();
        assert!(
            !r.whole_mappable(),
            "empty region (upper half of a 64-bit BAR)"
        );
        let r = parse_region_info(4, 0x7, 0x4000, 4 << 40, 0, &[]).unwrap();
        assert!(r.whole_mappable());
        let r = parse_region_info(7, 0x3, 256, 7 << 40, 0, &[]).unwrap();
        assert!(!r.whole_mappable(), "config space is not mappable");
    }
}
