//! The crate's error type.
//!
//! One enum for the device layer. Each variant names the device (its PCI address) or the
//! VFIO object it concerns, the step that failed (for system calls, the ioctl's name), the
//! values involved, and, where the OS refused, the `io::Error` as its
//! [`source`](std::error::Error::source). Messages end with what to do about it.

/// Everything that can go wrong in `sluice-pmd`'s device layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PCI step failed (address, sysfs, config space, capabilities).
    #[error(transparent)]
    Pci(#[from] crate::pci::PciError),

    /// A VFIO step failed (container, group, device, DMA or BAR mapping).
    #[error(transparent)]
    Vfio(#[from] crate::vfio::VfioError),

    /// An AF_XDP port could not be opened (interface, permissions, UMEM, socket, program).
    #[error(transparent)]
    AfXdp(#[from] crate::soft::af_xdp::AfXdpError),

    /// A block backend's system call failed (opening the file, setting up io_uring, ...).
    #[error(transparent)]
    Block(#[from] crate::block::BackendError),

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

    /// A register access could not be made.
    #[error(transparent)]
    Mmio(#[from] crate::mmio::MmioError),

    /// An MMIO access outside the mapped region or not naturally aligned, as the virtio
    /// transport reports it until it uses [`MmioError`](crate::mmio::MmioError).
    #[error("MMIO {width}-byte access at {offset:#x} outside a {len:#x}-byte region or unaligned")]
    MmioBounds {
        /// Offset asked for.
        offset: usize,
        /// Width in bytes.
        width: usize,
        /// Region length.
        len: usize,
    },

    /// Memory for buffers could not be had (no hugepages where the pool requires them, a
    /// bad pool shape, ...). The mempool error says which.
    #[error(transparent)]
    Mempool(#[from] sluice_mempool::Error),

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

    /// A queue was refused a command because it is full (during bring-up, where that means
    /// the admin queue is too small for the request).
    #[error("NVMe queue {qid} is full")]
    NvmeQueueFull {
        /// Queue id.
        qid: u16,
    },

    /// A virtio device register did not reach the expected value in time (device_status
    /// after a reset, a config generation that never settles).
    ///
    /// The device is hung or gone (0xff reads mean it no longer answers): rebind it to
    /// virtio-pci and back, or restart the VM.
    #[error(
        "virtio {device}: {register} = {value:#x} after {waited_ms} ms; the device is hung or gone"
    )]
    VirtioTimeout {
        /// The device (PCI address, or the model's name).
        device: String,
        /// The register polled and what was awaited ("device_status, waiting for 0").
        register: &'static str,
        /// The value last read.
        value: u32,
        /// How long it was polled, in milliseconds.
        waited_ms: u64,
    },

    /// The device does not offer a feature the driver requires (VERSION_1: it is not a
    /// modern device; use `disable-legacy=on` or a 1.x device).
    #[error(
        "virtio {device}: required feature(s) {missing} not offered (device offers {offered:#018x})"
    )]
    VirtioFeatureMissing {
        /// The device.
        device: String,
        /// The missing features by name.
        missing: String,
        /// What the device offered.
        offered: u64,
    },

    /// The device cleared FEATURES_OK: it refuses the accepted feature set (QEMU behind an
    /// IOMMU refuses any set without ACCESS_PLATFORM).
    #[error(
        "virtio {device}: the device refused features {features} (status {status:#04x} after FEATURES_OK)"
    )]
    VirtioFeaturesRefused {
        /// The device.
        device: String,
        /// The features that were accepted, by name.
        features: String,
        /// The status read back.
        status: u8,
    },

    /// A virtio PCI capability the driver needs is missing or unusable.
    #[error("virtio {device}: no usable {cap} configuration capability")]
    VirtioNoCap {
        /// The device.
        device: String,
        /// Which block ("common", "notify", "device").
        cap: &'static str,
    },

    /// A virtqueue cannot be set up as asked.
    #[error("virtio {device}: queue {queue}: {why}")]
    VirtioQueue {
        /// The device.
        device: String,
        /// The queue index (or the number of queue pairs asked for).
        queue: u16,
        /// What is wrong.
        why: String,
    },

    /// Ring or command memory could not be allocated or mapped for DMA.
    ///
    /// Reserve hugepages, raise `RLIMIT_MEMLOCK`, or check the mapping error below.
    #[error("virtio: cannot allocate or map {len} bytes of DMA memory for {what}")]
    VirtioDma {
        /// The device and what the memory was for ("0000:00:02.0 queue 1").
        what: String,
        /// Bytes.
        len: usize,
        /// The memory layer's error (boxed: it keeps this enum small).
        #[source]
        source: Box<sluice_mempool::Error>,
    },

    /// A control-queue command failed (refused, unanswered, or the queue is broken).
    #[error("virtio {device}: control command class {class} command {cmd}: {why}")]
    VirtioCtrl {
        /// The device.
        device: String,
        /// Command class (0 RX, 4 MQ).
        class: u8,
        /// Command.
        cmd: u8,
        /// What happened.
        why: String,
    },

    /// A packet pool cannot feed this device.
    #[error("virtio {device}: a packet pool cannot be used: {why}")]
    VirtioPool {
        /// The device.
        device: String,
        /// Why (naming the pool).
        why: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::io;

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
