//! Sluice configuration (work in progress).
#![forbid(unsafe_code)]
