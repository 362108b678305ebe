//! The NVMe poll-mode driver: register and entry layouts, statuses, PRPs, queue memory
//! access and identify data.

pub mod cmd;
#[allow(unsafe_code)]
pub mod dma;
pub mod identify;
pub mod prp;
pub mod regs;
pub mod status;

pub use cmd::{Cqe, Sqe};
pub use dma::QueueMemory;
pub use identify::{ControllerInfo, NamespaceInfo};
pub use regs::RegisterAccess;
pub use status::{NvmeStatus, StatusCodeType};
