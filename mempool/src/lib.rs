//! Sluice memory (work in progress): hugepage memory for DMA.
#![deny(unsafe_code)]

pub mod addr;
pub mod error;
pub mod mem;

// Unused until the ring and the pool import from it.
#[allow(unused_imports)]
#[allow(dead_code)]
mod sync;

pub use addr::{Iova, PhysAddr};
pub use error::Error;
pub use mem::{HugeMem, HugePagePolicy, PageSize};
