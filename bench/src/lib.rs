//! Sluice benchmarks against their peers, side by side in one run.
//!
//! The `sluice-bench` binary runs every figure of DESIGN.md §5 that needs no device: the SPSC
//! ring between two pinned cores (against `crossbeam_queue::ArrayQueue`, `rtrb`, `ringbuf`
//! and DPDK's `rte_ring`), the latency of a burst through the ring, and the mempool get+put
//! cost (against DPDK's `rte_mempool` and `rte_pktmbuf`, on the same page size: [`pages`]). DPDK runs as a C peer compiled at run time
//! ([`dpdk`]); when it is absent its columns say `n/a`. [`fwd_bench`] measures the forwarder
//! itself on in-memory ports, and [`virtio_bench`] the virtio-net driver's own cost per packet
//! against the software device. See `bench/README.md` for the
//! methodology and the figures.
#![forbid(unsafe_code)]

pub mod capture_bench;
pub mod dpdk;
pub mod fwd_bench;
pub mod latency;
pub mod machine;
pub mod mempool_bench;
pub mod observe_bench;
pub mod pages;
pub mod peers;
pub mod pin;
pub mod report;
pub mod ring_bench;
pub mod stats;
pub mod table;
pub mod targets;
pub mod virtio_bench;
