//! Sluice memory (work in progress).
#![deny(unsafe_code)]

pub mod addr;

// Unused until the ring and the pool import from it.
#[allow(unused_imports)]
#[allow(dead_code)]
mod sync;

pub use addr::{Iova, PhysAddr};
