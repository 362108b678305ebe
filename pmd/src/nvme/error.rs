//! [`NvmeError`]: what goes wrong bringing up, driving and shutting down an NVMe controller.

use std::fmt;

use super::NvmeStatus;
use super::prp::PrpError;

/// An NVMe step that failed. Part of [`crate::Error`] as [`crate::Error::Nvme`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NvmeError {
    /// An NVMe controller register did not reach the expected state in time (CSTS.RDY after
    /// CC.EN, CSTS.SHST after CC.SHN).
    ///
    /// The controller is hung or gone (a value of 0xffffffff means it no longer answers):
    /// reset the function (`VFIO_DEVICE_RESET`) or rebind it to its kernel driver.
    #[error(
        "NVMe: {register} = {value:#010x} after {waited_ms} ms waiting for {waiting_for}; the controller is hung or gone: reset the device"
    )]
    Timeout {
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
    Fatal {
        /// The register read ("CSTS").
        register: &'static str,
        /// Its value.
        value: u32,
        /// The step that was in progress.
        during: &'static str,
    },

    /// An NVMe command completed with an error status.
    #[error("NVMe queue {qid}: command {opcode:#04x} (CID {cid}) failed: {status}")]
    Command {
        /// Queue id (0: admin).
        qid: u16,
        /// Command identifier.
        cid: u16,
        /// Opcode.
        opcode: u8,
        /// The decoded status.
        status: NvmeStatus,
    },

    /// An admin command got no completion in time.
    ///
    /// The controller stopped processing its admin queue: reset it.
    #[error("NVMe: admin command {opcode:#04x} (CID {cid}) not completed after {waited_ms} ms")]
    AdminTimeout {
        /// Opcode.
        opcode: u8,
        /// Command identifier.
        cid: u16,
        /// How long it was awaited.
        waited_ms: u64,
    },

    /// A queue was refused a command because it is full (during bring-up, where that means
    /// the admin queue is too small for the request).
    #[error("NVMe queue {qid} is full")]
    QueueFull {
        /// Queue id.
        qid: u16,
    },

    /// CAP reads all ones: the controller no longer answers (surprise removal, or a function
    /// in error). Rebind it or reset the function.
    #[error("NVMe: {register} reads all ones: the device is gone")]
    Gone {
        /// The register read ("CAP").
        register: &'static str,
    },

    /// The controller does not support the NVM command set (CAP.CSS bit 37 clear).
    #[error("NVMe: CAP {cap:#x}: no NVM command set")]
    NoNvmCommandSet {
        /// CAP as read.
        cap: u64,
    },

    /// The controller's smallest memory page (CAP.MPSMIN) is larger than the 4 KiB pages this
    /// driver uses.
    #[error("NVMe: CAP.MPSMIN is {min_bytes} bytes; only 4 KiB pages are supported")]
    PageSize {
        /// CAP.MPSMIN in bytes.
        min_bytes: u64,
    },

    /// CAP.MQES is 0: a controller must allow queues of at least 2 entries (MQES >= 1,
    /// NVMe 1.4 §3.1.1, "a value of 0h is invalid"). The controller or its emulation is
    /// broken: no I/O queue can be built on it.
    #[error("NVMe: CAP {cap:#x}: MQES is 0 (invalid: queues need at least 2 entries)")]
    NoQueueEntries {
        /// CAP as read.
        cap: u64,
    },

    /// The identify and shadow doorbell pages are not IOVA-contiguous (the memory's mapper
    /// split them): use a mapper that maps a region as one range.
    #[error("NVMe: scratch DMA pages not contiguous")]
    ScratchNotContiguous,

    /// A queue of this shape cannot be built (fewer than 2 entries, or pages that are not a
    /// power of two of at least 4 KiB).
    #[error("NVMe: queue {qid}: {entries} entries with {page_size}-byte pages")]
    QueueShape {
        /// Queue id.
        qid: u16,
        /// Entries asked for.
        entries: u16,
        /// Page size asked for.
        page_size: usize,
    },

    /// The memory given for a queue is too small or not IOVA-contiguous where the controller
    /// needs it to be (the SQ, the CQ).
    #[error("NVMe: queue {qid}: {needed} bytes of queue memory (contiguous) needed, {given} given")]
    QueueMemory {
        /// Queue id.
        qid: u16,
        /// Bytes the queue needs.
        needed: usize,
        /// Bytes given.
        given: usize,
    },

    /// An admin command's data buffer cannot be described by PRPs.
    #[error("NVMe: admin buffer: {0:?}")]
    AdminBuffer(PrpError),

    /// Identify Namespace selects an LBA format (FLBAS) beyond the formats it lists.
    #[error("NVMe: namespace {nsid}: FLBAS {flbas:#x} selects format {index} of {formats}")]
    LbaFormat {
        /// The namespace.
        nsid: u32,
        /// FLBAS as reported.
        flbas: u8,
        /// The format index it selects.
        index: usize,
        /// How many formats the namespace lists (NLBAF + 1).
        formats: usize,
    },

    /// The namespace's block size (LBADS) is outside 512 B..64 KiB.
    #[error("NVMe: namespace {nsid}: LBA data size 2^{lbads} outside 512 B..64 KiB")]
    BlockSize {
        /// The namespace.
        nsid: u32,
        /// LBADS: log2 of the block size.
        lbads: u8,
    },

    /// Queue memory (SQ/CQ entries, PRP lists, identify and shadow doorbell pages) could not
    /// be allocated or mapped for DMA.
    ///
    /// Reserve hugepages, raise `RLIMIT_MEMLOCK`, or check the IOMMU mapping error below.
    #[error("NVMe: cannot allocate {len} bytes of DMA memory for {what}")]
    Dma {
        /// What the memory was for.
        what: DmaUse,
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
    NoQueue {
        /// Queue pairs granted.
        granted: u16,
    },

    /// No active namespace with that ID.
    #[error("NVMe: no active namespace {nsid} (active: {active:?})")]
    NoNamespace {
        /// The ID asked for.
        nsid: u32,
        /// The active namespace IDs.
        active: Vec<u32>,
    },
}

/// What a piece of NVMe DMA memory is for (in [`NvmeError::Dma`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DmaUse {
    /// The admin queue pair's entries and PRP lists.
    AdminQueue,
    /// An I/O queue pair's entries and PRP lists, by queue id.
    IoQueue(u16),
    /// The identify page and the shadow doorbell pages.
    Scratch,
}

impl fmt::Display for DmaUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaUse::AdminQueue => f.write_str("the admin queue"),
            DmaUse::IoQueue(qid) => write!(f, "I/O queue {qid}"),
            DmaUse::Scratch => f.write_str("identify and shadow doorbell pages"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::io;

    #[test]
    fn nvme_errors_name_register_value_and_source() {
        let e = NvmeError::Fatal {
            register: "CSTS",
            value: 0x3,
            during: "identify",
        };
        assert_eq!(
            e.to_string(),
            "NVMe: controller fatal status during identify: CSTS = 0x00000003; reset the controller"
        );
        let e = NvmeError::Command {
            qid: 0,
            cid: 4,
            opcode: 0x05,
            status: NvmeStatus::decode(1 << 14 | 1 << 8 | 0x08).unwrap_err(),
        };
        assert_eq!(
            e.to_string(),
            "NVMe queue 0: command 0x05 (CID 4) failed: SCT 0x1 SC 0x08 (invalid interrupt \
             vector), do not retry"
        );
        // Through the crate's error, as callers see it: the message and the source carry over.
        let e = crate::Error::from(NvmeError::Dma {
            what: DmaUse::IoQueue(1),
            len: 4096,
            source: sluice_mempool::Error::Mmap {
                page: sluice_mempool::PageSize::Size4K,
                bytes: 4096,
                source: io::Error::from_raw_os_error(libc::ENOMEM),
            },
        });
        assert!(e.source().is_some());
        assert!(
            e.to_string()
                .starts_with("NVMe: cannot allocate 4096 bytes")
        );
        assert_eq!(
            e.to_string(),
            "NVMe: cannot allocate 4096 bytes of DMA memory for I/O queue 1"
        );
    }

    #[test]
    fn unsupported_controllers_say_which_value_is_refused() {
        assert_eq!(
            NvmeError::Gone { register: "CAP" }.to_string(),
            "NVMe: CAP reads all ones: the device is gone"
        );
        assert_eq!(
            NvmeError::PageSize { min_bytes: 8192 }.to_string(),
            "NVMe: CAP.MPSMIN is 8192 bytes; only 4 KiB pages are supported"
        );
        assert_eq!(
            NvmeError::QueueMemory {
                qid: 2,
                needed: 12288,
                given: 4096
            }
            .to_string(),
            "NVMe: queue 2: 12288 bytes of queue memory (contiguous) needed, 4096 given"
        );
        assert_eq!(
            NvmeError::AdminBuffer(PrpError::Misaligned).to_string(),
            "NVMe: admin buffer: Misaligned"
        );
    }
}
