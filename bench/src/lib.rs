//! Sluice benchmarks (work in progress).
#![forbid(unsafe_code)]
