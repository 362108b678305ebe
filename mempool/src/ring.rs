//! A lock-free single-producer single-consumer ring of owned items.
//!
//! [`ring`] splits a power-of-two ring into a [`Producer`] and a [`Consumer`]. Each handle is
//! `Send` and not `Clone`, so exactly one thread pushes and one pops; that is what lets both
//! sides work with plain loads and stores plus one Release store per burst.
//!
//! Design (DPDK's `rte_ring` SP/SC, rtrb's cached indices):
//! - `head` (next slot to pop) and `tail` (next slot to push) are free-running `usize`
//!   counters on their own cache lines; the slot is `index & mask`.
//! - Each side keeps a private copy of the other side's index and rereads the shared one
//!   only when the copy says the ring is full (producer) or empty (consumer), so in steady
//!   state a burst touches one shared cache line written by the other core.
//! - A burst moves as many items as fit (best effort); a bulk moves all or none.
//! - Items still inside when both handles are gone are dropped with the ring.
//!
//! Memory orderings, in pairs:
//! - **R1/A1**: the producer writes slots, then publishes them with a Release store of `tail`
//!   (R1); the consumer's Acquire load of `tail` (A1) makes those slot writes visible before
//!   it reads the slots.
//! - **R2/A2**: the consumer moves items out of slots, then frees them with a Release store of
//!   `head` (R2); the producer's Acquire load of `head` (A2) orders the consumer's reads
//!   before the producer overwrites the slots.
//!
//! ```
//! use sluice_mempool::ring::ring;
//! use sluice_mempool::Batch;
//!
//! let (mut tx, mut rx) = ring::<u64>(1024).unwrap();
//! let mut out: Batch<u64> = Batch::new();
//! out.extend(0..32);
//! assert_eq!(tx.push_burst(&mut out), 32);
//! let mut back: Batch<u64> = Batch::new();
//! assert_eq!(rx.pop_burst(&mut back, 32), 32);
//! assert_eq!(back[31], 31);
//! ```

use core::fmt;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::batch::Batch;
use crate::sync::{AtomicUsize, Ordering};
use slots::SlotArray;

mod slots;

#[cfg(loom)]
use loom::sync::Arc;
#[cfg(not(loom))]
use std::sync::Arc;

/// The largest capacity [`ring`] accepts.
pub const MAX_CAPACITY: usize = 1 << 30;

/// The ring was full: the item comes back to the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is full")
    }
}

impl<T> std::error::Error for Full<T> {}

/// A ring capacity that is zero, not a power of two, or over [`MAX_CAPACITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring capacity {0} is not a power of two between 1 and {MAX_CAPACITY}")]
pub struct BadCapacity(pub usize);

struct Shared<T> {
    /// Next index to pop; written by the consumer only.
    head: CachePadded<AtomicUsize>,
    /// Next index to push; written by the producer only.
    tail: CachePadded<AtomicUsize>,
    slots: SlotArray<T>,
}

// SAFETY: the ring moves `T`s between threads, so `T: Send` is required and sufficient: no
// `&T` is ever shared; each slot is accessed by one side at a time, as the index protocol
// (R1/A1, R2/A2 in the module docs) guarantees.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the shared state owns `T`s and hands them over by value.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both handles are gone (this is the last `Arc`), so nobody else touches the indices.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let mask = self.slots.len() - 1;
        let mut i = head;
        while i != tail {
            // SAFETY: slots in `[head, tail)` hold initialised items that were pushed and
            // never popped; each is dropped once.
            self.slots[i & mask].with_mut(|p| unsafe { (*p).assume_init_drop() });
            i = i.wrapping_add(1);
        }
    }
}

/// Creates a ring with room for `capacity` items (a power of two), split into its two ends.
pub fn ring<T: Send>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), BadCapacity> {
    if capacity == 0 || !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
        return Err(BadCapacity(capacity));
    }
    let slots = SlotArray::new(capacity);
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
    });
    let mask = capacity - 1;
    Ok((
        Producer {
            shared: shared.clone(),
            tail: 0,
            cached_head: 0,
            mask,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
            mask,
        },
    ))
}

/// The pushing end of a [`ring`]. `Send`, not `Clone`: one thread pushes.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own `tail`, the value last published.
    tail: usize,
    /// The consumer's `head` as last read; the real one is never behind it.
    cached_head: usize,
    mask: usize,
}

/// The popping end of a [`ring`]. `Send`, not `Clone`: one thread pops.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own `head`, the value last published.
    head: usize,
    /// The producer's `tail` as last read; the real one is never behind it.
    cached_tail: usize,
    mask: usize,
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail)
            .finish()
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .finish()
    }
}

impl<T> Producer<T> {
    /// How many items the ring holds at most.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Free slots, rereading the consumer's index only if fewer than `want` look free.
    #[inline]
    fn free_slots(&mut self, want: usize) -> usize {
        let cap = self.mask + 1;
        let free = cap - self.tail.wrapping_sub(self.cached_head);
        if free >= want {
            return free;
        }
        // A2: pairs with R2 in `Consumer::publish_head`.
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        cap - self.tail.wrapping_sub(self.cached_head)
    }

    /// How many items can be pushed now without failing.
    #[inline]
    pub fn slots(&mut self) -> usize {
        self.free_slots(usize::MAX)
    }

    /// Whether the consumer has been dropped (items pushed now would never be popped).
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) < 2
    }

    #[inline]
    fn publish_tail(&mut self, n: usize) {
        self.tail = self.tail.wrapping_add(n);
        // R1: pairs with A1 in `Consumer::ready_slots`; the slot writes above become visible
        // before the consumer sees the new tail.
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    /// Moves `n` items from `src` into the slots at `tail`, in at most two contiguous runs.
    ///
    /// # Safety
    /// `n` slots are free, and `src[0..n]` holds initialised items that the caller gives up.
    #[inline]
    unsafe fn write_slots(&mut self, src: *const T, n: usize) {
        let start = self.tail & self.mask;
        let first = n.min(self.mask + 1 - start);
        for (k, slot) in self.shared.slots[start..start + first].iter().enumerate() {
            // SAFETY: the slot is free (caller), so the consumer does not touch it until R1;
            // `src.add(k)` is in bounds and read once.
            slot.with_mut(|p| unsafe { (*p).write(src.add(k).read()) });
        }
        for (k, slot) in self.shared.slots[..n - first].iter().enumerate() {
            // SAFETY: as above, for the run that wrapped to slot 0.
            slot.with_mut(|p| unsafe { (*p).write(src.add(first + k).read()) });
        }
    }

    /// Pushes one item, or hands it back in [`Full`].
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), Full<T>> {
        if self.free_slots(1) == 0 {
            return Err(Full(item));
        }
        let item = MaybeUninit::new(item);
        // SAFETY: one slot is free; `item` is read once and then forgotten (`MaybeUninit`).
        unsafe { self.write_slots(item.as_ptr(), 1) };
        self.publish_tail(1);
        Ok(())
    }

    /// Burst: moves as many items as fit from the front of `src`, leaving the rest there.
    /// Returns how many moved.
    #[inline]
    pub fn push_burst<const N: usize>(&mut self, src: &mut Batch<T, N>) -> usize {
        let n = src.len().min(self.free_slots(src.len()));
        if n == 0 {
            return 0;
        }
        // SAFETY: `n` slots are free and `src[0..n]` is initialised; `consume_front` then
        // forgets exactly those items.
        unsafe {
            self.write_slots(src.as_ptr(), n);
            src.consume_front(n);
        }
        self.publish_tail(n);
        n
    }

    /// Bulk: moves every item of `src`, or none if they do not all fit. Returns whether it did.
    #[inline]
    pub fn push_bulk<const N: usize>(&mut self, src: &mut Batch<T, N>) -> bool {
        let n = src.len();
        if self.free_slots(n) < n {
            return false;
        }
        // SAFETY: `n` slots are free and `src[0..n]` is initialised and then forgotten.
        unsafe {
            self.write_slots(src.as_ptr(), n);
            src.consume_front(n);
        }
        self.publish_tail(n);
        true
    }

    /// In-place burst: moves items from `items` straight into the slots until the ring is
    /// full or the iterator ends; returns how many. Items the iterator still holds stay there.
    ///
    /// No intermediate copy: a producer that makes its items as it goes (a generator, a
    /// `Batch::drain`) writes each one once.
    #[inline]
    pub fn push_iter<I: Iterator<Item = T>>(&mut self, items: &mut I) -> usize {
        // The iterator's lower bound is what we expect to write: reread the consumer's index
        // only if fewer slots than that look free.
        let free = self.free_slots(items.size_hint().0.max(1));
        let start = self.tail & self.mask;
        let first = free.min(self.mask + 1 - start);
        let slots = &self.shared.slots;
        let mut n = 0;
        for slot in slots[start..start + first]
            .iter()
            .chain(&slots[..free - first])
        {
            let Some(item) = items.next() else { break };
            // SAFETY: the slot is free (one of the first `free` after `tail`) and unpublished.
            slot.with_mut(|p| unsafe { (*p).write(item) });
            n += 1;
        }
        if n > 0 {
            self.publish_tail(n);
        }
        n
    }
}

impl<T: Copy> Producer<T> {
    /// Burst over a slice of `Copy` items: copies as many as fit, returns how many.
    #[inline]
    pub fn push_slice_burst(&mut self, items: &[T]) -> usize {
        let n = items.len().min(self.free_slots(items.len()));
        if n > 0 {
            // SAFETY: `n` slots are free; `T: Copy`, so reading from the slice gives nothing up.
            unsafe { self.write_slots(items.as_ptr(), n) };
            self.publish_tail(n);
        }
        n
    }

    /// Bulk over a slice of `Copy` items: all or nothing.
    #[inline]
    pub fn push_slice_bulk(&mut self, items: &[T]) -> bool {
        let n = items.len();
        if self.free_slots(n) < n {
            return false;
        }
        // SAFETY: as in `push_slice_burst`.
        unsafe { self.write_slots(items.as_ptr(), n) };
        self.publish_tail(n);
        true
    }
}

impl<T> Consumer<T> {
    /// How many items the ring holds at most.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Filled slots, rereading the producer's index only if fewer than `want` look ready.
    #[inline]
    fn ready_slots(&mut self, want: usize) -> usize {
        let ready = self.cached_tail.wrapping_sub(self.head);
        if ready >= want {
            return ready;
        }
        // A1: pairs with R1 in `Producer::publish_tail`.
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.cached_tail.wrapping_sub(self.head)
    }

    /// How many items can be popped now.
    #[inline]
    pub fn len(&mut self) -> usize {
        self.ready_slots(usize::MAX)
    }

    /// Whether nothing can be popped now.
    #[inline]
    pub fn is_empty(&mut self) -> bool {
        self.ready_slots(1) == 0
    }

    /// Whether the producer has been dropped (nothing more will arrive after what is inside).
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) < 2
    }

    #[inline]
    fn publish_head(&mut self, n: usize) {
        self.head = self.head.wrapping_add(n);
        // R2: pairs with A2 in `Producer::free_slots`; our reads of the slots above happen
        // before the producer may overwrite them.
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// Moves `n` items out of the slots at `head` into `dst`, in at most two contiguous runs.
    ///
    /// # Safety
    /// `n` slots are ready (published by the producer) and `dst` has room for `n` items.
    #[inline]
    unsafe fn read_slots(&mut self, dst: *mut T, n: usize) {
        let start = self.head & self.mask;
        let first = n.min(self.mask + 1 - start);
        for (k, slot) in self.shared.slots[start..start + first].iter().enumerate() {
            // SAFETY: the slot holds an item published by R1 (seen through A1); it is moved
            // out once, and `head` moves past it before the producer may reuse it.
            slot.with(|p| unsafe { dst.add(k).write((*p).assume_init_read()) });
        }
        for (k, slot) in self.shared.slots[..n - first].iter().enumerate() {
            // SAFETY: as above, for the run that wrapped to slot 0.
            slot.with(|p| unsafe { dst.add(first + k).write((*p).assume_init_read()) });
        }
    }

    /// Pops one item.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.ready_slots(1) == 0 {
            return None;
        }
        let mut item = MaybeUninit::uninit();
        // SAFETY: one slot is ready; `item` has room for one.
        unsafe { self.read_slots(item.as_mut_ptr(), 1) };
        self.publish_head(1);
        // SAFETY: `read_slots` initialised it.
        Some(unsafe { item.assume_init() })
    }

    /// Burst: appends up to `max` items (and no more than `dst` has room for) to `dst`.
    /// Returns how many.
    #[inline]
    pub fn pop_burst<const N: usize>(&mut self, dst: &mut Batch<T, N>, max: usize) -> usize {
        let want = max.min(dst.remaining());
        let n = want.min(self.ready_slots(want));
        if n == 0 {
            return 0;
        }
        let len = dst.len();
        // SAFETY: `n` slots are ready, the spare capacity has room for `n` (n <= remaining),
        // and after the move `[0, len + n)` is initialised.
        unsafe {
            self.read_slots(dst.spare_capacity_mut().as_mut_ptr().cast::<T>(), n);
            dst.set_len(len + n);
        }
        self.publish_head(n);
        n
    }

    /// Bulk: appends exactly `n` items to `dst`, or none if fewer are ready or `dst` lacks
    /// room. Returns whether it did.
    #[inline]
    pub fn pop_bulk<const N: usize>(&mut self, dst: &mut Batch<T, N>, n: usize) -> bool {
        if n > dst.remaining() || self.ready_slots(n) < n {
            return false;
        }
        let len = dst.len();
        // SAFETY: as in `pop_burst`.
        unsafe {
            self.read_slots(dst.spare_capacity_mut().as_mut_ptr().cast::<T>(), n);
            dst.set_len(len + n);
        }
        self.publish_head(n);
        true
    }
}

impl<T> Consumer<T> {
    /// In-place burst: moves up to `max` items out of the slots, front to back, into `f`;
    /// returns how many. No intermediate copy: a consumer that processes items one by one
    /// reads each slot once.
    ///
    /// If `f` panics, the items it already took are accounted for and the rest stay in the
    /// ring.
    #[inline]
    pub fn pop_each(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let n = max.min(self.ready_slots(max));
        if n == 0 {
            return 0;
        }
        let start = self.head & self.mask;
        let first = n.min(self.mask + 1 - start);
        // Split the borrow: the slots are read through `shared` while `progress` owns the
        // right to move `head`.
        let Consumer { shared, head, .. } = self;
        let mut progress = PopProgress {
            head,
            shared_head: &shared.head,
            taken: 0,
        };
        for slot in shared.slots[start..start + first]
            .iter()
            .chain(&shared.slots[..n - first])
        {
            // SAFETY: the slot is one of the `n` ready ones after `head` (published by R1,
            // seen through A1); it is read once, and `progress` moves `head` past it even if
            // `f` unwinds, so it is never read or dropped again.
            let item = slot.with(|p| unsafe { (*p).assume_init_read() });
            progress.taken += 1;
            f(item);
        }
        n
    }
}

/// Publishes what `pop_each` took, also when its callback unwinds.
struct PopProgress<'a> {
    head: &'a mut usize,
    shared_head: &'a AtomicUsize,
    taken: usize,
}

impl Drop for PopProgress<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.taken > 0 {
            *self.head = self.head.wrapping_add(self.taken);
            // R2, as in `Consumer::publish_head`.
            self.shared_head.store(*self.head, Ordering::Release);
        }
    }
}

impl<T: Copy> Consumer<T> {
    /// In-place burst for `Copy` items: hands up to `max` ready items to `f` where they lie,
    /// as two slices (the second is non-empty when the run wraps past the end of the ring),
    /// then releases their slots. Returns how many items that was, and what `f` returned.
    ///
    /// No copy at all: the consumer reads the slots themselves, as rtrb's `read_chunk` does.
    #[cfg(not(loom))]
    #[inline]
    pub fn consume_slices<R>(&mut self, max: usize, f: impl FnOnce(&[T], &[T]) -> R) -> (usize, R) {
        let n = max.min(self.ready_slots(max));
        let start = self.head & self.mask;
        let first = n.min(self.mask + 1 - start);
        // `Slot<T>` is `UnsafeCell<MaybeUninit<T>>`, both `repr(transparent)`: a run of slots
        // is laid out as a run of `T`.
        let base = self.shared.slots.as_ptr().cast::<T>();
        // SAFETY: the `n` slots after `head` hold items published by R1 and seen through A1;
        // the producer does not write them until `head` moves past them (R2, after `f`), so
        // shared slices of them are valid for the call; `first <= n` and `n - first` stay
        // within the slot array.
        let (a, b) = unsafe {
            (
                core::slice::from_raw_parts(base.add(start), first),
                core::slice::from_raw_parts(base, n - first),
            )
        };
        let out = f(a, b);
        if n > 0 {
            self.publish_head(n);
        }
        (n, out)
    }

    /// Burst into a slice of `Copy` items: fills a prefix of `out`, returns its length.
    #[inline]
    pub fn pop_slice_burst(&mut self, out: &mut [T]) -> usize {
        let n = out.len().min(self.ready_slots(out.len()));
        if n > 0 {
            // SAFETY: `n` slots are ready and `out` has room for `n`; overwriting `Copy`
            // items needs no drop.
            unsafe { self.read_slots(out.as_mut_ptr(), n) };
            self.publish_head(n);
        }
        n
    }

    /// Bulk into a slice of `Copy` items: fills all of `out`, or nothing.
    #[inline]
    pub fn pop_slice_bulk(&mut self, out: &mut [T]) -> bool {
        let n = out.len();
        if self.ready_slots(n) < n {
            return false;
        }
        // SAFETY: as in `pop_slice_burst`.
        unsafe { self.read_slots(out.as_mut_ptr(), n) };
        self.publish_head(n);
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
