//! The NVMe poll-mode driver: controller bring-up and shutdown over a register block, admin
//! and I/O queue pairs polled by phase tag, PRPs from mempool buffers, shadow doorbells.
//!
//! # Layout
//! - [`regs`]: BAR0 offsets and fields. The driver reaches them through
//!   [`Registers`](crate::regs::Registers) ([`MmioRegion`](crate::MmioRegion) for a device
//!   behind VFIO, the software model in tests).
//! - [`cmd`]: [`Sqe`]/[`Cqe`] layouts and command builders; [`status`]: decoded statuses.
//! - [`entries`]: the submission and completion entries in [`SharedMemory`](crate::SharedMemory),
//!   the only access path to memory shared with the device.
//! - [`prp`]: PRP entries and lists; [`queue`]: [`QueuePair`], the submission/completion
//!   protocol; [`io`]: [`IoQpair`], the block queue over it.
//! - [`ctrl`]: [`Controller`], bring-up, queue creation, shutdown; [`identify`]: parsed
//!   Identify data.
//! - `model` (feature `test-utils`): a software NVMe controller for tests.
//!
//! # Model
//! A queue pair is owned by one lcore; the controller keeps only the admin queue and the
//! shared registers. Every value the device writes back (CID, SQ head, phase) is checked
//! before use; a bad one is counted, never followed. Every wait on the device is bounded,
//! and a timeout names the register and the value last read.

pub mod cmd;
pub mod ctrl;
pub mod entries;
mod error;
pub mod identify;
pub mod io;
#[cfg(any(test, feature = "test-utils"))]
pub mod model;
#[cfg(target_os = "linux")]
pub mod pci;
pub mod prp;
pub mod queue;
pub mod regs;
pub mod status;

#[cfg(test)]
mod tests;

pub use cmd::{Cqe, Sqe};
pub use ctrl::{Controller, ControllerConfig};
pub use error::{DmaUse, NvmeError};
pub use identify::{ControllerInfo, NamespaceInfo};
pub use io::IoQpair;
#[cfg(target_os = "linux")]
pub use pci::VfioNvme;
pub use queue::{Completion, DataRange, IoQueueStats, QueueFault, QueuePair, SubmitError};
pub use status::{NvmeStatus, StatusCodeType};
