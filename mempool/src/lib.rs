//! Sluice memory (work in progress).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod batch;
pub mod lcore;
#[allow(unsafe_code)]
pub mod ring;
#[allow(dead_code)]
mod sync;

pub use batch::{Batch, DEFAULT_BURST};
