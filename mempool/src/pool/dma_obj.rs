//! [`Mempool`] and its [`DmaObj`]s: a [`Pool`] of plain DMA objects (data buffers for a
//! block device, command pages), the non-packet face of the pools in this module.

use super::*;

/// A pool of fixed-size DMA objects (for example NVMe data buffers).
///
/// Cloning gives another handle to the same pool.
///
/// ```
/// use sluice_mempool::{IdentityMapper, Mempool, PoolConfig};
/// use std::sync::Arc;
///
/// let mut cfg = PoolConfig::new("blocks", 64, 4096);
/// cfg.obj_align = 4096;
/// let pool = Mempool::new(&cfg, Arc::new(IdentityMapper)).unwrap();
/// let mut buf = pool.get().expect("a fresh pool has free objects");
/// buf.as_mut_slice()[0] = 0xab;
/// assert_eq!(buf.iova().as_u64() % 4096, 0);
/// drop(buf); // back to the pool
/// assert_eq!(pool.available(), 64);
/// ```
#[derive(Clone)]
pub struct Mempool {
    owner: Arc<PoolOwner<()>>,
}

impl Mempool {
    /// Creates a pool as `cfg` says, its memory made device-visible by `mapper`.
    pub fn new(cfg: &PoolConfig, mapper: Arc<dyn IovaMapper>) -> Result<Self, Error> {
        Ok(Self {
            owner: PoolOwner::new(Pool::create(cfg, mapper)?),
        })
    }

    fn pool(&self) -> &Pool<()> {
        self.owner.pool()
    }

    /// One object, or `None` when the pool (as seen from this lcore) is empty.
    #[inline]
    pub fn get(&self) -> Option<DmaObj> {
        self.pool().take_one().map(|slot| DmaObj { slot })
    }

    /// Bulk: `n` objects appended to `out`, or none. Returns whether it did.
    pub fn get_bulk<const N: usize>(&self, out: &mut crate::Batch<DmaObj, N>, n: usize) -> bool {
        self.get_into(out, n, true) == n
    }

    /// Burst: up to `n` objects appended to `out`; returns how many.
    pub fn get_burst<const N: usize>(&self, out: &mut crate::Batch<DmaObj, N>, n: usize) -> usize {
        self.get_into(out, n, false)
    }

    fn get_into<const N: usize>(
        &self,
        out: &mut crate::Batch<DmaObj, N>,
        n: usize,
        exact: bool,
    ) -> usize {
        self.pool().take_into(out, n, exact, |slot| DmaObj { slot })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.pool().name()
    }

    /// How many objects it has.
    pub fn capacity(&self) -> usize {
        self.pool().capacity()
    }

    /// Bytes per object.
    pub fn obj_size(&self) -> usize {
        self.pool().obj_size()
    }

    /// Free objects, in the shared store and in every lcore cache (exact when quiescent).
    pub fn available(&self) -> usize {
        self.pool().available()
    }

    /// The per-lcore cache size.
    pub fn cache_size(&self) -> usize {
        self.pool().cache_size()
    }

    /// Hands the calling lcore's cached objects back to the shared store (for example
    /// before an lcore exits).
    pub fn flush_cache(&self) {
        self.pool().flush_current_cache();
    }

    /// The DMA region behind the objects.
    pub fn region(&self) -> &DmaRegion {
        self.pool().region()
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        pool_debug(self.pool(), "Mempool", f)
    }
}

/// An object of a [`Mempool`]; returns to it when dropped.
pub struct DmaObj {
    slot: NonNull<Slot<()>>,
}

// SAFETY: the handle owns its object exclusively and the pool is `Sync`; dropping it on
// another thread returns the object through that thread's path.
unsafe impl Send for DmaObj {}
// SAFETY: `&DmaObj` only reads the object.
unsafe impl Sync for DmaObj {}

impl DmaObj {
    #[inline]
    fn slot(&self) -> &Slot<()> {
        // SAFETY: the slot lives as long as the pool, which outlives its objects.
        unsafe { self.slot.as_ref() }
    }

    /// The object's IOVA (what a device is given).
    #[inline]
    pub fn iova(&self) -> Iova {
        self.slot().iova()
    }

    /// Its size in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.slot().pool().obj_size()
    }

    /// Always false: objects have a fixed, non-zero size.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its index in the pool.
    #[inline]
    pub fn index(&self) -> u32 {
        self.slot().index()
    }

    /// Raw pointer to its first byte, for handing to a device.
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.slot().va().as_ptr()
    }

    /// Its bytes. Only while no device is writing to it: the holder decides when it is
    /// given to a device and when it comes back.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the object is `len` bytes inside the region and owned by this handle.
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// Its bytes, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }
}

impl DmaObj {
    /// Returns a batch of objects to their pools, in bulk per run of objects from the same
    /// pool (cheaper than dropping them one by one). The batch is left empty.
    #[inline]
    pub fn free_bulk<const N: usize>(objs: &mut crate::Batch<DmaObj, N>) {
        free_bulk(objs);
    }
}

impl Handle for DmaObj {
    type Meta = ();

    #[inline(always)]
    fn slot_ptr(&self) -> NonNull<Slot<()>> {
        self.slot
    }
}

impl Drop for DmaObj {
    #[inline]
    fn drop(&mut self) {
        self.slot().pool().give_back_one(self.slot);
    }
}

impl fmt::Debug for DmaObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaObj")
            .field("index", &self.index())
            .field("iova", &self.iova())
            .finish()
    }
}
