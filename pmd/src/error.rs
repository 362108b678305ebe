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

    /// A virtio-net device or transport failed (see [`VirtioError`](crate::virtio::VirtioError)).
    #[error(transparent)]
    Virtio(#[from] crate::virtio::VirtioError),
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
