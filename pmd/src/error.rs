//! The crate's error type: a thin enum with one variant per module that fails in its own way.
//!
//! Each module's error lives with its code ([`PciError`](crate::pci::PciError),
//! [`VfioError`](crate::vfio::VfioError), [`MmioError`](crate::mmio::MmioError),
//! [`AfXdpError`](crate::soft::af_xdp::AfXdpError), [`NvmeError`](crate::nvme::NvmeError),
//! [`BackendError`](crate::block::BackendError), [`VirtioError`](crate::virtio::VirtioError))
//! and nests here with `#[from]`, message and
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

    /// A virtio-net device or transport failed (see [`VirtioError`](crate::virtio::VirtioError)).
    #[error(transparent)]
    Virtio(#[from] crate::virtio::VirtioError),

    /// A vhost-user backend port could not open (see
    /// [`BackendError`](crate::virtio::backend::BackendError)).
    #[error(transparent)]
    VhostBackend(#[from] crate::virtio::backend::BackendError),
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
