//! Packet capture to pcapng files (`sluice-fwd --capture`), switchable at run time.
//!
//! ```text
//! lcore:   rx_burst/tx_burst -> TapRx/TapTx -> copy (up to snaplen) into a stage buffer,
//!                                            one push per burst into the side ring
//! writer:  side rings of one file -> Enhanced Packet Blocks -> buffered file
//! ```
//!
//! - A **tap point** is one queue in one direction (`fwd0/q0:rx`), as polled by a forwarding
//!   lcore. The queue handed to the lcore is wrapped ([`TapRx`], [`TapTx`]); when no capture
//!   is on, the wrapper costs one check of an empty command ring per burst.
//! - A **tap** is one capture: a pcapng file, the tap points it records (one Interface
//!   Description Block each, named `port/qN:rx`), a side ring per point and a writer thread.
//! - The lcore copies each captured frame (up to the snaplen) with a 16-byte record header
//!   into a stage buffer and pushes the burst into the point's side ring at once: one ring
//!   commit per burst, no allocation, never a wait. A burst that does not fit is not captured
//!   and counted; the count is in the summary and in the file's Interface Statistics Block
//!   (`isb_ifdrop`).
//! - Timestamps are the TSC at the burst, converted to wall time with one calibration at the
//!   start (see `sluice_dataplane::tsc`); the file says nanosecond resolution.
//! - [`CaptureControl`] starts, stops and lists taps, before the lcores start (the `--capture`
//!   flags) or while they run ([`CaptureControl::command`], a one-line text interface for a
//!   control socket).
//!
//! Stop and start commands reach an lcore through a small SPSC command ring it checks once per
//! poll; starting and stopping (allocating a ring, freeing a stage buffer) are the only times
//! the lcore touches the allocator, never per packet.

mod control;
mod error;
mod spec;
mod tap;
mod writer;

pub use control::{CaptureControl, CaptureSettings, TapReport, TapState, writer_cost};
pub use error::CaptureError;
pub use spec::{CaptureRequest, Direction, PointSpec};
pub use tap::{Tap, TapRx, TapTx};
