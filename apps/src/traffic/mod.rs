//! Traffic generation and checking, shared by `sluice-pktgen` and the forwarder's built-in
//! generator and sink: [`frame`] (the frame layout and its checks), [`generator`] (the generator
//! task), [`sink`] (the sink task and its report).

pub mod frame;
pub mod generator;
pub mod sink;

pub use generator::{GenConfig, GenControl, GenTask};
pub use sink::{SinkControl, SinkReport, SinkTask};
