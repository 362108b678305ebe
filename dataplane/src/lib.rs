//! Sluice dataplane runtime: pinned lcores running busy-poll loops, run-to-completion and
//! pipeline forwarding, the stop signal and the stats thread.
//!
//! # The model
//! - An **lcore** ([`Lcore`]) is a thread pinned to one CPU that runs one [`Task`] in a busy
//!   loop: no allocation, lock, syscall or formatting inside. It registers a mempool lcore id,
//!   so the buffers it frees go to its own pool caches.
//! - A [`Runtime`] starts lcores from a layout ([`RtcLayout`] for run-to-completion,
//!   [`PipelineLayout`] for rx → worker → tx over SPSC rings), or any [`Task`] (the apps'
//!   generator and sink), and owns the [`StopHandle`] they share. It never installs a signal
//!   handler: the app decides what stops it (`signal_hook::flag::register` on
//!   [`StopHandle::flag`], a timer, a test).
//! - Stopping drains: held transmit batches are retried, pipeline stages empty the rings that
//!   feed them, and what cannot be delivered is counted as dropped and returned to its pool.
//!   Joining is bounded: an lcore that does not end in time is named in [`Error::Hung`].
//! - The **transmit policy** (hold one refused burst, back-pressure, drop after a stall
//!   timeout, every drop counted) is in [`hold`].
//! - [`stats`] samples every queue's counters once per interval and prints text or JSON lines.
//! - [`tsc`] is the cheap timestamp the generator stamps and the sink subtracts.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod fwd;
pub mod hold;
pub mod lcore;
pub mod pipeline;
pub mod rtc;
pub mod runtime;
pub mod stats;
pub mod tsc;

pub use error::Error;
pub use fwd::Rewrite;
pub use lcore::{Lcore, LcoreCounters, StopHandle, Task};
pub use rtc::RxPath;
pub use runtime::{LcoreSpec, PipelineLayout, RtcLayout, Runtime, RuntimeConfig};
pub use sluice_mempool::{Batch, lcore as lcore_id, ring};
