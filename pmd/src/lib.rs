//! Sluice poll-mode drivers: the device layer (PCI, VFIO, MMIO), the drivers (virtio-net,
//! NVMe, and software ports that need no device), and the net-port and block-queue APIs
//! that applications and embedding services program against.
//!
//! Buffers come from `sluice-mempool`: [`PktBuf`]s from a [`PktPool`] for packets, moved
//! through queues in [`Batch`]es of [`DEFAULT_BURST`]. Together with that crate this is the
//! embeddable unit: nothing here starts threads, reads global configuration or installs
//! signal handlers.
#![deny(unsafe_code)]

pub mod error;
pub mod net;
pub mod soft;

pub use error::Error;
pub use sluice_mempool as mempool;
pub use sluice_mempool::{
    Batch, DEFAULT_BURST, IdentityMapper, Iova, PktBuf, PktMeta, PktPool, PktPoolConfig,
};
