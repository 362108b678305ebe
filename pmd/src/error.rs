//! The crate's error type: a thin enum with one variant per module that fails in its own way.
//!
//! Each module's error lives with its code ([`PciError`](crate::pci::PciError),
//! [`VfioError`](crate::vfio::VfioError), [`MmioError`](crate::mmio::MmioError),
//! [`AfXdpError`](crate::soft::af_xdp::AfXdpError), [`NvmeError`](crate::nvme::NvmeError),
//! [`BackendError`](crate::block::BackendError)) and nests here with `#[from]`, message and
//! [`source`](std::error::Error::source) unchanged, so `?` lifts it and a caller matches
//! `Error::Vfio(VfioError::NoIommuGroup { .. })`. Their variants name the device or object
//! concerned, the step that failed, the values involved and, where the OS refused, the
//! `io::Error` as the source; messages end with what to do about it.

/// Everything that can go wrong in `sluice-pmd`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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

    /// Memory for buffers could not be had (no hugepages where the pool requires them, a
    /// bad pool shape, ...). The mempool error says which.
    #[error(transparent)]
    Mempool(#[from] sluice_mempool::Error),

    /// A PCI step failed (address, sysfs, config space, capabilities).
    #[error(transparent)]
    Pci(#[from] crate::pci::PciError),

    /// A VFIO step failed (container, group, device, DMA or BAR mapping).
    #[error(transparent)]
    Vfio(#[from] crate::vfio::VfioError),

    /// A register access could not be made.
    #[error(transparent)]
    Mmio(#[from] crate::mmio::MmioError),

    /// An AF_XDP port could not be opened (interface, permissions, UMEM, socket, program).
    #[error(transparent)]
    AfXdp(#[from] crate::soft::af_xdp::AfXdpError),

    /// The NVMe driver failed (bring-up, an admin command, queue set-up, shutdown).
    #[error(transparent)]
    Nvme(#[from] crate::nvme::NvmeError),

    /// A block backend's system call failed (opening the file, setting up io_uring, ...).
    #[error(transparent)]
    Block(#[from] crate::block::BackendError),

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

    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
