//! Software ports: real drivers of the net-port API that need no device.
//!
//! - [`ring_port`]: a pair of ports wired back to back by SPSC rings (DPDK's `net_ring`):
//!   what one transmits, the other receives, zero-copy.
//! - [`af_xdp`]: an AF_XDP socket per queue on any Linux interface (DPDK's `net_af_xdp`).

pub mod af_xdp;
pub mod ring_port;
