//! Address newtypes: what a device puts on the bus ([`Iova`]) and what the memory controller
//! decodes ([`PhysAddr`]).
//!
//! Virtual addresses are raw pointers (`*const u8` / `NonNull<u8>`), never an integer, so the
//! three kinds of address cannot be mixed up. The only place one becomes another is an
//! [`IovaMapper`](crate::IovaMapper).

use std::fmt;

/// I/O virtual address: the address a device uses for DMA.
///
/// With an IOMMU (VFIO type1) it is whatever the IOMMU was told to translate, often equal to the
/// virtual address; in no-IOMMU mode it is the physical address. Only a [`DmaRegion`] knows
/// which, so drivers take IOVAs from it and never compute them.
///
/// [`DmaRegion`]: crate::DmaRegion
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Iova(pub u64);

/// Host physical address, as read from `/proc/self/pagemap`.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct PhysAddr(pub u64);

macro_rules! address_methods {
    ($name:ident) => {
        impl $name {
            /// The address as a plain integer, for a descriptor field or a register.
            #[inline]
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` if that does not fit in 64 bits.
            #[inline]
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(a) => Some(Self(a)),
                    None => None,
                }
            }

            /// `self + offset`, for an offset inside one mapping.
            ///
            /// Use it only to step within a single region whose start address this is (a
            /// buffer, a descriptor ring, one hugepage): there the sum cannot overflow and the
            /// result is meaningful. Addresses of different mappings are unrelated, so stepping
            /// from one into another gives a number, not an address. It never wraps: an
            /// overflow panics, because it means the caller broke that rule.
            ///
            /// Deliberately not `impl Add`: that could not be `const`, and `a + b` would hide
            /// the one-mapping rule.
            #[inline]
            #[track_caller]
            pub const fn add(self, offset: u64) -> Self {
                match self.0.checked_add(offset) {
                    Some(a) => Self(a),
                    None => panic!("address + offset overflows u64: offset outside its mapping"),
                }
            }
        }

        impl fmt::Display for $name {
            /// `0x` followed by lower-case hex, no padding.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_methods!(Iova);
address_methods!(PhysAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_prefixed_hex() {
        assert_eq!(Iova(0).to_string(), "0x0");
        assert_eq!(Iova(0x1_2345_6000).to_string(), "0x123456000");
        assert_eq!(PhysAddr(0xdead_beef).to_string(), "0xdeadbeef");
        assert_eq!(format!("{:08x}", Iova(0xab)), "000000ab");
    }

    #[test]
    fn arithmetic() {
        assert_eq!(Iova(0x1000).add(0x234), Iova(0x1234));
        assert_eq!(Iova(0x1000).add(0x234).as_u64(), 0x1234);
        assert_eq!(
            PhysAddr(u64::MAX - 1).checked_add(1),
            Some(PhysAddr(u64::MAX))
        );
        assert_eq!(PhysAddr(u64::MAX).checked_add(1), None);
        const ONE_PAGE_IN: Iova = Iova(0x20_0000).add(4096);
        assert_eq!(ONE_PAGE_IN, Iova(0x20_1000));
        assert!(Iova(1) < Iova(2));
        assert_eq!(Iova::default(), Iova(0));
    }

    #[test]
    #[should_panic(expected = "outside its mapping")]
    fn add_never_wraps() {
        let _ = Iova(u64::MAX).add(1);
    }
}
