//! `Batch`: a fixed-capacity inline array of owned items, the unit of every burst.
//!
//! Rings, ports and stages move items in batches (32 by default, as DPDK's bursts).
//! A `Batch` lives on the stack or inside an lcore's state; it never allocates.
//! Items are moved in and out by value, so a `PktBuf` has exactly one owner at a time.
//!
//! ```
//! use sluice_mempool::Batch;
//!
//! let mut batch: Batch<u64> = Batch::new();
//! for i in 0..4 {
//!     batch.push(i).unwrap();
//! }
//! // A consumer that accepts only the first three leaves the rest in place.
//! let taken: Vec<u64> = batch.drain_front(3).collect();
//! assert_eq!(taken, [0, 1, 2]);
//! assert_eq!(batch.as_slice(), &[3]);
//! ```

use core::fmt;
use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};
use core::ptr;

/// The default burst size: how many items one poll moves at most.
pub const DEFAULT_BURST: usize = 32;

/// A fixed-capacity array of up to `N` owned items, filled from the front.
///
/// Items `[0, len)` are initialised; the rest is spare capacity. Dropping the batch drops
/// the items it still holds (a `PktBuf` then goes back to its pool).
pub struct Batch<T, const N: usize = DEFAULT_BURST> {
    len: usize,
    items: [MaybeUninit<T>; N],
}

impl<T, const N: usize> Batch<T, N> {
    /// An empty batch.
    #[inline]
    pub const fn new() -> Self {
        Self {
            len: 0,
            items: [const { MaybeUninit::uninit() }; N],
        }
    }

    /// How many items it can hold.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// How many items it holds.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no item.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it is full.
    #[inline]
    pub const fn is_full(&self) -> bool {
        self.len == N
    }

    /// How many more items fit.
    #[inline]
    pub const fn remaining(&self) -> usize {
        N - self.len
    }

    /// Appends `item`, or hands it back when the batch is full.
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.items[self.len].write(item);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last item.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised (it was below the old length) and is now outside
        // `[0, len)`, so it is read exactly once.
        Some(unsafe { self.items[self.len].assume_init_read() })
    }

    /// The items, in order.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `[0, len)` is initialised and `MaybeUninit<T>` has the layout of `T`.
        unsafe { core::slice::from_raw_parts(self.items.as_ptr().cast::<T>(), self.len) }
    }

    /// The items, in order, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.items.as_mut_ptr().cast::<T>(), self.len) }
    }

    /// Drops every item.
    #[inline]
    pub fn clear(&mut self) {
        let len = self.len;
        // Zero the length first: if an item's `Drop` panics, the rest leak instead of
        // being dropped twice.
        self.len = 0;
        // SAFETY: `[0, len)` was initialised and is no longer reachable through `self`.
        unsafe {
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                self.items.as_mut_ptr().cast::<T>(),
                len,
            ))
        }
    }

    /// Moves the first `n` items (all of them if fewer) out, front to back; the items after
    /// them move to the front when the iterator is dropped. Items the iterator did not yield
    /// are dropped with it.
    ///
    /// This is the transmit contract: a device takes a prefix of the batch and the rest stays
    /// for the next attempt.
    #[inline]
    pub fn drain_front(&mut self, n: usize) -> DrainFront<'_, T, N> {
        let end = n.min(self.len);
        let tail_len = self.len - end;
        // Leak-safe like `Vec::drain`: while the iterator lives the batch looks empty.
        self.len = 0;
        DrainFront {
            batch: self,
            next: 0,
            end,
            tail_len,
        }
    }

    /// An iterator that moves every item out, front to back.
    #[inline]
    pub fn drain(&mut self) -> DrainFront<'_, T, N> {
        self.drain_front(N)
    }

    /// The uninitialised tail, to be filled in place before [`Batch::set_len`].
    #[inline]
    pub fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<T>] {
        &mut self.items[self.len..]
    }

    /// A pointer to the first item, for moving items out in bulk before [`Batch::consume_front`].
    #[inline]
    pub fn as_ptr(&self) -> *const T {
        self.items.as_ptr().cast::<T>()
    }

    /// Sets the length.
    ///
    /// # Safety
    /// `new_len <= N`, and items `[0, new_len)` are initialised (for example written through
    /// [`Batch::spare_capacity_mut`]). Items in `[new_len, old_len)` are forgotten, not dropped.
    #[inline]
    pub unsafe fn set_len(&mut self, new_len: usize) {
        debug_assert!(new_len <= N);
        self.len = new_len;
    }

    /// Forgets the first `n` items, which the caller has already moved out (through
    /// [`Batch::as_ptr`]), and moves the rest to the front.
    ///
    /// # Safety
    /// `n <= len`, and each of the first `n` items has been moved out with `ptr::read` (or is
    /// otherwise to be forgotten): they are not dropped here.
    #[inline]
    pub unsafe fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if rest > 0 && n > 0 {
            let base = self.items.as_mut_ptr();
            // SAFETY: both ranges lie inside `items`; `ptr::copy` allows overlap.
            unsafe { ptr::copy(base.add(n), base, rest) };
        }
        self.len = rest;
    }
}

impl<T, const N: usize> Default for Batch<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Drop for Batch<T, N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<T, const N: usize> Deref for Batch<T, N> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T, const N: usize> DerefMut for Batch<T, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for Batch<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T, const N: usize> Extend<T> for Batch<T, N> {
    /// Appends items until the batch is full; the iterator's remaining items are not consumed.
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        // The length lives in a local and is stored once: updating `self.len` per item
        // would chain every write on a store and reload of the same field.
        let mut len = self.len;
        let mut iter = iter.into_iter();
        while len < N {
            let Some(item) = iter.next() else { break };
            self.items[len].write(item);
            len += 1;
            // If `next` panics on a later round, the items written so far are leaked, not
            // dropped twice: `self.len` still says they are not there.
        }
        self.len = len;
    }
}

/// Moves a prefix out of a [`Batch`]; see [`Batch::drain_front`].
pub struct DrainFront<'a, T, const N: usize> {
    batch: &'a mut Batch<T, N>,
    next: usize,
    end: usize,
    tail_len: usize,
}

impl<T, const N: usize> Iterator for DrainFront<'_, T, N> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: `i < end <= old len`, so slot `i` is initialised; `next` moves past it, so
        // it is read once, and the batch's own length (0 meanwhile) no longer covers it.
        Some(unsafe { self.batch.items[i].assume_init_read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<T, const N: usize> ExactSizeIterator for DrainFront<'_, T, N> {}

impl<T, const N: usize> Drop for DrainFront<'_, T, N> {
    fn drop(&mut self) {
        // Drop what was not yielded, then move the untouched tail to the front.
        let base = self.batch.items.as_mut_ptr().cast::<T>();
        let unyielded = self.end - self.next;
        // SAFETY: `[next, end)` is initialised and was not moved out.
        unsafe {
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                base.add(self.next),
                unyielded,
            ))
        };
        if self.tail_len > 0 && self.end > 0 {
            // SAFETY: `[end, end + tail_len)` is initialised; `ptr::copy` allows overlap.
            unsafe { ptr::copy(base.add(self.end), base, self.tail_len) };
        }
        self.batch.len = self.tail_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn push_pop_and_capacity() {
        let mut b: Batch<u32, 4> = Batch::new();
        assert!(b.is_empty());
        for i in 0..4 {
            b.push(i).unwrap();
        }
        assert!(b.is_full());
        assert_eq!(b.push(9), Err(9));
        assert_eq!(b.pop(), Some(3));
        assert_eq!(b.as_slice(), &[0, 1, 2]);
        assert_eq!(b.remaining(), 1);
    }

    #[test]
    fn drain_front_keeps_the_rest_in_order() {
        let mut b: Batch<u32, 8> = Batch::new();
        b.extend(0..6);
        let got: Vec<u32> = b.drain_front(2).collect();
        assert_eq!(got, [0, 1]);
        assert_eq!(b.as_slice(), &[2, 3, 4, 5]);
        // Asking for more than there is takes everything.
        assert_eq!(b.drain_front(100).count(), 4);
        assert!(b.is_empty());
    }

    #[test]
    fn items_are_dropped_exactly_once() {
        let token = Rc::new(());
        let mut b: Batch<Rc<()>, 8> = Batch::new();
        b.extend(std::iter::repeat_with(|| token.clone()).take(8));
        assert_eq!(Rc::strong_count(&token), 9);
        // A partially consumed drain drops what it did not yield.
        let mut d = b.drain_front(5);
        drop(d.next());
        drop(d);
        assert_eq!(Rc::strong_count(&token), 4);
        assert_eq!(b.len(), 3);
        drop(b.pop());
        drop(b);
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn consume_front_after_moving_out() {
        let mut b: Batch<String, 4> = Batch::new();
        b.extend(["a", "b", "c"].map(String::from));
        // SAFETY: reads item 0 once, then tells the batch it is gone.
        let first = unsafe { b.as_ptr().read() };
        // SAFETY: item 0 was moved out above.
        unsafe { b.consume_front(1) };
        assert_eq!(first, "a");
        assert_eq!(b.as_slice(), &["b".to_string(), "c".to_string()]);
    }

    #[test]
    fn extend_stops_at_capacity() {
        let mut b: Batch<u8, 3> = Batch::new();
        let mut src = 0..10u8;
        b.extend(&mut src);
        assert_eq!(b.as_slice(), &[0, 1, 2]);
        assert_eq!(
            src.next(),
            Some(3),
            "items that did not fit are not consumed"
        );
    }
}
