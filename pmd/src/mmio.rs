//! [`MmioRegion`]: the one way this crate touches device registers, and [`MmioError`], the
//! one way such an access fails.
//!
//! A region is a mapped BAR (or, for tests, a zeroed heap block that plays one), reached
//! through [`Registers`]. Every access is a single volatile load or store of the access's
//! width at an offset that is checked against the region's length and the width's natural
//! alignment, so that a bad offset computed from device input is an
//! [`MmioError::OutOfBounds`], never a stray access. Nothing else in the crate calls
//! `read_volatile` or `write_volatile` on device memory.
//!
//! Registers are little-endian (PCI); the accessors convert, so callers deal in host values.
//! 64-bit registers are two 32-bit accesses, low half first ([`Registers::read64`]).

use std::fmt;
use std::ptr::NonNull;

use crate::regs::Registers;
use crate::vfio::sys::Mmap;

/// A register access that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MmioError {
    /// The access falls outside the register block or is not naturally aligned: a driver bug
    /// or an offset taken from the device unchecked. Nothing was read or written.
    #[error("MMIO {width}-byte access at {offset:#x} outside a {len:#x}-byte region or unaligned")]
    OutOfBounds {
        /// Offset asked for.
        offset: usize,
        /// Width in bytes.
        width: usize,
        /// The block's length.
        len: usize,
    },

    /// The register at `offset` does not take accesses of this width (a device model refuses
    /// them rather than guess what hardware would do). Nothing was written.
    #[error(
        "MMIO {width}-byte access at {offset:#x}: the register takes only {takes}-byte accesses"
    )]
    Width {
        /// Offset asked for.
        offset: usize,
        /// Width in bytes.
        width: usize,
        /// The width the register takes.
        takes: usize,
    },
}

/// A mapped register block with bounds-checked volatile access.
///
/// Obtained from [`Device::map_bar`](crate::vfio::Device::map_bar), or from
/// [`MmioRegion::heap`] in tests. Accesses go through `&self`: device registers are not Rust
/// memory, and a driver may share a region between the control path and its queues (each
/// queue writing only its own doorbell).
pub struct MmioRegion {
    base: NonNull<u8>,
    len: usize,
    backing: Backing,
}

enum Backing {
    /// A `MAP_SHARED` mapping of a BAR; unmapped when dropped.
    Mapped(#[allow(dead_code)] Mmap),
    /// A heap block of `u64`s from `Box::into_raw`, freed in `Drop`.
    Heap(NonNull<[u64]>),
}

// SAFETY: an `MmioRegion` owns its mapping (or heap block) and hands out no references into
// it: every access is a volatile load or store through a raw pointer, which is as valid from
// one thread as from another. Concurrent stores to the same register are a protocol question
// (one writer per doorbell), not a memory-safety one.
unsafe impl Send for MmioRegion {}
// SAFETY: as above; `&self` methods only perform volatile accesses of primitive widths.
unsafe impl Sync for MmioRegion {}

impl MmioRegion {
    /// A region over a BAR mapping; it unmaps the BAR when dropped.
    pub(crate) fn from_mmap(map: Mmap) -> Self {
        MmioRegion {
            base: map.as_ptr(),
            len: map.len(),
            backing: Backing::Mapped(map),
        }
    }

    /// A zeroed region of `len` bytes (rounded up to 8) on the heap, standing in for a BAR in
    /// tests of register-level code.
    pub fn heap(len: usize) -> Self {
        let words = len.div_ceil(8).max(1);
        let block: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let raw = NonNull::from(Box::leak(block));
        MmioRegion {
            base: raw.cast::<u8>(),
            len,
            backing: Backing::Heap(raw),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never, for a mapped BAR).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks `offset` for a `width`-byte access and returns the pointer.
    #[inline]
    fn at(&self, offset: usize, width: usize) -> Result<*mut u8, MmioError> {
        let fits = offset.checked_add(width).is_some_and(|end| end <= self.len);
        if !fits || !offset.is_multiple_of(width) {
            return Err(MmioError::OutOfBounds {
                offset,
                width,
                len: self.len,
            });
        }
        // `offset + width <= len`, so the result is within (or one past) the region.
        Ok(self.base.as_ptr().wrapping_add(offset))
    }
}

impl Registers for MmioRegion {
    #[inline]
    fn removed(&self) -> bool {
        match &self.backing {
            Backing::Mapped(m) => m.removed(),
            Backing::Heap(_) => false,
        }
    }

    #[inline]
    fn read8(&self, offset: usize) -> Result<u8, MmioError> {
        let p = self.at(offset, 1)?;
        // SAFETY: `at` checked that the byte lies inside the region, which stays mapped while
        // `self` lives.
        Ok(unsafe { p.read_volatile() })
    }

    #[inline]
    fn read16(&self, offset: usize) -> Result<u16, MmioError> {
        let p = self.at(offset, 2)?.cast::<u16>();
        // SAFETY: in bounds and 2-byte aligned (the base is page- or 8-byte aligned and `at`
        // checked `offset % 2 == 0`); the region stays mapped while `self` lives.
        Ok(u16::from_le(unsafe { p.read_volatile() }))
    }

    #[inline]
    fn read32(&self, offset: usize) -> Result<u32, MmioError> {
        let p = self.at(offset, 4)?.cast::<u32>();
        // SAFETY: in bounds and 4-byte aligned, as checked by `at`; mapped while `self` lives.
        Ok(u32::from_le(unsafe { p.read_volatile() }))
    }

    #[inline]
    fn write8(&self, offset: usize, value: u8) -> Result<(), MmioError> {
        let p = self.at(offset, 1)?;
        // SAFETY: in bounds (checked by `at`); mapped while `self` lives.
        unsafe { p.write_volatile(value) };
        Ok(())
    }

    #[inline]
    fn write16(&self, offset: usize, value: u16) -> Result<(), MmioError> {
        let p = self.at(offset, 2)?.cast::<u16>();
        // SAFETY: in bounds and aligned (checked by `at`); mapped while `self` lives.
        unsafe { p.write_volatile(value.to_le()) };
        Ok(())
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        let p = self.at(offset, 4)?.cast::<u32>();
        // SAFETY: in bounds and aligned (checked by `at`); mapped while `self` lives.
        unsafe { p.write_volatile(value.to_le()) };
        Ok(())
    }
}

impl Drop for MmioRegion {
    fn drop(&mut self) {
        if let Backing::Heap(raw) = self.backing {
            // SAFETY: `raw` came from `Box::leak` in `heap` and is freed only here, once.
            drop(unsafe { Box::from_raw(raw.as_ptr()) });
        }
        // A `Mapped` backing unmaps itself when the field drops.
    }
}

impl fmt::Debug for MmioRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmioRegion")
            .field("base", &self.base)
            .field("len", &format_args!("{:#x}", self.len))
            .field(
                "backing",
                &match self.backing {
                    Backing::Mapped(_) => "bar",
                    Backing::Heap(_) => "heap",
                },
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_trip_little_endian() {
        let region = MmioRegion::heap(64);
        let r: &dyn Registers = &region;
        r.write32(0, 0x1122_3344).unwrap();
        assert_eq!(r.read8(0).unwrap(), 0x44);
        assert_eq!(r.read16(2).unwrap(), 0x1122);
        r.write64(8, 0xdead_beef_0bad_f00d).unwrap();
        assert_eq!(
            r.read32(8).unwrap(),
            0x0bad_f00d,
            "low half first in memory"
        );
        assert_eq!(r.read32(12).unwrap(), 0xdead_beef);
        assert_eq!(r.read64(8).unwrap(), 0xdead_beef_0bad_f00d);
        r.write16(16, 0xabcd).unwrap();
        r.write8(18, 0x7f).unwrap();
        assert_eq!(r.read32(16).unwrap(), 0x007f_abcd);
    }

    #[test]
    fn out_of_bounds_and_unaligned_are_errors() {
        let region = MmioRegion::heap(16);
        let r: &dyn Registers = &region;
        assert_eq!(
            r.read32(16),
            Err(MmioError::OutOfBounds {
                offset: 16,
                width: 4,
                len: 16
            })
        );
        assert!(r.read32(13).is_err(), "straddles the end");
        assert!(r.read32(2).is_err(), "unaligned");
        assert!(r.read64(12).is_err());
        assert!(r.write64(8, 1).is_ok());
        assert!(r.write16(usize::MAX - 1, 0).is_err(), "no overflow");
        assert!(r.read8(15).is_ok());
        assert_eq!(
            r.read32(16).unwrap_err().to_string(),
            "MMIO 4-byte access at 0x10 outside a 0x10-byte region or unaligned"
        );
        assert_eq!(
            region.read32(16).unwrap_err().to_string(),
            "MMIO 4-byte access at 0x10 outside a 0x10-byte region or unaligned",
            "the crate-wide error says the same"
        );
    }

    #[test]
    fn a_region_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MmioRegion>();
    }
}
