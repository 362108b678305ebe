//! Sluice memory: DMA regions, IOVA translation, object pools, packet buffers, and the
//! SPSC rings that move them between cores.
//!
//! # The model
//! - A [`DmaRegion`] is memory a device may read and write: hugepages ([`HugeMem`], 2 MiB
//!   or 1 GiB, locked and prefaulted; 4 KiB pages with one warning when none are reserved,
//!   as DPDK's `--no-huge`) plus the IOVA of every byte. Where IOVAs come from is the job
//!   of an [`IovaMapper`]: [`IdentityMapper`] (IOVA = virtual address: software devices,
//!   and what a VFIO type1 container uses after registering the region with the IOMMU),
//!   [`PagemapMapper`] (physical addresses, for VFIO's no-IOMMU mode), [`MemfdMapper`]
//!   (IOVA = virtual address on memfd-backed memory that a vhost-user backend maps through
//!   its fd, [`FdRegion`]), or a VFIO container from `sluice-pmd`, which implements the same
//!   trait.
//! - A pool ([`Mempool`] for plain DMA objects, [`PktPool`] for packet buffers) carves a
//!   region into fixed-size objects. Free objects sit in a lock-free shared store behind
//!   per-lcore caches, in `rte_mempool`'s design: an lcore (a thread registered with
//!   [`lcore::register`]) gets and frees through its own cache with no atomic
//!   read-modify-write, and moves objects to and from the store in bulk.
//! - A [`PktBuf`] is an owned handle to one packet buffer. It moves, never copies, through
//!   [`Batch`]es, [`ring`]s and queues, and goes back to its pool when dropped, from any
//!   thread. Exhaustion is back-pressure: `None` or a short count, never a wait.
//! - A [`ring`] is a single-producer single-consumer ring of owned items, the hand-off
//!   between pipeline stages and the wire of the in-memory port pair.
//!
//! ```
//! use sluice_mempool::{lcore, Batch, IdentityMapper, PktBuf, PktPool, PktPoolConfig};
//! use std::sync::Arc;
//!
//! let pool = PktPool::new(&PktPoolConfig::new("rx", 4096), Arc::new(IdentityMapper))?;
//! let (mut to_worker, mut from_rx) = sluice_mempool::ring::ring::<PktBuf>(1024).unwrap();
//!
//! // An rx lcore fills a burst and hands it over...
//! let mut burst: Batch<PktBuf> = Batch::new();
//! assert!(pool.alloc_bulk(&mut burst, 32));
//! for pkt in burst.iter_mut() {
//!     pkt.extend_from_slice(&[0u8; 60]).unwrap();
//! }
//! to_worker.push_burst(&mut burst);
//!
//! // ...a worker lcore takes it and frees it, into its own cache.
//! std::thread::spawn(move || {
//!     let _lcore = lcore::register(lcore::LcoreId::new(1).unwrap()).unwrap();
//!     let mut work: Batch<PktBuf> = Batch::new();
//!     from_rx.pop_burst(&mut work, 32);
//!     PktBuf::free_bulk(&mut work);
//! })
//! .join()
//! .unwrap();
//! assert_eq!(pool.available(), 4096);
//! # Ok::<(), sluice_mempool::Error>(())
//! ```
//!
//! # Features
//! - `debug-cookies`: every object carries a cookie checked on get and free, and free
//!   objects are poisoned and checked when taken again: a double free or a write after
//!   free panics with the pool's name and the object's index.
#![deny(unsafe_code)]

pub mod addr;
#[allow(unsafe_code)]
pub mod batch;
pub mod dma;
pub mod error;
pub mod iova;
pub mod lcore;
pub mod mem;
pub mod pktbuf;
pub mod pool;
#[allow(unsafe_code)]
pub mod ring;
mod sync;

#[cfg(all(test, loom))]
#[allow(unsafe_code)]
mod loom_tests;

pub use addr::{Iova, PhysAddr};
pub use batch::{Batch, DEFAULT_BURST};
pub use dma::{DmaRegion, FdRegion};
pub use error::Error;
pub use iova::{IdentityMapper, IovaMap, IovaMapper, MemfdMapper, PagemapMapper};
pub use mem::{HugeMem, HugePagePolicy, MemBacking, PageSize};
pub use pktbuf::{OffloadFlags, PktBuf, PktMeta, PktPool, PktPoolConfig};
pub use pool::{DmaObj, Mempool, PoolConfig};
