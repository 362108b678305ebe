//! Lcore identity: which lcore, if any, the current thread is.
//!
//! A pool keeps one object cache per lcore (as `rte_mempool` does), and a buffer freed on
//! an lcore goes to that lcore's cache. The cache is touched without atomics by its owner,
//! so an lcore id must belong to at most one thread at a time: [`register`] claims it
//! process-wide and the returned [`LcoreGuard`] (not `Send`) releases it when the thread is
//! done. Threads that never register (a control thread, a stats thread) still get and free
//! objects, through the pool's shared store.
//!
//! ```
//! use sluice_mempool::lcore::{self, LcoreId};
//!
//! std::thread::spawn(|| {
//!     let _guard = lcore::register(LcoreId::new(7).unwrap()).unwrap();
//!     assert_eq!(lcore::current(), Some(LcoreId::new(7).unwrap()));
//!     // ... poll queues; buffers dropped here go to lcore 7's cache of their pool ...
//! })
//! .join()
//! .unwrap();
//! ```

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many lcores a process may have (each pool has one cache per lcore).
pub const MAX_LCORES: usize = 64;

const NO_LCORE: u32 = u32::MAX;

/// An lcore number, below [`MAX_LCORES`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LcoreId(u16);

impl LcoreId {
    /// The id `n`, if it is below [`MAX_LCORES`].
    pub const fn new(n: usize) -> Option<Self> {
        if n < MAX_LCORES {
            Some(Self(n as u16))
        } else {
            None
        }
    }

    /// The id as an index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

/// Why [`register`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another thread holds this id; each lcore id belongs to one thread at a time.
    #[error("{0} is already registered by another thread")]
    Taken(LcoreId),
    /// This thread already is an lcore; drop its guard first.
    #[error("this thread is already registered as {0}")]
    AlreadyRegistered(LcoreId),
}

static CLAIMED: [AtomicBool; MAX_LCORES] = [const { AtomicBool::new(false) }; MAX_LCORES];

thread_local! {
    static CURRENT: Cell<u32> = const { Cell::new(NO_LCORE) };
}

/// Makes the calling thread lcore `id` until the guard is dropped.
pub fn register(id: LcoreId) -> Result<LcoreGuard, RegisterError> {
    if let Some(current) = current() {
        return Err(RegisterError::AlreadyRegistered(current));
    }
    // Acquire pairs with the Release in `LcoreGuard::drop`: the previous owner's cache
    // accesses happen before ours.
    if CLAIMED[id.index()]
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Err(RegisterError::Taken(id));
    }
    CURRENT.with(|c| c.set(u32::from(id.0)));
    Ok(LcoreGuard {
        id,
        _not_send: PhantomData,
    })
}

/// The calling thread's lcore, if it registered one.
#[inline]
pub fn current() -> Option<LcoreId> {
    let n = CURRENT.with(Cell::get);
    if n == NO_LCORE {
        None
    } else {
        Some(LcoreId(n as u16))
    }
}

/// The calling thread's lcore as a cache index (the pools' fast path).
#[inline]
pub(crate) fn current_index() -> Option<usize> {
    let n = CURRENT.with(Cell::get);
    if n == NO_LCORE {
        None
    } else {
        Some(n as usize)
    }
}

/// Proof that the current thread is an lcore; dropping it releases the id.
///
/// Objects the lcore left in pool caches stay there and serve the next thread that
/// registers the same id (call `flush_cache` on a pool to hand them back first).
#[derive(Debug)]
pub struct LcoreGuard {
    id: LcoreId,
    // Not `Send`: the id is bound to this thread's thread-local state.
    _not_send: PhantomData<*const ()>,
}

impl LcoreGuard {
    /// The id this guard holds.
    pub fn id(&self) -> LcoreId {
        self.id
    }
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(NO_LCORE));
        // Release pairs with the Acquire in `register`.
        CLAIMED[self.id.index()].store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test uses its own ids: the registry is process-wide and tests run in parallel.
    #[test]
    fn one_thread_per_id_and_one_id_per_thread() {
        let id = LcoreId::new(60).unwrap();
        let g = register(id).unwrap();
        assert_eq!(current(), Some(id));
        assert_eq!(
            register(LcoreId::new(61).unwrap()).unwrap_err(),
            RegisterError::AlreadyRegistered(id)
        );
        let other = std::thread::spawn(move || register(id).map(|_| ()).unwrap_err())
            .join()
            .unwrap();
        assert_eq!(other, RegisterError::Taken(id));
        drop(g);
        assert_eq!(current(), None);
        std::thread::spawn(move || assert!(register(id).is_ok()))
            .join()
            .unwrap();
    }

    #[test]
    fn ids_are_bounded() {
        assert!(LcoreId::new(MAX_LCORES).is_none());
        assert_eq!(LcoreId::new(3).unwrap().to_string(), "lcore 3");
        assert!(
            RegisterError::Taken(LcoreId(3))
                .to_string()
                .contains("lcore 3")
        );
    }
}
