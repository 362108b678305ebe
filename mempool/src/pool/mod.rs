//! Fixed-size object pools in DMA memory.
//!
//! A pool carves a [`DmaRegion`] into `count` equal objects and hands them out as owning
//! handles ([`DmaObj`] here, [`PktBuf`](crate::PktBuf) for packet pools) that go back to the
//! pool when dropped, from any thread. Free objects are tracked by index in a lock-free
//! shared store behind per-lcore caches (see [`crate::lcore`]).
//!
//! Each object has a header (its address, IOVA, index and, for packet buffers, packet
//! metadata) kept in ordinary memory, not in the DMA region: a device can write anywhere
//! it was given, so a misbehaving one may corrupt payload but never the pool's bookkeeping.
//!
//! A pool lives as long as any [`Mempool`]/[`PktPool`](crate::PktPool) handle to it. If the
//! last handle goes while objects are still out (or still on their way back on another
//! thread), the pool's memory is deliberately leaked (with a warning) so that those objects
//! stay valid; return every object first. Why that check is sound against returns racing
//! it is in `cached.rs` (teardown).

#![allow(unsafe_code)]

pub(crate) mod cached;
mod dma_obj;
pub(crate) mod store;

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;

use crate::addr::Iova;
use crate::dma::DmaRegion;
use crate::error::Error;
use crate::iova::IovaMapper;
use crate::lcore::{self, MAX_LCORES};
use crate::mem::{HugePagePolicy, PageSize};
use cached::CachedStore;
use store::Codec;

pub use cached::MAX_CACHE_SIZE;
pub use dma_obj::{DmaObj, Mempool};

/// How a pool's objects are laid out; the parts common to every kind of pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// A name for reports and errors.
    pub name: String,
    /// How many objects.
    pub count: u32,
    /// Bytes per object.
    pub obj_size: usize,
    /// Object alignment (a power of two, at least 64 so that objects never share a cache
    /// line; 4096 for NVMe data buffers that must start on a page).
    pub obj_align: usize,
    /// Per-lcore cache size in objects (0: no caches), at most [`MAX_CACHE_SIZE`].
    pub cache_size: u32,
    /// Page size to ask for.
    pub page_size: PageSize,
    /// What to do when no hugepages of that size are free.
    pub huge_pages: HugePagePolicy,
}

impl PoolConfig {
    /// `count` objects of `obj_size` bytes, 64-byte aligned, a 256-object cache, on 2 MiB
    /// hugepages when there are some.
    pub fn new(name: impl Into<String>, count: u32, obj_size: usize) -> Self {
        Self {
            name: name.into(),
            count,
            obj_size,
            obj_align: 64,
            cache_size: 256,
            page_size: PageSize::Size2M,
            huge_pages: HugePagePolicy::Prefer,
        }
    }
}

/// Per-object header: in ordinary memory, never in the DMA region.
#[repr(C, align(64))]
pub(crate) struct Slot<M> {
    pool: *const Pool<M>,
    va: NonNull<u8>,
    iova: Iova,
    index: u32,
    #[cfg(feature = "debug-cookies")]
    cookie: std::sync::atomic::AtomicU64,
    /// Per-object metadata, owned by whoever holds the object.
    meta: core::cell::UnsafeCell<M>,
}

#[cfg(feature = "debug-cookies")]
const COOKIE_FREE: u64 = 0x5a1c_e0b7_f4ee_f4ee;
#[cfg(feature = "debug-cookies")]
const COOKIE_TAKEN: u64 = 0x5a1c_e0b7_7a4e_7a4e;
/// Byte written over a freed object's memory, checked when it is taken again.
#[cfg(feature = "debug-cookies")]
const POISON: u8 = 0x6b;

/// The shared state of a pool; objects point here, so it never moves.
pub(crate) struct Pool<M> {
    name: String,
    slots: Box<[Slot<M>]>,
    free: CachedStore,
    obj_size: usize,
    /// Declared last: dropped after everything that points into it.
    region: DmaRegion,
}

// SAFETY: a `Slot`'s `meta` is only accessed by the holder of that object (one owner at a
// time, enforced by the handles), and everything else in a slot is immutable after
// construction; `CachedStore` is `Sync`. `M: Send` because metadata moves between threads
// with its object.
unsafe impl<M: Send> Sync for Pool<M> {}
// SAFETY: as for `Sync`.
unsafe impl<M: Send> Send for Pool<M> {}

impl<M: Default> Pool<M> {
    /// Builds the pool: allocates and maps the region, lays the objects out, fills the store.
    pub(crate) fn create(
        cfg: &PoolConfig,
        mapper: Arc<dyn IovaMapper>,
    ) -> Result<Box<Self>, Error> {
        let bad = |why: String| Error::PoolConfig {
            pool: cfg.name.clone(),
            why,
        };
        if !(1..store::NIL).contains(&cfg.count) {
            return Err(bad(format!(
                "count {} must be between 1 and {}",
                cfg.count,
                store::NIL - 1
            )));
        }
        if cfg.obj_size == 0 {
            return Err(bad("object size 0".into()));
        }
        if !cfg.obj_align.is_power_of_two() || cfg.obj_align < 64 {
            return Err(bad(format!(
                "alignment {} must be a power of two of at least 64",
                cfg.obj_align
            )));
        }
        if cfg.cache_size > MAX_CACHE_SIZE {
            return Err(bad(format!(
                "cache size {} is over the maximum of {MAX_CACHE_SIZE}",
                cfg.cache_size
            )));
        }
        let stride = cfg.obj_size.next_multiple_of(cfg.obj_align);
        let page = cfg.page_size.bytes();
        // On hugepages, objects never cross a page boundary (a hugepage is physically
        // contiguous, consecutive ones need not be); the waste is under one object per page.
        let per_page = if stride <= page { page / stride } else { 0 };
        let len = if per_page > 0 {
            (cfg.count as usize).div_ceil(per_page) * page
        } else {
            cfg.count as usize * stride
        };
        let region = DmaRegion::allocate(len, cfg.page_size, cfg.huge_pages, mapper)?;
        // If we fell back to small pages, pack contiguously: an object's IOVA range is then
        // checked below (identity and IOMMU mappings are contiguous; pagemap refuses 4 KiB).
        let got_page = region.page_size().bytes();
        let per_page = if got_page == page { per_page } else { 0 };
        let offsets = (0..cfg.count as usize).map(|i| match per_page {
            0 => i * stride,
            n => (i / n) * page + (i % n) * stride,
        });

        let mut slots = Vec::with_capacity(cfg.count as usize);
        for (index, offset) in offsets.enumerate() {
            if offset + cfg.obj_size > region.len()
                || !region.is_iova_contiguous(offset, cfg.obj_size)
            {
                return Err(bad(format!(
                    "object {index} at offset {offset} is not IOVA-contiguous in a region of {} on {} pages",
                    region.len(),
                    region.page_size()
                )));
            }
            // SAFETY: `offset + obj_size <= region.len()`, so the pointer stays inside the region.
            let va = unsafe { region.as_ptr().add(offset) };
            slots.push(Slot {
                pool: core::ptr::null(),
                va,
                iova: region.iova_at(offset),
                index: index as u32,
                #[cfg(feature = "debug-cookies")]
                cookie: std::sync::atomic::AtomicU64::new(COOKIE_FREE),
                meta: core::cell::UnsafeCell::new(M::default()),
            });
        }
        // The boxed slice never moves again, so its address can be the handles' base.
        let slots = slots.into_boxed_slice();
        let codec = Codec::new(slots.as_ptr().addr(), Self::SLOT_SHIFT);
        let mut pool = Box::new(Pool {
            name: cfg.name.clone(),
            slots,
            free: CachedStore::new(cfg.count, cfg.cache_size, MAX_LCORES, codec),
            obj_size: cfg.obj_size,
            region,
        });
        let at: *const Pool<M> = &*pool;
        for slot in pool.slots.iter_mut() {
            slot.pool = at;
        }
        #[cfg(feature = "debug-cookies")]
        for slot in pool.slots.iter() {
            // SAFETY: the object lies inside the region and nobody holds it yet.
            unsafe { slot.va.as_ptr().write_bytes(POISON, pool.obj_size) };
        }
        Ok(pool)
    }
}

impl<M> Pool<M> {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn obj_size(&self) -> usize {
        self.obj_size
    }

    pub(crate) fn region(&self) -> &DmaRegion {
        &self.region
    }

    pub(crate) fn available(&self) -> usize {
        self.free.available()
    }

    pub(crate) fn available_shared(&self) -> usize {
        self.free.in_store()
    }

    pub(crate) fn cache_size(&self) -> usize {
        self.free.cache_size()
    }

    pub(crate) fn cached_on(&self, lcore: usize) -> usize {
        self.free.cached_on(lcore)
    }

    /// log2 of a slot's size: handles are `slots base + (index << SLOT_SHIFT)`.
    const SLOT_SHIFT: u32 = {
        let size = core::mem::size_of::<Slot<M>>();
        assert!(
            size.is_power_of_two(),
            "a pool slot's size must be a power of two"
        );
        size.trailing_zeros()
    };

    /// The slot a handle (from the store or a cache) stands for.
    #[inline(always)]
    fn slot_at(&self, handle: usize) -> NonNull<Slot<M>> {
        debug_assert!(self.owns_addr(handle));
        let slot = self.slots.as_ptr().with_addr(handle);
        // SAFETY: handles are addresses of elements of `slots` (the store's codec makes
        // them so), hence non-null; `with_addr` keeps the slice's provenance.
        unsafe { NonNull::new_unchecked(slot.cast_mut()) }
    }

    /// Takes one object through the calling lcore's cache.
    #[inline]
    pub(crate) fn take_one(&self) -> Option<NonNull<Slot<M>>> {
        // SAFETY: `current_index` comes from the lcore registry, which gives each id to one
        // thread at a time, so this thread is the only user of that cache.
        let handle = unsafe { self.free.get_one(lcore::current_index()) }?;
        self.on_take(handle);
        Some(self.slot_at(handle))
    }

    /// Takes `n` objects (all or none when `exact`, else up to `n`) through the calling
    /// lcore's cache and appends `make(slot)` for each to `out`. Returns how many.
    ///
    /// The handles are written straight into the batch's spare capacity and its length is
    /// set once: pushing one by one would chain every item on the length in memory.
    #[inline]
    pub(crate) fn take_into<T, const N: usize>(
        &self,
        out: &mut crate::Batch<T, N>,
        n: usize,
        exact: bool,
        make: impl Fn(NonNull<Slot<M>>) -> T,
    ) -> usize {
        let n = n.min(out.remaining());
        let len = out.len();
        let dst = out.spare_capacity_mut().as_mut_ptr();
        let mut written = 0;
        let each = |handles: &[usize]| {
            for &handle in handles {
                self.on_take(handle);
                // SAFETY: at most `n <= remaining` handles come, so `written` stays within
                // the spare capacity.
                unsafe { (*dst.add(written)).write(make(self.slot_at(handle))) };
                written += 1;
            }
        };
        // SAFETY: as in `take_one`.
        let got = unsafe { self.free.get_with(lcore::current_index(), n, exact, each) };
        // SAFETY: `got` items were written right after the `len` initialised ones.
        unsafe { out.set_len(len + got) };
        got
    }

    /// Returns one held object, through the calling lcore's cache.
    #[inline]
    pub(crate) fn give_back_one(&self, slot: NonNull<Slot<M>>) {
        let handle = slot.as_ptr().addr();
        self.on_give_back(handle);
        // SAFETY: as in `take_one`; the caller held the object and gives it up.
        unsafe { self.free.put_one(lcore::current_index(), handle) };
    }

    /// The slots' first address and their span in bytes.
    #[inline(always)]
    fn addr_span(&self) -> (usize, usize) {
        (
            self.slots.as_ptr().addr(),
            self.slots.len() << Self::SLOT_SHIFT,
        )
    }

    #[inline(always)]
    fn owns_addr(&self, addr: usize) -> bool {
        let (base, span) = self.addr_span();
        addr.wrapping_sub(base) < span
    }

    /// Whether `slot` is one of this pool's objects (by address: no header is read).
    #[inline(always)]
    pub(crate) fn owns(&self, slot: NonNull<Slot<M>>) -> bool {
        self.owns_addr(slot.as_ptr().addr())
    }

    /// Returns the objects at `slots(k)` for `k in 0..n` — all of this pool
    /// ([`Pool::owns`]) and held by the caller — in bulk through the calling lcore's cache:
    /// their addresses are the handles, so this copies pointers and reads no header.
    #[inline]
    fn give_back_owned(&self, n: usize, slots: impl Fn(usize) -> NonNull<Slot<M>>) {
        let fill = |dst: &mut [usize]| {
            for (k, d) in dst.iter_mut().enumerate() {
                let handle = slots(k).as_ptr().addr();
                self.on_give_back(handle);
                *d = handle;
            }
        };
        // SAFETY: as in `take_one`; the caller held the objects and gives them up.
        unsafe { self.free.put_with(lcore::current_index(), n, fill) };
    }

    /// Moves the calling lcore's cached objects back to the shared store.
    pub(crate) fn flush_current_cache(&self) {
        if let Some(l) = lcore::current_index() {
            // SAFETY: as in `take`.
            unsafe { self.free.flush_on(l) };
        }
    }

    #[cfg(not(feature = "debug-cookies"))]
    #[inline(always)]
    fn on_take(&self, _handle: usize) {}

    #[cfg(not(feature = "debug-cookies"))]
    #[inline(always)]
    fn on_give_back(&self, _handle: usize) {}

    #[cfg(feature = "debug-cookies")]
    fn on_take(&self, handle: usize) {
        use std::sync::atomic::Ordering;
        let index = (handle - self.slots.as_ptr().addr()) >> Self::SLOT_SHIFT;
        let slot = &self.slots[index];
        let was = slot.cookie.swap(COOKIE_TAKEN, Ordering::AcqRel);
        assert!(
            was == COOKIE_FREE,
            "sluice-mempool: pool '{}': object {index} handed out while not free (cookie {was:#x}): double free or corrupted header",
            self.name
        );
        // SAFETY: the object is ours now; its memory lies inside the region.
        let bytes = unsafe { core::slice::from_raw_parts(slot.va.as_ptr(), self.obj_size) };
        if let Some(at) = bytes.iter().position(|&b| b != POISON) {
            panic!(
                "sluice-mempool: pool '{}': object {index} was written at byte {at} while free (use after free)",
                self.name
            );
        }
    }

    #[cfg(feature = "debug-cookies")]
    fn on_give_back(&self, handle: usize) {
        use std::sync::atomic::Ordering;
        let index = (handle - self.slots.as_ptr().addr()) >> Self::SLOT_SHIFT;
        let slot = &self.slots[index];
        let was = slot.cookie.swap(COOKIE_FREE, Ordering::AcqRel);
        assert!(
            was == COOKIE_TAKEN,
            "sluice-mempool: pool '{}': double free of object {index} (cookie {was:#x})",
            self.name
        );
        // SAFETY: the caller gave the object up; its memory lies inside the region.
        unsafe { slot.va.as_ptr().write_bytes(POISON, self.obj_size) };
    }
}

impl<M> Slot<M> {
    #[inline]
    pub(crate) fn pool(&self) -> &Pool<M> {
        // SAFETY: set at creation to the pool that owns this slot; the pool outlives its
        // objects (it is leaked rather than freed while any is out).
        unsafe { &*self.pool }
    }

    #[inline]
    pub(crate) fn va(&self) -> NonNull<u8> {
        self.va
    }

    #[inline]
    pub(crate) fn iova(&self) -> Iova {
        self.iova
    }

    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The metadata.
    ///
    /// # Safety
    /// The caller holds the object, and no other reference to the metadata is live.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn meta_mut(&self) -> &mut M {
        // SAFETY: per the contract, the caller has exclusive access.
        unsafe { &mut *self.meta.get() }
    }

    /// The metadata.
    ///
    /// # Safety
    /// The caller holds the object (or a shared borrow of its handle).
    #[inline]
    pub(crate) unsafe fn meta(&self) -> &M {
        // SAFETY: per the contract, nobody writes it meanwhile.
        unsafe { &*self.meta.get() }
    }
}

/// Returns `len` held objects, the `k`-th at `slot_at(k)`, each to its own pool, in bulk
/// per run of objects from the same pool: one header read per run, none per object.
///
/// # Safety
/// Each slot is of an object the caller holds and gives up (it must not drop or use the
/// handles afterwards).
#[inline]
pub(crate) unsafe fn give_back_runs<M>(len: usize, slot_at: impl Fn(usize) -> NonNull<Slot<M>>) {
    if len == 0 {
        return;
    }
    // SAFETY: the caller holds this object, so its slot and pool are alive.
    let pool = unsafe { slot_at(0).as_ref() }.pool();
    // The common case, one pool for the whole batch, checked without early exit so that
    // the check vectorises, with the pool's bounds hoisted out of the loop.
    let (base, span) = pool.addr_span();
    let one_pool = (0..len).fold(true, |ok, k| {
        ok & (slot_at(k).as_ptr().addr().wrapping_sub(base) < span)
    });
    if one_pool {
        return pool.give_back_owned(len, slot_at);
    }
    let mut start = 0;
    while start < len {
        // SAFETY: as above.
        let pool = unsafe { slot_at(start).as_ref() }.pool();
        let mut end = start + 1;
        while end < len && pool.owns(slot_at(end)) {
            end += 1;
        }
        pool.give_back_owned(end - start, |k| slot_at(start + k));
        start = end;
    }
}

/// An owning handle to one pool object ([`DmaObj`], [`PktBuf`](crate::PktBuf)): the slot
/// pointer is all it holds, so a batch of handles is a batch of slot pointers.
pub(crate) trait Handle: Sized {
    /// The pool's per-object metadata type.
    type Meta;

    /// The object's slot.
    fn slot_ptr(&self) -> NonNull<Slot<Self::Meta>>;
}

/// Returns a batch of handles' objects to their pools in bulk (one header read per run of
/// objects from the same pool) and leaves the batch empty.
#[inline]
pub(crate) fn free_bulk<H: Handle, const N: usize>(batch: &mut crate::Batch<H, N>) {
    let items = batch.as_ptr();
    // SAFETY: the batch holds `len` handles; their objects are given back here and the
    // handles then forgotten by setting the length to 0, so none is dropped or used again.
    unsafe {
        give_back_runs(batch.len(), |k| (*items.add(k)).slot_ptr());
        batch.set_len(0);
    }
}

/// Owns a boxed pool; frees it only when every object is home.
pub(crate) struct PoolOwner<M> {
    pool: NonNull<Pool<M>>,
}

// SAFETY: it only shares a `Pool<M>`, which is `Send + Sync` for `M: Send`.
unsafe impl<M: Send> Send for PoolOwner<M> {}
// SAFETY: as for `Send`.
unsafe impl<M: Send> Sync for PoolOwner<M> {}

impl<M> PoolOwner<M> {
    pub(crate) fn new(pool: Box<Pool<M>>) -> Arc<Self> {
        Arc::new(Self {
            pool: NonNull::from(Box::leak(pool)),
        })
    }

    #[inline]
    pub(crate) fn pool(&self) -> &Pool<M> {
        // SAFETY: the box is only freed in `drop`.
        unsafe { self.pool.as_ref() }
    }
}

impl<M> Drop for PoolOwner<M> {
    fn drop(&mut self) {
        let pool = self.pool();
        // Sound against returns on other threads that race with this check (cache spills
        // included): see `cached` (teardown). This was the last handle, so no object can be
        // taken any more; `Arc` made every earlier holder's takes visible here.
        let out = pool.free.outstanding(pool.capacity());
        if out > 0 {
            // Objects still out point at this pool and its memory: keep both alive.
            eprintln!(
                "sluice: warning: pool '{}' dropped with {out} of {} objects still in use; its memory is leaked so they stay valid",
                pool.name(),
                pool.capacity()
            );
            return;
        }
        // SAFETY: the pointer came from `Box::leak` in `new`, every object is home (so no
        // handle refers to the pool), and this is the last owner.
        drop(unsafe { Box::from_raw(self.pool.as_ptr()) });
    }
}

/// The `Debug` of a pool handle of kind `kind` (`Mempool`, `PktPool`).
pub(crate) fn pool_debug<M>(pool: &Pool<M>, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(kind)
        .field("name", &pool.name())
        .field("capacity", &pool.capacity())
        .field("available", &pool.available())
        .field("obj_size", &pool.obj_size())
        .field("region", pool.region())
        .finish()
}
