//! The crate's error type.
//!
//! One enum for the device layer. Each variant names the device (its PCI address) or the
//! VFIO object it concerns, the step that failed (for system calls, the ioctl's name), the
//! values involved, and, where the OS refused, the `io::Error` as its
//! [`source`](std::error::Error::source). Messages end with what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::pci::PciAddr;

/// Everything that can go wrong in `sluice-pmd`'s device layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PCI step failed (address, sysfs, config space, capabilities).
    #[error(transparent)]
    Pci(#[from] crate::pci::PciError),

    /// A port was asked for with a shape it cannot have (zero queues, a ring size that is
    /// not a power of two, ...). Fix the configuration value named.
    #[error("port {port}: invalid {what}: {value}")]
    InvalidConfig {
        /// The port's name.
        port: String,
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
    },

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
        ranges: Vec<crate::vfio::IovaRange>,
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

    /// A region (BAR, config space) is missing, empty, or cannot be used as asked.
    #[error("{addr}: region {index} ({name}) {why}")]
    Region {
        /// The device.
        addr: PciAddr,
        /// The VFIO region index (BAR n = n, ROM = 6, config = 7).
        index: u32,
        /// Its name ("BAR4", "config").
        name: String,
        /// What is wrong with it.
        why: String,
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

    /// A register access could not be made.
    #[error(transparent)]
    Mmio(#[from] crate::mmio::MmioError),

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

    /// Memory for buffers could not be had (no hugepages where the pool requires them, a
    /// bad pool shape, ...). The mempool error says which.
    #[error(transparent)]
    Mempool(#[from] sluice_mempool::Error),

    /// The named network interface does not exist (in this network namespace).
    #[error("no network interface '{interface}': check `ip link show` (and the network namespace)")]
    NoSuchInterface {
        /// The interface name.
        interface: String,
        /// The errno of `if_nametoindex`.
        #[source]
        source: io::Error,
    },

    /// The port asks for more queues than the interface has. Lower `queues`, or give the
    /// interface more (`ethtool -L IF combined N`; veth: `numrxqueues`/`numtxqueues`).
    #[error(
        "{interface}: queue {queue} is out of range: the interface has {available} queue(s) (raise them with `ethtool -L {interface} combined N`, or create a veth with `numrxqueues N numtxqueues N`)"
    )]
    QueueOutOfRange {
        /// The interface.
        interface: String,
        /// The highest queue id asked for.
        queue: u32,
        /// Queues the interface has.
        available: u32,
    },

    /// A privileged step was refused. Run as root or grant the capabilities named.
    #[error("{interface}: permission denied to {step}: run as root or grant {needs}")]
    AfXdpPermission {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// The capabilities it needs.
        needs: &'static str,
        /// EPERM or EACCES.
        #[source]
        source: io::Error,
    },

    /// The kernel would not pin the UMEM: it counts against `RLIMIT_MEMLOCK`.
    #[error(
        "{interface}: cannot pin the {bytes}-byte UMEM: raise RLIMIT_MEMLOCK (`ulimit -l unlimited`, or LimitMEMLOCK=infinity in a systemd unit) or grant CAP_IPC_LOCK"
    )]
    AfXdpMemlock {
        /// The interface.
        interface: String,
        /// The UMEM's size.
        bytes: usize,
        /// ENOBUFS (or ENOMEM/EPERM).
        #[source]
        source: io::Error,
    },

    /// Zero-copy was required and the interface's driver cannot do it (veth never can).
    #[error(
        "{interface} queue {queue}: the driver does not support AF_XDP zero-copy: use mode \"copy\" or \"auto\""
    )]
    AfXdpZeroCopyUnsupported {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// EOPNOTSUPP.
        #[source]
        source: io::Error,
    },

    /// Another AF_XDP socket is bound to the queue (another process, or a port opened
    /// twice).
    #[error(
        "{interface} queue {queue} is busy: another AF_XDP socket is bound to it (stop the process that holds it)"
    )]
    AfXdpQueueBusy {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// EBUSY.
        #[source]
        source: io::Error,
    },

    /// Another step of AF_XDP socket setup failed; the OS error says why.
    #[error("{interface} queue {queue}: cannot {step}")]
    AfXdpSetup {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// What was being done.
        step: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// The XDP program could not be created, loaded or attached.
    #[error("{interface}: cannot {step}{detail}")]
    XdpProgram {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// A hint or the verifier's log, starting with a space, or empty.
        detail: String,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// `/sys/class/net` belongs to another network namespace than the one the interface
    /// was found in (a thread that entered a namespace with `setns` without remounting
    /// sysfs).
    #[error(
        "{interface}: /sys/class/net shows another network namespace (interface index \
         {ifindex}, sysfs says {sysfs_ifindex:?}): run inside the namespace with `ip netns \
         exec`, or remount /sys there"
    )]
    SysfsOtherNamespace {
        /// The interface.
        interface: String,
        /// Its index in this network namespace.
        ifindex: u32,
        /// The index sysfs shows for that name, if any.
        sysfs_ifindex: Option<u32>,
    },

    /// An NVMe controller register did not reach the expected state in time (CSTS.RDY after
    /// CC.EN, CSTS.SHST after CC.SHN).
    ///
    /// The controller is hung or gone (a value of 0xffffffff means it no longer answers):
    /// reset the function (`VFIO_DEVICE_RESET`) or rebind it to its kernel driver.
    #[error(
        "NVMe: {register} = {value:#010x} after {waited_ms} ms waiting for {waiting_for}; the controller is hung or gone: reset the device"
    )]
    NvmeTimeout {
        /// The register polled ("CSTS").
        register: &'static str,
        /// The value last read.
        value: u32,
        /// What was awaited ("RDY = 1").
        waiting_for: &'static str,
        /// How long it was polled, in milliseconds.
        waited_ms: u64,
    },

    /// The NVMe controller reports Controller Fatal Status (CSTS.CFS = 1).
    ///
    /// It failed an internal check or a DMA access (QEMU sets CFS when an SQE or CQE address is
    /// not mapped). Reset the controller; check that queue memory is mapped for DMA.
    #[error(
        "NVMe: controller fatal status during {during}: {register} = {value:#010x}; reset the controller"
    )]
    NvmeFatal {
        /// The register read ("CSTS").
        register: &'static str,
        /// Its value.
        value: u32,
        /// The step that was in progress.
        during: &'static str,
    },

    /// An NVMe command completed with an error status.
    #[error("NVMe queue {qid}: command {opcode:#04x} (CID {cid}) failed: {status}")]
    NvmeCommand {
        /// Queue id (0: admin).
        qid: u16,
        /// Command identifier.
        cid: u16,
        /// Opcode.
        opcode: u8,
        /// The decoded status.
        status: crate::nvme::NvmeStatus,
    },

    /// An admin command got no completion in time.
    ///
    /// The controller stopped processing its admin queue: reset it.
    #[error("NVMe: admin command {opcode:#04x} (CID {cid}) not completed after {waited_ms} ms")]
    NvmeAdminTimeout {
        /// Opcode.
        opcode: u8,
        /// Command identifier.
        cid: u16,
        /// How long it was awaited.
        waited_ms: u64,
    },

    /// The controller cannot be driven as asked, or returned data this driver rejects.
    #[error("NVMe: {0}")]
    NvmeUnsupported(String),

    /// Queue memory (SQ/CQ entries, PRP lists, identify and shadow doorbell pages) could not
    /// be allocated or mapped for DMA.
    ///
    /// Reserve hugepages, raise `RLIMIT_MEMLOCK`, or check the IOMMU mapping error below.
    #[error("NVMe: cannot allocate {len} bytes of DMA memory for {what}")]
    NvmeDma {
        /// What the memory was for ("I/O queue 1", "admin queue").
        what: String,
        /// Bytes asked for.
        len: usize,
        /// The memory layer's error.
        #[source]
        source: sluice_mempool::Error,
    },

    /// Every I/O queue pair the controller granted (Set Features, Number of Queues) is in use.
    ///
    /// Delete one, or ask for more with `ControllerConfig::io_qpairs`.
    #[error("NVMe: all {granted} granted I/O queue pairs are in use")]
    NvmeNoQueue {
        /// Queue pairs granted.
        granted: u16,
    },

    /// No active namespace with that ID.
    #[error("NVMe: no active namespace {nsid} (active: {active:?})")]
    NvmeNoNamespace {
        /// The ID asked for.
        nsid: u32,
        /// The active namespace IDs.
        active: Vec<u32>,
    },

    /// A block backend's system call failed (opening the file, setting up io_uring, ...).
    #[error("{op} {path} failed")]
    BlockIo {
        /// What was being done ("opening", "io_uring_setup for").
        op: &'static str,
        /// The file or device.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A queue was refused a command because it is full (during bring-up, where that means
    /// the admin queue is too small for the request).
    #[error("NVMe queue {qid} is full")]
    NvmeQueueFull {
        /// Queue id.
        qid: u16,
    },

    /// A virtio-net device or transport failed (see [`VirtioError`](crate::virtio::VirtioError)).
    #[error(transparent)]
    Virtio(#[from] crate::virtio::VirtioError),
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

/// What an ioctl's errno usually means there (REFERENCE C5).
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
        let e = Error::GroupNotViable {
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
        let e = Error::Ioctl {
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
        let e = Error::NoIommuGroup {
            addr: addr("00:04.0"),
        };
        assert!(e.to_string().contains("intel_iommu=on"));
        assert!(e.to_string().contains("no-IOMMU"));
        let e = Error::NotBoundToVfio {
            addr: addr("00:03.0"),
            driver: Some("nvme".into()),
        };
        assert_eq!(
            e.to_string(),
            "0000:00:03.0 is bound to its kernel driver nvme, not vfio-pci; bind it with \
             `sluice-devbind bind 0000:00:03.0`"
        );
        let e = Error::Open {
            path: "/dev/vfio/7".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(
            e.to_string()
                .starts_with("cannot open /dev/vfio/7: permission denied")
        );
        let e = Error::Ioctl {
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
    fn nvme_errors_name_register_value_and_source() {
        let e = Error::NvmeFatal {
            register: "CSTS",
            value: 0x3,
            during: "identify",
        };
        assert_eq!(
            e.to_string(),
            "NVMe: controller fatal status during identify: CSTS = 0x00000003; reset the controller"
        );
        let e = Error::NvmeCommand {
            qid: 0,
            cid: 4,
            opcode: 0x05,
            status: crate::nvme::NvmeStatus::decode(1 << 14 | 1 << 8 | 0x08).unwrap_err(),
        };
        assert_eq!(
            e.to_string(),
            "NVMe queue 0: command 0x05 (CID 4) failed: SCT 0x1 SC 0x08 (invalid interrupt \
             vector), do not retry"
        );
        let e = Error::NvmeDma {
            what: "I/O queue 1".into(),
            len: 4096,
            source: sluice_mempool::Error::Mmap {
                page: sluice_mempool::PageSize::Size4K,
                bytes: 4096,
                source: io::Error::from_raw_os_error(libc::ENOMEM),
            },
        };
        assert!(e.source().is_some());
        assert!(
            e.to_string()
                .starts_with("NVMe: cannot allocate 4096 bytes")
        );
    }

    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
