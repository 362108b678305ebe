//! Sluice applications: the forwarder (`sluice-fwd`), the packet generator and sink
//! (`sluice-pktgen`), the block I/O tester (`sluice-blkperf`) and the device binder
//! (`sluice-devbind`). Each binary reads a validated [`sluice_config::Config`] or its own
//! command line and drives the drivers of `sluice-pmd` on the lcores of `sluice-dataplane`.
//!
//! The binaries are thin: [`fwd::run`] is the forwarder, [`ports`] opens pools and ports
//! from a config (the one place a driver is chosen), [`pktgen::run`] is the generator and
//! sink app, [`traffic`] is the generator and sink code both binaries use.
#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod error;
pub mod fwd;
pub mod pktgen;
pub mod ports;
pub mod telemetry;
pub mod traffic;

pub use error::AppError;
pub use sluice_config as config;

pub mod blkperf;
pub mod devbind;
