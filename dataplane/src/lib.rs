//! Sluice dataplane runtime (work in progress).
#![deny(unsafe_code)]
