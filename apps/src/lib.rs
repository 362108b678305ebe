//! Sluice applications (work in progress).
#![forbid(unsafe_code)]
