//! Packet buffers: [`PktBuf`] and the pools they come from, [`PktPool`].
//!
//! A packet buffer is one object of a pool: `headroom` bytes (at least 128, for headers a
//! driver or an app prepends, such as virtio-net's) followed by the data room. Its header —
//! data offset and length, packet metadata, IOVA — lives in ordinary memory beside the
//! pool, out of any device's reach.
//!
//! # Ownership protocol
//! A `PktBuf` is a unique owner: it is moved, never copied, through rings, stages and
//! ports. While the CPU holds it, its bytes may be borrowed as `&[u8]`/`&mut [u8]`. A driver
//! that gives it to a device keeps the `PktBuf` (so that nobody else can touch the bytes)
//! and uses [`PktBuf::buf_iova`]/[`PktBuf::data_iova`]; it reads the bytes again only after
//! the device has handed the buffer back (the Acquire on the device's completion index).
//! Dropping it — on any thread — returns it to its pool: to the current lcore's cache when
//! the thread is an lcore, to the shared store otherwise.
//!
//! ```
//! use sluice_mempool::{IdentityMapper, PktPool, PktPoolConfig};
//! use std::sync::Arc;
//!
//! let pool = PktPool::new(&PktPoolConfig::new("rx", 1024), Arc::new(IdentityMapper)).unwrap();
//! let mut pkt = pool.alloc().unwrap();
//! pkt.extend_from_slice(b"payload").unwrap();
//! pkt.prepend(2).unwrap().copy_from_slice(b"hd");
//! assert_eq!(pkt.data(), b"hdpayload");
//! assert_eq!(pkt.headroom(), 126);
//! drop(pkt);
//! assert_eq!(pool.available(), 1024);
//! ```

#![allow(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;

use crate::addr::Iova;
use crate::batch::Batch;
use crate::error::Error;
use crate::iova::IovaMapper;
use crate::mem::{HugePagePolicy, PageSize};
use crate::pool::{Handle, Pool, PoolConfig, PoolOwner, Slot, free_bulk, pool_debug};

/// The least headroom a packet pool reserves.
pub const MIN_HEADROOM: usize = 128;
/// The largest buffer (headroom + data room): offsets are 16-bit.
pub const MAX_BUF_LEN: usize = u16::MAX as usize;

/// Offload flags carried with a packet (checksum state, as the device reported or as the
/// app requests for transmit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OffloadFlags(pub u64);

impl OffloadFlags {
    /// Receive: the device checked the L4 checksum and it is good (virtio `DATA_VALID`).
    pub const RX_L4_CSUM_GOOD: Self = Self(1 << 0);
    /// Receive: the L4 checksum is partial and must be completed (virtio `NEEDS_CSUM`).
    pub const RX_L4_CSUM_NONE: Self = Self(1 << 1);
    /// Transmit: the device should compute the L4 checksum.
    pub const TX_L4_CSUM: Self = Self(1 << 2);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

/// Packet metadata: free for drivers and apps to set and read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PktMeta {
    /// Offload flags.
    pub ol_flags: OffloadFlags,
    /// A timestamp (TSC or nanoseconds, as the setter documents).
    pub timestamp: u64,
    /// Receive hash, when a device provides one.
    pub rss_hash: u32,
    /// The port it arrived on.
    pub port: u16,
    /// The queue it arrived on.
    pub queue: u16,
}

/// The per-buffer header kept beside the pool.
#[derive(Default)]
pub(crate) struct PktState {
    data_off: u16,
    data_len: u16,
    meta: PktMeta,
}

/// How a packet pool is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PktPoolConfig {
    /// A name for reports and errors.
    pub name: String,
    /// How many buffers.
    pub count: u32,
    /// Bytes reserved in front of the data, at least [`MIN_HEADROOM`].
    pub headroom: usize,
    /// Bytes for packet data after the headroom (2048 fits a 1518-byte frame).
    pub data_room: usize,
    /// Per-lcore cache size (0: none).
    pub cache_size: u32,
    /// Page size to ask for.
    pub page_size: PageSize,
    /// What to do without hugepages.
    pub huge_pages: HugePagePolicy,
}

impl PktPoolConfig {
    /// `count` buffers of 128 B headroom and 2048 B data room, a 256-buffer cache, on 2 MiB
    /// hugepages when there are some.
    pub fn new(name: impl Into<String>, count: u32) -> Self {
        Self {
            name: name.into(),
            count,
            headroom: MIN_HEADROOM,
            data_room: 2048,
            cache_size: 256,
            page_size: PageSize::Size2M,
            huge_pages: HugePagePolicy::Prefer,
        }
    }
}

/// A pool of packet buffers. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct PktPool {
    owner: Arc<PoolOwner<PktState>>,
    headroom: u16,
}

impl PktPool {
    /// Creates a pool as `cfg` says, its memory made device-visible by `mapper`.
    pub fn new(cfg: &PktPoolConfig, mapper: Arc<dyn IovaMapper>) -> Result<Self, Error> {
        Self::with_align(cfg, 64, mapper)
    }

    /// A pool whose buffers another process can map: memfd-backed at IOVA = virtual address
    /// ([`MemfdMapper`](crate::MemfdMapper)), for a vhost-user backend. Hugepages and the
    /// fallback as `cfg` says; [`region`](Self::region)`.fd_region()` describes it.
    pub fn new_shareable(cfg: &PktPoolConfig) -> Result<Self, Error> {
        Self::new(cfg, Arc::new(crate::MemfdMapper))
    }

    /// Like [`PktPool::new`], with every buffer starting on a multiple of `obj_align` (a
    /// power of two, at least 64) from the region's start. An AF_XDP UMEM needs this: with
    /// `headroom + data_room == obj_align == chunk size`, each buffer is exactly one chunk.
    pub fn with_align(
        cfg: &PktPoolConfig,
        obj_align: usize,
        mapper: Arc<dyn IovaMapper>,
    ) -> Result<Self, Error> {
        let bad = |why: String| Error::PoolConfig {
            pool: cfg.name.clone(),
            why,
        };
        if cfg.headroom < MIN_HEADROOM {
            return Err(bad(format!(
                "headroom {} is below the minimum of {MIN_HEADROOM}",
                cfg.headroom
            )));
        }
        let buf_len = cfg.headroom + cfg.data_room;
        if cfg.data_room == 0 || buf_len > MAX_BUF_LEN {
            return Err(bad(format!(
                "headroom {} + data room {} must leave room for data and stay within {MAX_BUF_LEN}",
                cfg.headroom, cfg.data_room
            )));
        }
        let pool_cfg = PoolConfig {
            name: cfg.name.clone(),
            count: cfg.count,
            obj_size: buf_len,
            obj_align,
            cache_size: cfg.cache_size,
            page_size: cfg.page_size,
            huge_pages: cfg.huge_pages,
        };
        Ok(Self {
            owner: PoolOwner::new(Pool::create(&pool_cfg, mapper)?),
            headroom: cfg.headroom as u16,
        })
    }

    #[inline]
    fn pool(&self) -> &Pool<PktState> {
        self.owner.pool()
    }

    #[inline]
    fn fresh(&self, slot: NonNull<Slot<PktState>>) -> PktBuf {
        // SAFETY: the slot was just taken from the pool, so we are its only holder.
        let state = unsafe { slot.as_ref().meta_mut() };
        *state = PktState {
            data_off: self.headroom,
            data_len: 0,
            meta: PktMeta::default(),
        };
        PktBuf { slot }
    }

    /// One empty buffer (data at the headroom, length 0, metadata cleared), or `None` when
    /// the pool, as seen from this lcore, is empty: back-pressure, never a wait.
    #[inline]
    pub fn alloc(&self) -> Option<PktBuf> {
        self.pool().take_one().map(|slot| self.fresh(slot))
    }

    /// Bulk: appends `n` empty buffers to `out`, or none. Returns whether it did.
    #[inline]
    pub fn alloc_bulk<const N: usize>(&self, out: &mut Batch<PktBuf, N>, n: usize) -> bool {
        n <= out.remaining() && self.alloc_into(out, n, true) == n
    }

    /// Burst: appends up to `n` empty buffers to `out` (as many as fit); returns how many.
    #[inline]
    pub fn alloc_burst<const N: usize>(&self, out: &mut Batch<PktBuf, N>, n: usize) -> usize {
        self.alloc_into(out, n.min(out.remaining()), false)
    }

    #[inline]
    fn alloc_into<const N: usize>(
        &self,
        out: &mut Batch<PktBuf, N>,
        n: usize,
        exact: bool,
    ) -> usize {
        self.pool()
            .take_into(out, n, exact, |slot| self.fresh(slot))
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.pool().name()
    }

    /// How many buffers it has.
    pub fn capacity(&self) -> usize {
        self.pool().capacity()
    }

    /// Free buffers, in the shared store and in every lcore cache (exact when quiescent).
    pub fn available(&self) -> usize {
        self.pool().available()
    }

    /// Free buffers in the shared store only (the rest of [`PktPool::available`] sits in
    /// lcore caches).
    pub fn available_shared(&self) -> usize {
        self.pool().available_shared()
    }

    /// Free buffers in lcore `lcore`'s cache.
    pub fn cached(&self, lcore: crate::lcore::LcoreId) -> usize {
        self.pool().cached_on(lcore.index())
    }

    /// The per-lcore cache size.
    pub fn cache_size(&self) -> usize {
        self.pool().cache_size()
    }

    /// Headroom of a fresh buffer.
    pub fn headroom(&self) -> usize {
        usize::from(self.headroom)
    }

    /// Bytes per buffer: headroom plus data room.
    pub fn buf_len(&self) -> usize {
        self.pool().obj_size()
    }

    /// Hands the calling lcore's cached buffers back to the shared store.
    pub fn flush_cache(&self) {
        self.pool().flush_current_cache();
    }

    /// The DMA region behind the buffers.
    pub fn region(&self) -> &crate::DmaRegion {
        self.pool().region()
    }
}

impl fmt::Debug for PktPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        pool_debug(self.pool(), "PktPool", f)
    }
}

/// A packet buffer, owned; see the [module docs](self) for the ownership protocol.
pub struct PktBuf {
    slot: NonNull<Slot<PktState>>,
}

// SAFETY: a `PktBuf` owns its buffer exclusively (no `Clone`), its pool is `Sync`, and
// dropping it on any thread returns it through that thread's path (cache or store).
unsafe impl Send for PktBuf {}
// SAFETY: `&PktBuf` only reads the buffer and its header.
unsafe impl Sync for PktBuf {}

impl PktBuf {
    #[inline]
    fn slot(&self) -> &Slot<PktState> {
        // SAFETY: the slot lives as long as its pool, which outlives its objects.
        unsafe { self.slot.as_ref() }
    }

    #[inline]
    fn state(&self) -> &PktState {
        // SAFETY: we hold the buffer; `&self` excludes writers.
        unsafe { self.slot().meta() }
    }

    #[inline]
    fn state_mut(&mut self) -> &mut PktState {
        // SAFETY: we hold the buffer; `&mut self` makes the access unique.
        unsafe { self.slot().meta_mut() }
    }

    /// Bytes of packet data.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.state().data_len)
    }

    /// Whether it holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.state().data_len == 0
    }

    /// Bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.state().data_off)
    }

    /// Bytes after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf_len() - self.headroom() - self.len()
    }

    /// The whole buffer's size: headroom + data room.
    #[inline]
    pub fn buf_len(&self) -> usize {
        self.slot().pool().obj_size()
    }

    /// The packet data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let s = self.state();
        // SAFETY: `data_off + data_len <= buf_len` is kept by every method that changes
        // them; the buffer lies inside the pool's region and we own it.
        unsafe {
            core::slice::from_raw_parts(
                self.buf_ptr().add(usize::from(s.data_off)),
                usize::from(s.data_len),
            )
        }
    }

    /// The packet data, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (off, len) = (
            usize::from(self.state().data_off),
            usize::from(self.state().data_len),
        );
        // SAFETY: as in `data`; `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.buf_ptr().add(off), len) }
    }

    /// Grows the data by `n` bytes at the end and returns them, or `None` without room.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let end = self.headroom() + self.len();
        self.state_mut().data_len += n as u16;
        // SAFETY: `end + n <= buf_len` (checked), inside the owned buffer.
        Some(unsafe { core::slice::from_raw_parts_mut(self.buf_ptr().add(end), n) })
    }

    /// Appends `bytes`; `None` (and no change) without room.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Option<()> {
        self.append(bytes.len())
            .map(|dst| dst.copy_from_slice(bytes))
    }

    /// Grows the data by `n` bytes at the front (into the headroom) and returns them.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.headroom() {
            return None;
        }
        let s = self.state_mut();
        s.data_off -= n as u16;
        s.data_len += n as u16;
        let off = usize::from(s.data_off);
        // SAFETY: `off + n` is within the old data start, inside the owned buffer.
        Some(unsafe { core::slice::from_raw_parts_mut(self.buf_ptr().add(off), n) })
    }

    /// Removes `n` bytes from the front of the data; false (and no change) if it is shorter.
    #[inline]
    pub fn trim_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        let s = self.state_mut();
        s.data_off += n as u16;
        s.data_len -= n as u16;
        true
    }

    /// Removes `n` bytes from the end of the data; false (and no change) if it is shorter.
    #[inline]
    pub fn trim_back(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.state_mut().data_len -= n as u16;
        true
    }

    /// Sets where the data starts and how long it is (a receive path does this after the
    /// device wrote the buffer). False, and no change, if it does not fit the buffer.
    #[inline]
    pub fn set_data(&mut self, offset: usize, len: usize) -> bool {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.buf_len())
        {
            return false;
        }
        let s = self.state_mut();
        s.data_off = offset as u16;
        s.data_len = len as u16;
        true
    }

    /// Packet metadata.
    #[inline]
    pub fn meta(&self) -> &PktMeta {
        &self.state().meta
    }

    /// Packet metadata, mutably.
    #[inline]
    pub fn meta_mut(&mut self) -> &mut PktMeta {
        &mut self.state_mut().meta
    }

    /// IOVA of the buffer's first byte (the start of the headroom).
    #[inline]
    pub fn buf_iova(&self) -> Iova {
        self.slot().iova()
    }

    /// IOVA of the first data byte.
    #[inline]
    pub fn data_iova(&self) -> Iova {
        self.buf_iova().add(self.headroom() as u64)
    }

    /// Pointer to the buffer's first byte, for drivers.
    #[inline]
    pub fn buf_ptr(&self) -> *mut u8 {
        self.slot().va().as_ptr()
    }

    /// The buffer's index in its pool (stable for the pool's life; useful as a tag).
    #[inline]
    pub fn index(&self) -> u32 {
        self.slot().index()
    }

    /// Returns a batch of buffers to their pools, in bulk per run of buffers from the same
    /// pool (cheaper than dropping them one by one). The batch is left empty.
    #[inline]
    pub fn free_bulk<const N: usize>(bufs: &mut Batch<PktBuf, N>) {
        free_bulk(bufs);
    }
}

impl Handle for PktBuf {
    type Meta = PktState;

    #[inline(always)]
    fn slot_ptr(&self) -> NonNull<Slot<PktState>> {
        self.slot
    }
}

impl Drop for PktBuf {
    #[inline]
    fn drop(&mut self) {
        self.slot().pool().give_back_one(self.slot);
    }
}

impl fmt::Debug for PktBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PktBuf")
            .field("index", &self.index())
            .field("headroom", &self.headroom())
            .field("len", &self.len())
            .field("meta", self.meta())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
