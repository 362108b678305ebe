//! The UMEM: a packet pool whose buffers are exactly the UMEM's chunks, and the shadow
//! table that maps a UMEM address the kernel hands back to the `PktBuf` that owns it.
//!
//! The pool is made with `headroom + data_room == obj_align == chunk`, so every buffer is
//! one chunk, starts on a chunk boundary of the pool's region, and the region (page-aligned,
//! a whole number of chunks) is registered as the UMEM as is: a received frame is already in
//! a `PktBuf`, and a `PktBuf` of this pool is transmitted from where its data lies.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};

use sluice_mempool::{IdentityMapper, PktBuf, PktPool, PktPoolConfig};

use crate::error::Error;

/// The kernel's `XDP_PACKET_HEADROOM`: in copy mode a received frame starts this far into
/// its chunk (plus the UMEM headroom, 0 here). Fresh buffers get the same headroom so that
/// received and locally built frames look alike.
pub const XDP_PACKET_HEADROOM: usize = 256;

/// A UMEM: a chunk-aligned packet pool that one or more AF_XDP ports share.
///
/// Sharing one `Umem` between ports (`XDP_SHARED_UMEM`) makes forwarding between them
/// zero-copy: a frame received on one is transmitted on the other from the same chunk. A
/// port given a `PktBuf` from another pool copies it into a chunk of its own UMEM (DPDK's
/// `af_xdp` does the same).
pub struct Umem {
    pool: PktPool,
    chunk: u32,
    /// Bound sockets using this UMEM; a new socket shares the registration of a live one
    /// (the kernel requires that one to be bound) or registers the memory afresh when none
    /// is left (the kernel freed its registration with the last socket).
    sockets: Mutex<Vec<Weak<OwnedFd>>>,
}

impl core::fmt::Debug for Umem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Umem")
            .field("pool", &self.pool)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl Umem {
    /// A UMEM of `base.count` chunks of `chunk` bytes (2048 or 4096) on the pages `base`
    /// asks for: [`Umem::from_pool`] over [`Umem::new_pool`].
    pub fn new(base: &PktPoolConfig, chunk: u32) -> Result<Arc<Self>, Error> {
        Self::from_pool(Self::new_pool(base, chunk)?, chunk)
    }

    /// `base` made into the configuration of a UMEM pool: its `headroom` and `data_room`
    /// are replaced (the headroom is [`XDP_PACKET_HEADROOM`], the data room the rest of the
    /// chunk), so that each buffer is exactly one chunk.
    pub fn pool_config(base: &PktPoolConfig, chunk: u32) -> Result<PktPoolConfig, Error> {
        if chunk != 2048 && chunk != 4096 {
            return Err(Error::InvalidConfig {
                port: base.name.clone(),
                what: "AF_XDP chunk size (2048 or 4096)",
                value: chunk.to_string(),
            });
        }
        Ok(PktPoolConfig {
            headroom: XDP_PACKET_HEADROOM,
            data_room: chunk as usize - XDP_PACKET_HEADROOM,
            ..base.clone()
        })
    }

    /// A packet pool laid out for a UMEM of `chunk`-byte chunks (see [`Umem::pool_config`]),
    /// for an application that owns its pools and hands this one to [`Umem::from_pool`].
    pub fn new_pool(base: &PktPoolConfig, chunk: u32) -> Result<PktPool, Error> {
        let cfg = Self::pool_config(base, chunk)?;
        Ok(PktPool::with_align(
            &cfg,
            chunk as usize,
            Arc::new(IdentityMapper),
        )?)
    }

    /// A UMEM over `pool`'s whole region, which must be cut in `chunk`-byte buffers (as
    /// [`Umem::new_pool`] makes it). Buffers of `chunk` bytes — a power of two — lie on chunk
    /// boundaries whatever the page size: the pool places objects at multiples of their
    /// size from a page start, and never across a hugepage.
    pub fn from_pool(pool: PktPool, chunk: u32) -> Result<Arc<Self>, Error> {
        if chunk != 2048 && chunk != 4096 {
            return Err(Error::InvalidConfig {
                port: pool.name().to_string(),
                what: "AF_XDP chunk size (2048 or 4096)",
                value: chunk.to_string(),
            });
        }
        let region = pool.region();
        // af_xdp.rst, "XDP_UMEM_REG setsockopt" (docs/devices.md#af_xdp): the UMEM starts on
        // a page and is a whole number of chunks; every buffer is one chunk on a chunk
        // boundary.
        let base_addr = region.as_ptr().as_ptr() as usize;
        if !base_addr.is_multiple_of(4096)
            || !region.len().is_multiple_of(chunk as usize)
            || pool.buf_len() != chunk as usize
        {
            return Err(Error::InvalidConfig {
                port: pool.name().to_string(),
                what: "UMEM layout (a page-aligned region of whole chunks, one buffer each)",
                value: format!(
                    "region {base_addr:#x}+{}, buffers of {} for chunks of {chunk}",
                    region.len(),
                    pool.buf_len()
                ),
            });
        }
        Ok(Arc::new(Self {
            pool,
            chunk,
            sockets: Mutex::new(Vec::new()),
        }))
    }

    /// The pool whose buffers are the chunks.
    pub fn pool(&self) -> &PktPool {
        &self.pool
    }

    /// The chunk size.
    pub fn chunk(&self) -> u32 {
        self.chunk
    }

    /// A live bound socket whose registration a new socket can share, if any.
    pub(super) fn live_socket(&self) -> Option<Arc<OwnedFd>> {
        let mut v = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.iter().find_map(Weak::upgrade)
    }

    /// Records a bound socket using this UMEM.
    pub(super) fn add_socket(&self, fd: &Arc<OwnedFd>) {
        let mut v = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        v.push(Arc::downgrade(fd));
    }

    /// The geometry of the UMEM, for address translation.
    pub(super) fn geometry(&self) -> Geometry {
        Geometry {
            base: self.pool.region().as_ptr().as_ptr() as usize,
            len: self.pool.region().len() as u64,
            shift: self.chunk.trailing_zeros(),
        }
    }
}

/// Where the UMEM lies and how it is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geometry {
    /// Address of the UMEM's first byte in this process.
    pub base: usize,
    /// UMEM length in bytes.
    pub len: u64,
    /// log2 of the chunk size.
    pub shift: u32,
}

impl Geometry {
    /// Number of chunks.
    pub fn chunks(&self) -> usize {
        (self.len >> self.shift) as usize
    }

    /// The UMEM offset of `pkt`'s buffer start, if `pkt` is one of this UMEM's chunks.
    #[inline]
    pub fn chunk_offset(&self, pkt: &PktBuf) -> Option<u64> {
        let off = (pkt.buf_ptr() as usize).wrapping_sub(self.base) as u64;
        let mask = (1u64 << self.shift) - 1;
        (off < self.len && off & mask == 0).then_some(off)
    }
}

/// Why a UMEM address from the kernel was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadAddr {
    /// Beyond the UMEM.
    OutOfRange,
    /// No buffer of ours is posted at that chunk.
    NotOwned,
    /// Offset plus length runs past the chunk.
    TooLong,
}

/// The shadow table: buffers handed to the kernel, by chunk index. Each queue keeps its own
/// (RX: posted on FILL; TX: on the TX ring until COMPLETION returns them).
pub(super) struct ChunkTable {
    geo: Geometry,
    slots: Vec<Option<PktBuf>>,
    held: usize,
}

impl ChunkTable {
    /// An empty table for a UMEM of geometry `geo` (allocates at setup, never after).
    pub fn new(geo: Geometry) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(geo.chunks(), || None);
        Self {
            geo,
            slots,
            held: 0,
        }
    }

    /// A table holding nothing and able to hold nothing (no allocation), to leave behind
    /// when the real one is moved out.
    pub fn empty(geo: Geometry) -> Self {
        Self {
            geo,
            slots: Vec::new(),
            held: 0,
        }
    }

    /// Buffers held.
    #[inline]
    pub fn held(&self) -> usize {
        self.held
    }

    /// Keeps `pkt` (one of this UMEM's chunks) until its chunk comes back; returns its
    /// chunk's UMEM offset, or gives `pkt` back when it is not a chunk of this UMEM or its
    /// slot is taken (which would be a bookkeeping bug; the caller counts an error).
    #[inline]
    pub fn put(&mut self, pkt: PktBuf) -> Result<u64, PktBuf> {
        let Some(off) = self.geo.chunk_offset(&pkt) else {
            return Err(pkt);
        };
        let slot = &mut self.slots[(off >> self.geo.shift) as usize];
        if slot.is_some() {
            return Err(pkt);
        }
        *slot = Some(pkt);
        self.held += 1;
        Ok(off)
    }

    /// Takes back the buffer of a received frame at UMEM address `addr` of `len` bytes,
    /// with its data set to that frame. Every address the kernel returns is checked: in the
    /// UMEM, a buffer of ours posted at that chunk, and the frame inside the chunk.
    #[inline]
    pub fn take_rx(&mut self, addr: u64, len: u32) -> Result<PktBuf, BadAddr> {
        let mut pkt = self.take(addr)?;
        let in_chunk = (addr & ((1u64 << self.geo.shift) - 1)) as usize;
        if pkt.set_data(in_chunk, len as usize) {
            Ok(pkt)
        } else {
            // Put it back: the buffer is still posted as far as we know.
            let chunk = (addr >> self.geo.shift) as usize;
            self.slots[chunk] = Some(pkt);
            self.held += 1;
            Err(BadAddr::TooLong)
        }
    }

    /// Takes back the buffer whose chunk contains UMEM address `addr` (a completion).
    #[inline]
    pub fn take(&mut self, addr: u64) -> Result<PktBuf, BadAddr> {
        if addr >= self.geo.len {
            return Err(BadAddr::OutOfRange);
        }
        let slot = self
            .slots
            .get_mut((addr >> self.geo.shift) as usize)
            .ok_or(BadAddr::OutOfRange)?;
        let pkt = slot.take().ok_or(BadAddr::NotOwned)?;
        self.held -= 1;
        Ok(pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mempool::{HugePagePolicy, PageSize};

    fn umem(count: u32, chunk: u32) -> Arc<Umem> {
        let mut cfg = PktPoolConfig::new("umem-test", count);
        cfg.page_size = PageSize::Size4K;
        cfg.huge_pages = HugePagePolicy::Never;
        cfg.cache_size = 0;
        Umem::new(&cfg, chunk).unwrap()
    }

    #[test]
    fn every_buffer_is_one_aligned_chunk() {
        for chunk in [2048, 4096] {
            let u = umem(64, chunk);
            let geo = u.geometry();
            assert_eq!(geo.chunks(), 64);
            let mut seen = std::collections::HashSet::new();
            let bufs: Vec<_> = (0..64).map(|_| u.pool().alloc().unwrap()).collect();
            for b in &bufs {
                let off = geo.chunk_offset(b).expect("a chunk of the UMEM");
                assert!(seen.insert(off));
                assert_eq!(b.headroom(), XDP_PACKET_HEADROOM);
                assert_eq!(b.buf_len(), chunk as usize);
            }
        }
    }

    #[test]
    fn bad_chunk_sizes_are_refused() {
        let cfg = PktPoolConfig::new("x", 8);
        for c in [1000, 1024, 8192] {
            let e = Umem::new(&cfg, c).unwrap_err().to_string();
            assert!(e.contains("chunk size"), "{e}");
        }
    }

    #[test]
    fn rx_addresses_map_back_to_their_buffer() {
        let u = umem(8, 2048);
        let mut t = ChunkTable::new(u.geometry());
        let b = u.pool().alloc().unwrap();
        let idx = b.index();
        let off = t.put(b).unwrap();
        assert_eq!(t.held(), 1);
        // Copy mode: data at chunk + 256.
        let p = t.take_rx(off + 256, 60).unwrap();
        assert_eq!((p.index(), p.headroom(), p.len()), (idx, 256, 60));
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn bad_kernel_addresses_are_refused_not_followed() {
        let u = umem(8, 2048);
        let geo = u.geometry();
        let mut t = ChunkTable::new(geo);
        let off = t.put(u.pool().alloc().unwrap()).unwrap();
        assert_eq!(t.take_rx(geo.len, 60).unwrap_err(), BadAddr::OutOfRange);
        assert_eq!(t.take_rx(u64::MAX, 60).unwrap_err(), BadAddr::OutOfRange);
        let other = if off == 0 { 2048 } else { 0 };
        assert_eq!(t.take_rx(other + 256, 60).unwrap_err(), BadAddr::NotOwned);
        assert_eq!(t.take_rx(off + 256, 1793).unwrap_err(), BadAddr::TooLong);
        assert_eq!(t.take_rx(off + 2047, 2).unwrap_err(), BadAddr::TooLong);
        // The buffer stayed posted through the refusals.
        assert_eq!(t.held(), 1);
        assert!(t.take_rx(off + 256, 1792).is_ok());
        // Taken once: a repeat of the same address is refused.
        assert_eq!(t.take(off).unwrap_err(), BadAddr::NotOwned);
        assert_eq!(u.pool().available(), 8);
    }

    proptest::proptest! {
        /// Whatever addresses and lengths a kernel returns, the table never panics, takes
        /// only buffers it holds with the frame inside the chunk, and keeps its count.
        #[test]
        fn any_kernel_address_is_checked(
            posted in proptest::collection::vec(0u64..16, 0..16),
            returned in proptest::collection::vec(
                (proptest::prop_oneof![0u64..(16 * 2048 + 64), proptest::num::u64::ANY],
                 0u32..4096),
                0..64,
            ),
        ) {
            let u = umem(16, 2048);
            let mut t = ChunkTable::new(u.geometry());
            let mut bufs: Vec<_> = (0..16).map(|_| Some(u.pool().alloc().unwrap())).collect();
            let mut held = std::collections::HashSet::new();
            for &k in &posted {
                if let Some(b) = bufs[k as usize].take() {
                    held.insert(t.put(b).unwrap() >> 11);
                }
            }
            drop(bufs);
            for (addr, len) in returned {
                let chunk = addr >> 11;
                let fits = (addr & 2047) + u64::from(len) <= 2048;
                match t.take_rx(addr, len) {
                    Ok(p) => {
                        proptest::prop_assert!(held.remove(&chunk) && fits);
                        proptest::prop_assert_eq!(p.len(), len as usize);
                    }
                    Err(_) => proptest::prop_assert!(!held.contains(&chunk) || !fits),
                }
                proptest::prop_assert_eq!(t.held(), held.len());
            }
            drop(t);
            proptest::prop_assert_eq!(u.pool().available(), 16);
        }
    }

    #[test]
    fn a_pool_not_cut_in_chunks_is_refused() {
        let mut cfg = PktPoolConfig::new("plain", 8);
        cfg.page_size = PageSize::Size4K;
        cfg.huge_pages = HugePagePolicy::Never;
        let plain = PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap();
        let e = Umem::from_pool(plain, 2048).unwrap_err().to_string();
        assert!(
            e.contains("UMEM layout") && e.contains("buffers of 2176"),
            "{e}"
        );
        // The same configuration made into a UMEM pool is accepted.
        assert!(Umem::from_pool(Umem::new_pool(&cfg, 2048).unwrap(), 2048).is_ok());
    }

    #[test]
    fn foreign_buffers_are_not_taken() {
        let u = umem(8, 2048);
        let v = umem(8, 2048);
        let mut t = ChunkTable::new(u.geometry());
        assert!(t.put(v.pool().alloc().unwrap()).is_err());
        assert_eq!(t.held(), 0);
        assert_eq!(v.pool().available(), 8);
    }
}
