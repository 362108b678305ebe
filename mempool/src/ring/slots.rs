//! The ring's slot storage, aligned to a cache-line pair.
//!
//! A burst of 32 eight-byte items is 256 bytes: four cache lines when the slots start on a
//! line, five when they start mid-line (as a plain `Box<[T]>` from the allocator does), and
//! every extra line is one more transfer between the producer's and consumer's cores. The
//! 128-byte alignment also keeps the adjacent-line prefetcher from pairing the first slots
//! with unrelated data.

use core::mem::MaybeUninit;
use core::ops::Deref;

use crate::sync::UnsafeCell;

/// Alignment of the slot array.
const ALIGN: usize = 128;

pub(super) type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// `capacity` slots, 128-byte aligned, freed (not dropped: the ring drops live items) with it.
pub(super) struct SlotArray<T> {
    #[cfg(not(loom))]
    ptr: core::ptr::NonNull<Slot<T>>,
    #[cfg(not(loom))]
    len: usize,
    // loom's cells are not plain memory and their alignment does not matter to the model.
    #[cfg(loom)]
    slots: Box<[Slot<T>]>,
}

#[cfg(not(loom))]
impl<T> SlotArray<T> {
    fn layout(len: usize) -> std::alloc::Layout {
        // Cannot fail for ring capacities (at most 2^30 slots of a sized type that fits memory).
        std::alloc::Layout::array::<Slot<T>>(len)
            .and_then(|l| l.align_to(ALIGN))
            .expect("ring slot array layout")
    }

    pub(super) fn new(len: usize) -> Self {
        let layout = Self::layout(len);
        if layout.size() == 0 {
            return Self {
                ptr: core::ptr::NonNull::dangling(),
                len,
            };
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = core::ptr::NonNull::new(raw.cast::<Slot<T>>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        // Slots are `MaybeUninit`, so uninitialised memory is a valid value for them.
        Self { ptr, len }
    }
}

#[cfg(not(loom))]
impl<T> Drop for SlotArray<T> {
    fn drop(&mut self) {
        let layout = Self::layout(self.len);
        if layout.size() != 0 {
            // SAFETY: allocated in `new` with this very layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

#[cfg(not(loom))]
impl<T> Deref for SlotArray<T> {
    type Target = [Slot<T>];
    #[inline(always)]
    fn deref(&self) -> &[Slot<T>] {
        // SAFETY: `ptr` points to `len` slots (or is dangling for zero-sized ones), valid
        // for as long as `self`; the slots are cells, so sharing them is fine.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(loom)]
impl<T> SlotArray<T> {
    pub(super) fn new(len: usize) -> Self {
        Self {
            slots: (0..len)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        }
    }
}

#[cfg(loom)]
impl<T> Deref for SlotArray<T> {
    type Target = [Slot<T>];
    fn deref(&self) -> &[Slot<T>] {
        &self.slots
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn slots_start_on_a_cache_line_pair() {
        for len in [1, 2, 1024] {
            let a = SlotArray::<u64>::new(len);
            assert_eq!(a.as_ptr() as usize % ALIGN, 0);
            assert_eq!(a.len(), len);
        }
        // Zero-sized items allocate nothing.
        assert_eq!(SlotArray::<()>::new(8).len(), 8);
    }
}
