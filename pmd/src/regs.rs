//! [`Registers`]: the one trait through which drivers reach a device's registers.
//!
//! A driver is generic over it, so the same code runs against a mapped BAR
//! ([`MmioRegion`](crate::MmioRegion)) and against a software model of the device in tests,
//! which reacts to writes as the device would.
//!
//! Offsets are bytes from the start of the register block; values are host-order (the
//! implementation converts from the bus's little-endian). 64-bit registers have no access of
//! their own: [`Registers::read64`] and [`Registers::write64`] split them into two 32-bit
//! accesses, low half first, the order both NVMe 1.4 §3.1 (CAP, ASQ, ACQ) and virtio 1.2
//! §4.1.3.1 (64-bit fields of the common configuration) allow, and the one every device
//! accepts (Linux's `lo_hi_readq` / `lo_hi_writeq`).

use crate::mmio::MmioError;

/// Register access at byte offsets of one register block.
///
/// `Send + Sync`: a driver's control path and each of its queues share one block and write
/// disjoint registers (each queue only its own doorbell).
pub trait Registers: Send + Sync {
    /// Reads the 8-bit register at `offset`.
    fn read8(&self, offset: usize) -> Result<u8, MmioError>;
    /// Reads the 16-bit register at `offset`.
    fn read16(&self, offset: usize) -> Result<u16, MmioError>;
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> Result<u32, MmioError>;
    /// Writes the 8-bit register at `offset`.
    fn write8(&self, offset: usize, value: u8) -> Result<(), MmioError>;
    /// Writes the 16-bit register at `offset`.
    fn write16(&self, offset: usize, value: u16) -> Result<(), MmioError>;
    /// Writes the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32) -> Result<(), MmioError>;

    /// Whether the device behind the registers was removed and released (a VFIO device
    /// whose kernel asked for it back, see [`Device::watch_removal`](crate::vfio::Device::watch_removal)):
    /// reads then return all ones and writes reach nothing. One relaxed load: drivers may
    /// call it per burst. A device that vanished without notice shows only as all-ones reads.
    #[inline]
    fn removed(&self) -> bool {
        false
    }

    /// Reads the 64-bit register at `offset` as two 32-bit reads, low half first.
    fn read64(&self, offset: usize) -> Result<u64, MmioError> {
        let lo = self.read32(offset)?;
        let hi = self.read32(offset + 4)?;
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }

    /// Writes the 64-bit register at `offset` as two 32-bit writes, low half first.
    fn write64(&self, offset: usize, value: u64) -> Result<(), MmioError> {
        self.write32(offset, value as u32)?;
        self.write32(offset + 4, (value >> 32) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MmioRegion;

    #[test]
    fn sixty_four_bits_go_low_half_first() {
        let r = MmioRegion::heap(0x40);
        Registers::write64(&r, 0x28, 0x1122_3344_5566_7000).unwrap();
        assert_eq!(Registers::read32(&r, 0x28).unwrap(), 0x5566_7000);
        assert_eq!(Registers::read32(&r, 0x2c).unwrap(), 0x1122_3344);
        assert_eq!(Registers::read64(&r, 0x28).unwrap(), 0x1122_3344_5566_7000);
    }
}
