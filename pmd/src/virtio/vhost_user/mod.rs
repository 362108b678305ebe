//! The vhost-user frontend: this process as the driver of a virtio device that another
//! process on the host implements (a vhost-user backend such as DPDK's `net_vhost`), over a
//! unix socket, as DPDK's `net_virtio_user` does.
//!
//! The messages are rust-vmm's `vhost` crate's; this module decides what to send and when
//! (the vhost-user specification in QEMU's `docs/interop/vhost-user.rst`):
//! - [`VhostUserDevice::connect`]: `SET_OWNER`, `GET_FEATURES`, protocol features
//!   (`REPLY_ACK` required; `MQ`, `CONFIGURE_MEM_SLOTS` when offered).
//! - [`VhostUserDevice::negotiate`]: `SET_FEATURES`, a missing required feature named.
//! - [`VhostUserDevice::set_mem_table`]: the shareable memory ([`FdRegion`]s of memfd-backed
//!   regions from `sluice_mempool`, IOVA = virtual address).
//! - [`VhostUserDevice::setup_vring`]: per ring size, base, addresses, a call and a kick
//!   eventfd, enable; it returns the ring's [`Doorbell`].
//! - [`VhostUserDevice::stop_vring`] / [`stop_all`](VhostUserDevice::stop_all):
//!   `GET_VRING_BASE`, after which the backend leaves the ring alone.
//!
//! Poll mode: the call eventfds are never read, and a doorbell is rung only when the ring
//! says the backend asked for it. The backend is as untrusted as a PCI device: the rings
//! check what it writes in the same way.
//!
//! `backend` (feature `test-utils`, and this crate's tests): an in-process vhost-user net
//! backend on rust-vmm's `vhost-user-backend`, to test against.
//!
//! [`FdRegion`]: sluice_mempool::FdRegion

#[cfg(any(test, feature = "test-utils"))]
pub mod backend;
mod error;
mod frontend;
#[cfg(test)]
mod tests;

pub use error::{RingFault, VhostUserError};
pub use frontend::{Doorbell, MEM_TABLE_REGIONS, REPLY_TIMEOUT, VhostUserDevice, VringSetup};
