//! Sluice poll-mode drivers (work in progress).
#![deny(unsafe_code)]
