//! Software ports: real drivers of the net-port API that need no device.
//!
//! - [`ring_port`]: a pair of ports wired back to back by SPSC rings (DPDK's `net_ring`):
//!   what one transmits, the other receives, zero-copy.

pub mod ring_port;
