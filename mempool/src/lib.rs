//! Sluice memory (work in progress).
#![deny(unsafe_code)]

#[allow(dead_code)]
mod sync;
