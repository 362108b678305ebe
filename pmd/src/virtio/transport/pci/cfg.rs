//! Typed register blocks of the virtio PCI transport: the common configuration (virtio 1.2
//! §4.1.4.3) and the net device's configuration (§5.1.4), each a `#[repr(C)]` struct laid
//! out as in the BAR, never built, whose associated [`Field`]s name every register the
//! driver uses with its offset (taken from the struct), its width and whether it may be
//! read or written.
//!
//! ```
//! use sluice_pmd::virtio::transport::pci::{CommonCfg, NetConfig};
//!
//! assert_eq!(CommonCfg::DEVICE_STATUS.offset(), 0x14);
//! assert_eq!(CommonCfg::QUEUE_DESC.offset(), 0x20);
//! assert_eq!(NetConfig::MAX_VIRTQUEUE_PAIRS.offset(), 8);
//! ```

use std::marker::PhantomData;
use std::mem::{offset_of, size_of};

use crate::mmio::MmioError;
use crate::regs::Registers;

/// A register of type `T` at a byte offset of its block, accessed as `A` says
/// ([`ReadOnly`], [`WriteOnly`] or [`ReadWrite`]).
pub struct Field<T, A> {
    offset: usize,
    _type: PhantomData<fn() -> (T, A)>,
}

impl<T, A> Clone for Field<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, A> Copy for Field<T, A> {}

impl<T, A> core::fmt::Debug for Field<T, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Field({:#x})", self.offset)
    }
}

impl<T: Value, A> Field<T, A> {
    const fn at(offset: usize) -> Self {
        Self {
            offset,
            _type: PhantomData,
        }
    }

    /// Its byte offset in the block.
    pub const fn offset(self) -> usize {
        self.offset
    }

    /// Its width in bytes.
    pub const fn width(self) -> usize {
        T::WIDTH
    }
}

/// The driver reads the register; it never writes it.
#[derive(Debug)]
pub enum ReadOnly {}
/// The driver writes the register; what it reads is meaningless.
#[derive(Debug)]
pub enum WriteOnly {}
/// The driver reads and writes the register.
#[derive(Debug)]
pub enum ReadWrite {}

/// Accesses that may read.
pub trait Readable {}
impl Readable for ReadOnly {}
impl Readable for ReadWrite {}

/// Accesses that may write.
pub trait Writable {}
impl Writable for WriteOnly {}
impl Writable for ReadWrite {}

/// What a register holds, and how it is accessed: one access of its width, 64-bit fields as
/// two 32-bit ones, low half first (virtio 1.2 §4.1.3.1), byte arrays byte by byte.
pub trait Value: Sized {
    /// Bytes.
    const WIDTH: usize;
    /// Reads it at `offset` of `regs`.
    fn read<R: Registers + ?Sized>(regs: &R, offset: usize) -> Result<Self, MmioError>;
    /// Writes it at `offset` of `regs`.
    fn write<R: Registers + ?Sized>(regs: &R, offset: usize, v: Self) -> Result<(), MmioError>;
}

macro_rules! value {
    ($t:ty, $read:ident, $write:ident) => {
        impl Value for $t {
            const WIDTH: usize = size_of::<$t>();
            #[inline]
            fn read<R: Registers + ?Sized>(regs: &R, offset: usize) -> Result<Self, MmioError> {
                regs.$read(offset)
            }
            #[inline]
            fn write<R: Registers + ?Sized>(
                regs: &R,
                offset: usize,
                v: Self,
            ) -> Result<(), MmioError> {
                regs.$write(offset, v)
            }
        }
    };
}

value!(u8, read8, write8);
value!(u16, read16, write16);
value!(u32, read32, write32);
value!(u64, read64, write64);

impl<const N: usize> Value for [u8; N] {
    const WIDTH: usize = N;
    fn read<R: Registers + ?Sized>(regs: &R, offset: usize) -> Result<Self, MmioError> {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = regs.read8(offset + i)?;
        }
        Ok(out)
    }
    fn write<R: Registers + ?Sized>(regs: &R, offset: usize, v: Self) -> Result<(), MmioError> {
        for (i, b) in v.into_iter().enumerate() {
            regs.write8(offset + i, b)?;
        }
        Ok(())
    }
}

/// `struct virtio_pci_common_cfg` (virtio 1.2 §4.1.4.3) up to `queue_device`, all
/// little-endian; the 1.2 additions after it (`queue_notify_data`, `queue_reset`) are not
/// used. Per-queue fields refer to the queue `queue_select` names.
#[repr(C)]
#[allow(dead_code)] // Never built: a layout, read through its fields' offsets.
pub struct CommonCfg {
    device_feature_select: u32,
    device_feature: u32,
    driver_feature_select: u32,
    driver_feature: u32,
    config_msix_vector: u16,
    num_queues: u16,
    device_status: u8,
    config_generation: u8,
    queue_select: u16,
    queue_size: u16,
    queue_msix_vector: u16,
    queue_enable: u16,
    queue_notify_off: u16,
    queue_desc: u64,
    queue_driver: u64,
    queue_device: u64,
}

impl CommonCfg {
    /// Which 32 bits of the features `DEVICE_FEATURE` shows (0 or 1).
    pub const DEVICE_FEATURE_SELECT: Field<u32, ReadWrite> =
        Field::at(offset_of!(Self, device_feature_select));
    /// 32 bits of the features the device offers.
    pub const DEVICE_FEATURE: Field<u32, ReadOnly> = Field::at(offset_of!(Self, device_feature));
    /// Which 32 bits of the features `DRIVER_FEATURE` takes.
    pub const DRIVER_FEATURE_SELECT: Field<u32, ReadWrite> =
        Field::at(offset_of!(Self, driver_feature_select));
    /// 32 bits of the features the driver accepts.
    pub const DRIVER_FEATURE: Field<u32, ReadWrite> = Field::at(offset_of!(Self, driver_feature));
    /// MSI-X vector for configuration changes ([`NO_VECTOR`](super::NO_VECTOR): none).
    pub const CONFIG_MSIX_VECTOR: Field<u16, ReadWrite> =
        Field::at(offset_of!(Self, config_msix_vector));
    /// How many queues the device has.
    pub const NUM_QUEUES: Field<u16, ReadOnly> = Field::at(offset_of!(Self, num_queues));
    /// The device status ([`status`](crate::virtio::status) bits); writing 0 resets.
    pub const DEVICE_STATUS: Field<u8, ReadWrite> = Field::at(offset_of!(Self, device_status));
    /// Changes whenever the device configuration does (virtio 1.2 §2.5).
    pub const CONFIG_GENERATION: Field<u8, ReadOnly> =
        Field::at(offset_of!(Self, config_generation));
    /// The queue the per-queue fields below refer to.
    pub const QUEUE_SELECT: Field<u16, ReadWrite> = Field::at(offset_of!(Self, queue_select));
    /// The queue's size: the device's maximum on read (0 if absent), the driver's choice.
    pub const QUEUE_SIZE: Field<u16, ReadWrite> = Field::at(offset_of!(Self, queue_size));
    /// MSI-X vector of the queue ([`NO_VECTOR`](super::NO_VECTOR): none).
    pub const QUEUE_MSIX_VECTOR: Field<u16, ReadWrite> =
        Field::at(offset_of!(Self, queue_msix_vector));
    /// 1 once the queue is set up; the driver never writes 0.
    pub const QUEUE_ENABLE: Field<u16, ReadWrite> = Field::at(offset_of!(Self, queue_enable));
    /// The queue's doorbell offset in the notify block, in `notify_off_multiplier` units.
    pub const QUEUE_NOTIFY_OFF: Field<u16, ReadOnly> =
        Field::at(offset_of!(Self, queue_notify_off));
    /// Descriptor area IOVA.
    pub const QUEUE_DESC: Field<u64, ReadWrite> = Field::at(offset_of!(Self, queue_desc));
    /// Driver area IOVA.
    pub const QUEUE_DRIVER: Field<u64, ReadWrite> = Field::at(offset_of!(Self, queue_driver));
    /// Device area IOVA.
    pub const QUEUE_DEVICE: Field<u64, ReadWrite> = Field::at(offset_of!(Self, queue_device));
    /// Bytes of the block the driver uses: a shorter capability is refused.
    pub const LEN: usize = size_of::<Self>();
}

// virtio 1.2 §4.1.4.3: the layout as the specification prints it.
const _: () = {
    assert!(CommonCfg::DEVICE_STATUS.offset() == 0x14);
    assert!(CommonCfg::QUEUE_SELECT.offset() == 0x16);
    assert!(CommonCfg::QUEUE_NOTIFY_OFF.offset() == 0x1E);
    assert!(CommonCfg::QUEUE_DESC.offset() == 0x20);
    assert!(CommonCfg::QUEUE_DEVICE.offset() == 0x30);
    assert!(CommonCfg::LEN == 0x38);
};

/// `struct virtio_net_config` (virtio 1.2 §5.1.4) up to `max_virtqueue_pairs`, the fields
/// this driver reads, each only when its feature was negotiated.
#[repr(C)]
#[allow(dead_code)] // Never built: a layout, read through its fields' offsets.
pub struct NetConfig {
    mac: [u8; 6],
    status: u16,
    max_virtqueue_pairs: u16,
}

impl NetConfig {
    /// The device's MAC address (with `MAC`).
    pub const MAC: Field<[u8; 6], ReadOnly> = Field::at(offset_of!(Self, mac));
    /// Link status (with `STATUS`): [`S_LINK_UP`](Self::S_LINK_UP) and announce bits.
    pub const STATUS: Field<u16, ReadOnly> = Field::at(offset_of!(Self, status));
    /// How many queue pairs the device has (with `MQ`).
    pub const MAX_VIRTQUEUE_PAIRS: Field<u16, ReadOnly> =
        Field::at(offset_of!(Self, max_virtqueue_pairs));
    /// `VIRTIO_NET_S_LINK_UP` in [`STATUS`](Self::STATUS).
    pub const S_LINK_UP: u16 = 1;
}

const _: () = {
    assert!(NetConfig::STATUS.offset() == 6);
    assert!(NetConfig::MAX_VIRTQUEUE_PAIRS.offset() == 8);
};
