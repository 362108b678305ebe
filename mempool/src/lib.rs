//! Sluice memory (work in progress).
#![deny(unsafe_code)]

pub mod addr;
#[allow(unsafe_code)]
pub mod batch;
pub mod dma;
pub mod error;
pub mod iova;
pub mod lcore;
pub mod mem;
pub mod pktbuf;
pub mod pool;
#[allow(unsafe_code)]
pub mod ring;
mod sync;

pub use addr::{Iova, PhysAddr};
pub use batch::{Batch, DEFAULT_BURST};
pub use dma::DmaRegion;
pub use error::Error;
pub use iova::{IdentityMapper, IovaMap, IovaMapper, PagemapMapper};
pub use mem::{HugeMem, HugePagePolicy, PageSize};
pub use pktbuf::{OffloadFlags, PktBuf, PktMeta, PktPool, PktPoolConfig};
pub use pool::{DmaObj, Mempool, PoolConfig};
