//! [`VfioError`]: what goes wrong opening VFIO containers, groups and devices, mapping DMA
//! memory and BARs. Each variant names the device (its PCI address) or the VFIO object it
//! concerns, the step that failed (for system calls, the ioctl's name), the values involved,
//! and, where the OS refused, the `io::Error` as its [`source`](std::error::Error::source).
//! Messages end with what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::pci::PciAddr;
use crate::vfio::IovaRange;

/// A VFIO step that failed. Part of [`crate::Error`] as [`crate::Error::Vfio`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VfioError {
    /// The device belongs to no IOMMU group: the IOMMU is off (or absent) and no-IOMMU mode is
    /// not enabled.
    ///
    /// Turn the IOMMU on (boot with `intel_iommu=on` or `amd_iommu=on`; in QEMU add
    /// `-device intel-iommu` before the devices), or, on a machine without one, enable VFIO's
    /// unsafe no-IOMMU mode (a kernel with `CONFIG_VFIO_NOIOMMU`, then
    /// `modprobe vfio enable_unsafe_noiommu_mode=1`).
    #[error(
        "{addr} has no IOMMU group: the IOMMU is off; boot with intel_iommu=on (or \
         amd_iommu=on), or enable no-IOMMU mode with `modprobe vfio \
         enable_unsafe_noiommu_mode=1` (needs CONFIG_VFIO_NOIOMMU)"
    )]
    NoIommuGroup {
        /// The device.
        addr: PciAddr,
    },

    /// The device is bound to a driver other than `vfio-pci` (or to none).
    ///
    /// Bind it: `sluice-devbind bind ADDR`.
    #[error(
        "{addr} is {}, not vfio-pci; bind it with `sluice-devbind bind {addr}`",
        match driver { Some(d) => format!("bound to its kernel driver {d}"), None => "bound to no driver".to_string() }
    )]
    NotBoundToVfio {
        /// The device.
        addr: PciAddr,
        /// Its current driver, if any.
        driver: Option<String>,
    },

    /// A device of the same IOMMU group is bound to a host driver, so VFIO refuses the group.
    ///
    /// Bind every listed device to vfio-pci too (or unbind it), then retry.
    #[error(
        "IOMMU group {group} of {addr} is not viable: {}",
        not_viable_detail(others)
    )]
    GroupNotViable {
        /// The device that was asked for.
        addr: PciAddr,
        /// The group's name (`7`, `noiommu-0`).
        group: String,
        /// The other members that hold the group, with their drivers.
        others: Vec<(PciAddr, Option<String>)>,
    },

    /// A `/dev/vfio` node could not be opened.
    #[error("cannot open {path}: {}", open_hint(.source))]
    Open {
        /// The node.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A VFIO ioctl failed.
    #[error("{ioctl} on {target} failed: {}", ioctl_hint(ioctl, .source))]
    Ioctl {
        /// The device, group or container it was issued on.
        target: Target,
        /// The ioctl's name, as in `linux/vfio.h`.
        ioctl: &'static str,
        /// The OS error (errno).
        #[source]
        source: io::Error,
    },

    /// The device VFIO handed over is not a PCI function (`VFIO_DEVICE_FLAGS_PCI` clear).
    #[error(
        "VFIO_DEVICE_GET_INFO on {addr} failed: not a PCI device (VFIO_DEVICE_FLAGS_PCI clear)"
    )]
    NotPci {
        /// The device asked for.
        addr: PciAddr,
    },

    /// The kernel's VFIO API version is not the one this crate speaks.
    #[error("VFIO_GET_API_VERSION returned {found}, expected {expected}: unsupported kernel")]
    ApiVersion {
        /// What the kernel said.
        found: i32,
        /// `VFIO_API_VERSION`.
        expected: i32,
    },

    /// The container lacks the IOMMU type asked for.
    #[error(
        "the VFIO container does not support {what} (VFIO_CHECK_EXTENSION({ext}) = 0); {}",
        if *ext == 8 { "load vfio with enable_unsafe_noiommu_mode=1 (needs CONFIG_VFIO_NOIOMMU)" }
        else { "load vfio_iommu_type1 (`modprobe vfio_iommu_type1`) on a kernel with an IOMMU" }
    )]
    NoExtension {
        /// The extension number.
        ext: u32,
        /// Its name.
        what: &'static str,
    },

    /// A group of the wrong kind for the container: no-IOMMU and IOMMU-backed groups cannot
    /// share one.
    #[error(
        "{addr} is in group {group}, which cannot join a {mode} container; open a container of the matching mode"
    )]
    GroupMode {
        /// The device.
        addr: PciAddr,
        /// The group's name.
        group: String,
        /// The container's mode.
        mode: &'static str,
    },

    /// DMA was mapped before any group was attached: type1 needs one to pick an IOMMU.
    #[error("the VFIO container has no group yet: open a device with it before mapping DMA memory")]
    NoGroupYet,

    /// A DMA mapping would fall outside the IOMMU's usable IOVA ranges.
    ///
    /// With IOVA = VA that means the IOMMU's address width is too small for this process's
    /// addresses: in QEMU use `-device intel-iommu,aw-bits=48`.
    #[error(
        "DMA range {iova:#x}+{len:#x} is outside the IOMMU's IOVA ranges [{}]; with IOVA = VA \
         the IOMMU needs 48 address bits (QEMU: intel-iommu,aw-bits=48)",
        ranges.iter().map(|r| format!("{:#x}..={:#x}", r.start, r.end)).collect::<Vec<_>>().join(", ")
    )]
    IovaOutOfRange {
        /// First IOVA of the mapping.
        iova: u64,
        /// Its length.
        len: u64,
        /// The ranges the IOMMU reported.
        ranges: Vec<IovaRange>,
    },

    /// A DMA mapping is not aligned to the IOMMU's smallest page.
    #[error("DMA range {iova:#x}+{len:#x} is not aligned to the IOMMU page size {page:#x}")]
    DmaAlignment {
        /// First IOVA of the mapping.
        iova: u64,
        /// Its length.
        len: u64,
        /// The smallest IOMMU page size.
        page: u64,
    },

    /// `VFIO_IOMMU_UNMAP_DMA` unmapped less than the mapping: the rest stays pinned until the
    /// container closes.
    #[error(
        "VFIO_IOMMU_UNMAP_DMA on the VFIO container failed: unmapped {unmapped:#x} of {len:#x} \
         bytes at {iova:#x}"
    )]
    PartialUnmap {
        /// First IOVA of the mapping.
        iova: u64,
        /// Its length.
        len: u64,
        /// What the kernel reports it unmapped.
        unmapped: u64,
    },

    /// A BAR cannot be mapped whole; [`BarProblem`] says why and what to do.
    #[error("{addr}: region {bar} (BAR{bar}) {problem}")]
    Bar {
        /// The device.
        addr: PciAddr,
        /// The BAR asked for (its VFIO region index).
        bar: u8,
        /// What is wrong with it.
        problem: BarProblem,
    },

    /// The removal watch of a device could not be set up (its eventfd or thread).
    #[error("{addr}: cannot watch for removal requests: {what}")]
    Removal {
        /// The device.
        addr: PciAddr,
        /// What failed ("eventfd", "spawning the watcher thread").
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// `mmap` of a BAR failed.
    #[error("{addr}: mmap of BAR{bar} ({len:#x} bytes) failed")]
    Mmap {
        /// The device.
        addr: PciAddr,
        /// The BAR.
        bar: u8,
        /// Its length.
        len: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A VFIO info answer (`VFIO_IOMMU_GET_INFO`, `VFIO_DEVICE_GET_REGION_INFO`) has a
    /// malformed capability chain.
    #[error("{ioctl} returned a malformed capability chain at byte {offset}: {why}")]
    InfoCaps {
        /// The ioctl that returned it.
        ioctl: &'static str,
        /// Offset of the bad capability header in the answer.
        offset: u32,
        /// What is wrong.
        why: &'static str,
    },

    /// The device offers no reset method (VFIO_DEVICE_FLAGS_RESET clear).
    ///
    /// Reset it through its own registers (virtio `device_status` = 0, NVMe `CC.EN` = 0).
    #[error("{addr} offers no function reset through VFIO; reset it through its own registers")]
    NoReset {
        /// The device.
        addr: PciAddr,
    },
}

/// Why a BAR cannot be mapped whole.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarProblem {
    /// The index is above 5: not a BAR.
    NotABar,
    /// The device has no such region.
    Missing,
    /// The BAR is unimplemented, or the upper half of a 64-bit BAR.
    Empty,
    /// Only parts of it can be mapped (`VFIO_REGION_INFO_CAP_SPARSE_MMAP`): the MSI-X table is
    /// inside and the kernel does not let it be mapped without interrupt remapping.
    Sparse {
        /// The mappable areas, as (offset, length) pairs.
        areas: Vec<(u64, u64)>,
    },
    /// VFIO does not offer it for `mmap` (`VFIO_REGION_INFO_FLAG_MMAP` clear: an I/O BAR).
    NotMappable,
    /// Its size does not fit this process's address space.
    TooLarge,
}

impl fmt::Display for BarProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarProblem::NotABar => f.write_str("is not a BAR (BARs are 0-5)"),
            BarProblem::Missing => f.write_str("does not exist"),
            BarProblem::Empty => {
                f.write_str("is empty (unimplemented, or the upper half of a 64-bit BAR)")
            }
            BarProblem::Sparse { areas } => write!(
                f,
                "can be mapped only in parts {areas:x?} (MSI-X table inside; enable interrupt \
                 remapping, e.g. QEMU intel-iommu,intremap=on)"
            ),
            BarProblem::NotMappable => {
                f.write_str("cannot be mapped (VFIO_REGION_INFO_FLAG_MMAP clear: an I/O BAR?)")
            }
            BarProblem::TooLarge => f.write_str("is larger than the address space"),
        }
    }
}

/// What a VFIO ioctl was issued on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The container (`/dev/vfio/vfio`).
    Container,
    /// A group, by its `/dev/vfio` node name.
    Group(String),
    /// A device.
    Device(PciAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Container => f.write_str("the VFIO container"),
            Target::Group(g) => write!(f, "VFIO group {g}"),
            Target::Device(a) => write!(f, "{a}"),
        }
    }
}

/// The other members of a non-viable group and how to free them.
fn not_viable_detail(others: &[(PciAddr, Option<String>)]) -> String {
    if others.is_empty() {
        return "another member is bound to a host driver; list the group's devices under \
                /sys/kernel/iommu_groups/N/devices and bind them to vfio-pci too"
            .into();
    }
    let held = others
        .iter()
        .map(|(a, d)| format!("{a} is bound to {}", d.as_deref().unwrap_or("no driver")))
        .collect::<Vec<_>>()
        .join(", ");
    let addrs = others
        .iter()
        .map(|(a, _)| format!(" {a}"))
        .collect::<String>();
    format!("{held}; bind them to vfio-pci too (`sluice-devbind bind{addrs}`) or unbind them")
}

/// What to do about a failed open of a `/dev/vfio` node.
fn open_hint(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such node: load vfio-pci (`modprobe vfio-pci`) and bind the \
                               device to it (`sluice-devbind bind ADDR`)"
            .into(),
        Some(libc::EACCES) => "permission denied: /dev/vfio nodes are root-only by default; run \
                               as root or chown the node to this user"
            .into(),
        Some(libc::EBUSY) => "busy: another process (or another container) holds this group".into(),
        Some(libc::EPERM) => "not permitted: no-IOMMU groups need CAP_SYS_RAWIO".into(),
        _ => e.to_string(),
    }
}

/// What an ioctl's errno usually means there (docs/devices.md#vfio, "What errors usually
/// mean").
fn ioctl_hint(ioctl: &str, e: &io::Error) -> String {
    let hint = match (ioctl, e.raw_os_error()) {
        ("VFIO_IOMMU_MAP_DMA", Some(libc::ENOMEM)) => {
            "cannot pin the pages: RLIMIT_MEMLOCK is too low (raise it with `ulimit -l` or \
             /etc/security/limits.conf, or run with CAP_IPC_LOCK)"
        }
        ("VFIO_IOMMU_MAP_DMA", Some(libc::EEXIST)) => "the range overlaps an existing mapping",
        ("VFIO_IOMMU_MAP_DMA", Some(libc::ENOSPC)) => {
            "too many mappings (vfio_iommu_type1 dma_entry_limit, 65535 by default)"
        }
        ("VFIO_IOMMU_UNMAP_DMA", Some(libc::EINVAL)) => {
            "type1v2 unmaps only exactly what was mapped"
        }
        ("VFIO_GROUP_SET_CONTAINER", Some(libc::EPERM)) => {
            "the group is not viable (a member is on a host driver) or the container mixes \
             no-IOMMU and IOMMU groups"
        }
        ("VFIO_GROUP_SET_CONTAINER", Some(libc::EBUSY)) => "the group is already in a container",
        ("VFIO_GROUP_GET_DEVICE_FD", Some(libc::ENODEV)) => {
            "no such device in the group (is it bound to vfio-pci?)"
        }
        ("VFIO_GROUP_GET_DEVICE_FD", Some(libc::EBUSY)) => "the device is already open",
        ("VFIO_DEVICE_RESET", Some(libc::EINVAL)) => "the device has no reset method",
        (_, Some(libc::ENOTTY)) => "not supported by this container's IOMMU driver",
        _ => "",
    };
    if hint.is_empty() {
        e.to_string()
    } else {
        format!("{e}: {hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn addr(s: &str) -> PciAddr {
        s.parse().unwrap()
    }

    #[test]
    fn not_viable_names_the_others_and_the_fix() {
        let e = VfioError::GroupNotViable {
            addr: addr("0000:00:1f.2"),
            group: "6".into(),
            others: vec![
                (addr("0000:00:1f.0"), Some("lpc_ich".into())),
                (addr("0000:00:1f.3"), Some("i801_smbus".into())),
            ],
        };
        assert_eq!(
            e.to_string(),
            "IOMMU group 6 of 0000:00:1f.2 is not viable: 0000:00:1f.0 is bound to lpc_ich, \
             0000:00:1f.3 is bound to i801_smbus; bind them to vfio-pci too (`sluice-devbind \
             bind 0000:00:1f.0 0000:00:1f.3`) or unbind them"
        );
    }

    #[test]
    fn map_dma_enomem_says_memlock() {
        let e = VfioError::Ioctl {
            target: Target::Container,
            ioctl: "VFIO_IOMMU_MAP_DMA",
            source: io::Error::from_raw_os_error(libc::ENOMEM),
        };
        let s = e.to_string();
        assert!(
            s.starts_with("VFIO_IOMMU_MAP_DMA on the VFIO container failed: "),
            "{s}"
        );
        assert!(s.contains("RLIMIT_MEMLOCK"), "{s}");
        assert_eq!(
            e.source()
                .and_then(|s| s.downcast_ref::<io::Error>())
                .and_then(|e| e.raw_os_error()),
            Some(libc::ENOMEM)
        );
    }

    #[test]
    fn messages_name_device_and_fix() {
        let e = VfioError::NoIommuGroup {
            addr: addr("00:04.0"),
        };
        assert!(e.to_string().contains("intel_iommu=on"));
        assert!(e.to_string().contains("no-IOMMU"));
        let e = VfioError::NotBoundToVfio {
            addr: addr("00:03.0"),
            driver: Some("nvme".into()),
        };
        assert_eq!(
            e.to_string(),
            "0000:00:03.0 is bound to its kernel driver nvme, not vfio-pci; bind it with \
             `sluice-devbind bind 0000:00:03.0`"
        );
        let e = VfioError::Open {
            path: "/dev/vfio/7".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(
            e.to_string()
                .starts_with("cannot open /dev/vfio/7: permission denied")
        );
        let e = VfioError::Ioctl {
            target: Target::Device(addr("00:04.0")),
            ioctl: "VFIO_DEVICE_RESET",
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert!(
            e.to_string()
                .starts_with("VFIO_DEVICE_RESET on 0000:00:04.0 failed: ")
        );
    }

    #[test]
    fn bar_problems_say_what_is_wrong() {
        let e = VfioError::Bar {
            addr: addr("00:04.0"),
            bar: 0,
            problem: BarProblem::Sparse {
                areas: vec![(0, 0x2000)],
            },
        };
        assert_eq!(
            e.to_string(),
            "0000:00:04.0: region 0 (BAR0) can be mapped only in parts [(0, 2000)] (MSI-X table \
             inside; enable interrupt remapping, e.g. QEMU intel-iommu,intremap=on)"
        );
        let e = VfioError::Bar {
            addr: addr("00:04.0"),
            bar: 7,
            problem: BarProblem::NotABar,
        };
        assert_eq!(
            e.to_string(),
            "0000:00:04.0: region 7 (BAR7) is not a BAR (BARs are 0-5)"
        );
    }
}
