//! Sluice applications: the forwarder (`sluice-fwd`), the packet generator and sink
//! (`sluice-pktgen`), the block I/O tester (`sluice-blkperf`) and the device binder
//! (`sluice-devbind`). Each binary reads a validated [`sluice_config::Config`] or its own
//! command line and drives the drivers of `sluice-pmd` on the lcores of `sluice-dataplane`.
#![forbid(unsafe_code)]

pub use sluice_config as config;

pub mod blkperf;
pub mod devbind;
