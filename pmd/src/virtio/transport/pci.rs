//! The modern virtio PCI transport (virtio 1.2 §4.1): the register blocks the vendor
//! capabilities point at, reset and status, feature bits, queue set-up and notification,
//! and the net device's configuration, as a [`Transport`].
//!
//! This is control path: it may allocate, sleep in bounded waits and format errors. The only
//! hot-path piece is [`PciDoorbell`], one 16-bit store.
//!
//! [`vfio`] opens a device bound to vfio-pci and registers the packet pool with the IOMMU;
//! the software device of the tests plays the registers instead ([`VirtioRegs`]).

pub mod vfio;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{RingAddrs, Transport};
use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::pci::caps::{VirtioCfgType, VirtioPciCap};
use crate::vfio::Device;
use crate::virtio::VirtioError;

/// Common configuration offsets (virtio 1.2 §4.1.4.3, REFERENCE B2).
pub mod common {
    /// Selects which 32 bits `DEVICE_FEATURE` shows (le32).
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    /// 32 bits of the device's features (le32, read-only).
    pub const DEVICE_FEATURE: usize = 0x04;
    /// Selects which 32 bits `DRIVER_FEATURE` takes (le32).
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    /// 32 bits of the features the driver accepts (le32).
    pub const DRIVER_FEATURE: usize = 0x0C;
    /// MSI-X vector for configuration changes (le16; 0xFFFF = none).
    pub const CONFIG_MSIX_VECTOR: usize = 0x10;
    /// Number of queues the device has (le16).
    pub const NUM_QUEUES: usize = 0x12;
    /// Device status (u8, REFERENCE B3).
    pub const DEVICE_STATUS: usize = 0x14;
    /// Changes whenever the device configuration does (u8).
    pub const CONFIG_GENERATION: usize = 0x15;
    /// Selects the queue the fields below refer to (le16).
    pub const QUEUE_SELECT: usize = 0x16;
    /// Queue size: the device's maximum on read, 0 if absent (le16).
    pub const QUEUE_SIZE: usize = 0x18;
    /// MSI-X vector of the queue (le16; 0xFFFF = none).
    pub const QUEUE_MSIX_VECTOR: usize = 0x1A;
    /// 1 once the queue is set up; never write 0 (le16).
    pub const QUEUE_ENABLE: usize = 0x1C;
    /// The queue's notify offset, in `notify_off_multiplier` units (le16).
    pub const QUEUE_NOTIFY_OFF: usize = 0x1E;
    /// Descriptor table IOVA (le64 as two le32, low first).
    pub const QUEUE_DESC: usize = 0x20;
    /// Available ring IOVA.
    pub const QUEUE_DRIVER: usize = 0x28;
    /// Used ring IOVA.
    pub const QUEUE_DEVICE: usize = 0x30;
    /// Bytes the driver needs (up to `QUEUE_DEVICE` + 8).
    pub const LEN: usize = 0x38;
}

/// "No MSI-X vector" (virtio 1.2 §4.1.5.1.2): the driver polls.
pub const NO_VECTOR: u16 = 0xFFFF;

/// Register access at byte offsets of a BAR: the seam between the transport and the device
/// ([`MmioRegion`] behind VFIO; the software device in tests).
pub trait VirtioRegs: Send + Sync {
    /// Reads 8 bits.
    fn read8(&self, offset: usize) -> Result<u8, Error>;
    /// Reads 16 bits (little-endian).
    fn read16(&self, offset: usize) -> Result<u16, Error>;
    /// Reads 32 bits (little-endian).
    fn read32(&self, offset: usize) -> Result<u32, Error>;
    /// Writes 8 bits.
    fn write8(&self, offset: usize, value: u8) -> Result<(), Error>;
    /// Writes 16 bits.
    fn write16(&self, offset: usize, value: u16) -> Result<(), Error>;
    /// Writes 32 bits.
    fn write32(&self, offset: usize, value: u32) -> Result<(), Error>;
}

impl VirtioRegs for MmioRegion {
    #[inline]
    fn read8(&self, offset: usize) -> Result<u8, Error> {
        MmioRegion::read8(self, offset)
    }
    #[inline]
    fn read16(&self, offset: usize) -> Result<u16, Error> {
        MmioRegion::read16(self, offset)
    }
    #[inline]
    fn read32(&self, offset: usize) -> Result<u32, Error> {
        MmioRegion::read32(self, offset)
    }
    #[inline]
    fn write8(&self, offset: usize, value: u8) -> Result<(), Error> {
        MmioRegion::write8(self, offset, value)
    }
    #[inline]
    fn write16(&self, offset: usize, value: u16) -> Result<(), Error> {
        MmioRegion::write16(self, offset, value)
    }
    #[inline]
    fn write32(&self, offset: usize, value: u32) -> Result<(), Error> {
        MmioRegion::write32(self, offset, value)
    }
}

/// One register block: a window of a BAR as a capability described it.
struct Block<R> {
    regs: Arc<R>,
    base: usize,
    len: usize,
}

impl<R> Clone for Block<R> {
    fn clone(&self) -> Self {
        Self {
            regs: self.regs.clone(),
            base: self.base,
            len: self.len,
        }
    }
}

impl<R: VirtioRegs> Block<R> {
    fn at(&self, offset: usize, width: usize) -> Result<usize, Error> {
        if offset + width > self.len {
            return Err(Error::MmioBounds {
                offset,
                width,
                len: self.len,
            });
        }
        Ok(self.base + offset)
    }
    fn read8(&self, o: usize) -> Result<u8, Error> {
        self.regs.read8(self.at(o, 1)?)
    }
    fn read16(&self, o: usize) -> Result<u16, Error> {
        self.regs.read16(self.at(o, 2)?)
    }
    fn read32(&self, o: usize) -> Result<u32, Error> {
        self.regs.read32(self.at(o, 4)?)
    }
    fn write8(&self, o: usize, v: u8) -> Result<(), Error> {
        self.regs.write8(self.at(o, 1)?, v)
    }
    fn write16(&self, o: usize, v: u16) -> Result<(), Error> {
        self.regs.write16(self.at(o, 2)?, v)
    }
    fn write32(&self, o: usize, v: u32) -> Result<(), Error> {
        self.regs.write32(self.at(o, 4)?, v)
    }
    /// virtio 1.2 §4.1.3.1: 64-bit fields as two 32-bit accesses, low first.
    fn write64(&self, o: usize, v: u64) -> Result<(), Error> {
        self.write32(o, v as u32)?;
        self.write32(o + 4, (v >> 32) as u32)
    }
}

/// A queue's doorbell: the one register its owner writes on the hot path.
pub struct PciDoorbell<R> {
    regs: Arc<R>,
    offset: usize,
    queue: u16,
}

impl<R: VirtioRegs> super::Doorbell for PciDoorbell<R> {
    /// Tells the device the queue has new buffers (virtio 1.2 §4.1.4.4: the value written is
    /// the queue index). Bounds were checked at set-up, so this cannot fail for a mapped BAR;
    /// an error is returned anyway rather than hidden.
    #[inline]
    fn notify(&self) -> Result<(), Error> {
        self.regs.write16(self.offset, self.queue)
    }
}

impl<R> core::fmt::Debug for PciDoorbell<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PciDoorbell")
            .field("queue", &self.queue)
            .field("offset", &format_args!("{:#x}", self.offset))
            .finish()
    }
}

/// The PCI transport of one device: its common, notify and device-specific blocks, in BARs
/// mapped through VFIO ([`MmioRegion`], the default) or played by a software device.
pub struct PciTransport<R = MmioRegion> {
    device: String,
    common: Block<R>,
    notify: Block<R>,
    notify_mult: u32,
    device_cfg: Option<Block<R>>,
    timeout: Duration,
    // Last: the VFIO device closes after its BAR mappings are gone.
    _vfio: Option<Device>,
}

impl<R> core::fmt::Debug for PciTransport<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PciTransport")
            .field("device", &self.device)
            .field("notify_off_multiplier", &self.notify_mult)
            .finish_non_exhaustive()
    }
}

impl<R: VirtioRegs> PciTransport<R> {
    /// Finds the common, notify and device blocks among `caps` (the first of each type whose
    /// BAR is valid, as virtio 1.2 §4.1.4 asks), mapping BARs with `map_bar` (called once per
    /// distinct BAR). `device` names it in errors; `timeout` bounds every wait.
    ///
    /// # Errors
    /// [`VirtioError::NoCap`] if the common or notify block is missing; what `map_bar` returns.
    pub fn new(
        device: String,
        caps: &[VirtioPciCap],
        mut map_bar: impl FnMut(u8) -> Result<Arc<R>, Error>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let mut mapped: Vec<(u8, Arc<R>)> = Vec::new();
        // A block and, for the notify block, its multiplier.
        type Found<R> = Option<(Block<R>, Option<u32>)>;
        let mut block = |ty: VirtioCfgType| -> Result<Found<R>, Error> {
            let Some(cap) = caps.iter().find(|c| c.cfg_type == ty && c.bar <= 5) else {
                return Ok(None);
            };
            let regs = match mapped.iter().find(|(b, _)| *b == cap.bar) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = map_bar(cap.bar)?;
                    mapped.push((cap.bar, r.clone()));
                    r
                }
            };
            Ok(Some((
                Block {
                    regs,
                    base: cap.offset as usize,
                    len: cap.length as usize,
                },
                cap.notify_off_multiplier,
            )))
        };
        let missing = |cap| VirtioError::NoCap {
            device: device.clone(),
            cap,
        };
        let (common, _) = block(VirtioCfgType::Common)?.ok_or_else(|| missing("common"))?;
        let (notify, mult) = block(VirtioCfgType::Notify)?.ok_or_else(|| missing("notify"))?;
        let notify_mult = mult.unwrap_or(0);
        let device_cfg = block(VirtioCfgType::Device)?.map(|(b, _)| b);
        if common.len < common::LEN {
            return Err(missing("common (shorter than 0x38 bytes)").into());
        }
        Ok(Self {
            device,
            common,
            notify,
            notify_mult,
            device_cfg,
            timeout,
            _vfio: None,
        })
    }

    /// Gives the transport the VFIO device its BARs belong to, to close when it goes.
    fn own(&mut self, device: Device) {
        self._vfio = Some(device);
    }

    /// How many queues the device has.
    pub fn num_queues(&self) -> Result<u16, Error> {
        self.common.read16(common::NUM_QUEUES)
    }

    fn device_block(&self) -> Result<&Block<R>, Error> {
        self.device_cfg.as_ref().ok_or_else(|| {
            VirtioError::NoCap {
                device: self.device.clone(),
                cap: "device",
            }
            .into()
        })
    }

    /// Reads device configuration with `f`, retrying while `config_generation` changes
    /// (virtio 1.2 §2.5), bounded.
    ///
    /// # Errors
    /// [`VirtioError::NoCap`] without a device block; [`VirtioError::Timeout`] if the
    /// generation never settles.
    pub fn read_config<T>(
        &self,
        mut f: impl FnMut(&dyn Fn(usize) -> Result<u8, Error>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let dev = self.device_block()?;
        for _ in 0..64 {
            let before = self.common.read8(common::CONFIG_GENERATION)?;
            let v = f(&|o| dev.read8(o))?;
            if self.common.read8(common::CONFIG_GENERATION)? == before {
                return Ok(v);
            }
        }
        Err(VirtioError::Timeout {
            device: self.device.clone(),
            register: "config_generation (changing across every config read)",
            value: u32::from(self.common.read8(common::CONFIG_GENERATION)?),
            waited_ms: 0,
        }
        .into())
    }

    /// A 16-bit device-config field, read as one access (virtio 1.2 §4.1.3.1).
    pub fn config16(&self, offset: usize) -> Result<u16, Error> {
        self.device_block()?.read16(offset)
    }
}

impl<R: VirtioRegs + 'static> Transport for PciTransport<R> {
    type Doorbell = PciDoorbell<R>;

    fn device(&self) -> &str {
        &self.device
    }

    /// Writes 0 to `device_status` and waits, bounded, until it reads 0 (virtio 1.2
    /// §4.1.4.3.2): afterwards the device touches no queue memory.
    ///
    /// # Errors
    /// [`VirtioError::Timeout`] naming `device_status` and its last value.
    fn reset(&self) -> Result<(), Error> {
        self.common.write8(common::DEVICE_STATUS, 0)?;
        let start = Instant::now();
        loop {
            let s = self.status()?;
            if s == 0 {
                return Ok(());
            }
            if start.elapsed() >= self.timeout {
                return Err(VirtioError::Timeout {
                    device: self.device.clone(),
                    register: "device_status (waiting for 0 after a reset)",
                    value: u32::from(s),
                    waited_ms: start.elapsed().as_millis() as u64,
                }
                .into());
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn status(&self) -> Result<u8, Error> {
        self.common.read8(common::DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) -> Result<(), Error> {
        self.common.write8(common::DEVICE_STATUS, status)
    }

    /// Both 32-bit halves through `device_feature_select` (virtio 1.2 §4.1.4.3).
    fn device_features(&self) -> Result<u64, Error> {
        let mut f = 0u64;
        for half in 0..2u32 {
            self.common.write32(common::DEVICE_FEATURE_SELECT, half)?;
            f |= u64::from(self.common.read32(common::DEVICE_FEATURE)?) << (32 * half);
        }
        Ok(f)
    }

    fn set_driver_features(&self, features: u64) -> Result<(), Error> {
        for half in 0..2u32 {
            self.common.write32(common::DRIVER_FEATURE_SELECT, half)?;
            self.common
                .write32(common::DRIVER_FEATURE, (features >> (32 * half)) as u32)?;
        }
        Ok(())
    }

    fn max_queue_size(&self, queue: u16) -> Result<u16, Error> {
        self.common.write16(common::QUEUE_SELECT, queue)?;
        self.common.read16(common::QUEUE_SIZE)
    }

    /// Size, ring addresses, no MSI-X vector (for the queue, and for configuration changes:
    /// the driver polls), enable (virtio 1.2 §4.1.5.1.3).
    ///
    /// # Errors
    /// [`VirtioError::NotifyOutside`] when the notify offset falls outside the notify block.
    fn setup_queue(
        &self,
        queue: u16,
        size: u16,
        rings: RingAddrs,
    ) -> Result<PciDoorbell<R>, Error> {
        let c = &self.common;
        c.write16(common::CONFIG_MSIX_VECTOR, NO_VECTOR)?;
        c.write16(common::QUEUE_SELECT, queue)?;
        c.write16(common::QUEUE_SIZE, size)?;
        c.write16(common::QUEUE_MSIX_VECTOR, NO_VECTOR)?;
        c.write64(common::QUEUE_DESC, rings.desc.as_u64())?;
        c.write64(common::QUEUE_DRIVER, rings.driver.as_u64())?;
        c.write64(common::QUEUE_DEVICE, rings.device.as_u64())?;
        let off = usize::from(c.read16(common::QUEUE_NOTIFY_OFF)?) * self.notify_mult as usize;
        if off + 2 > self.notify.len {
            return Err(VirtioError::NotifyOutside {
                device: self.device.clone(),
                queue,
                offset: off,
                len: self.notify.len,
            }
            .into());
        }
        c.write16(common::QUEUE_ENABLE, 1)?;
        Ok(PciDoorbell {
            regs: self.notify.regs.clone(),
            offset: self.notify.base + off,
            queue,
        })
    }

    fn mac(&self) -> Result<[u8; 6], Error> {
        self.read_config(|read| {
            let mut m = [0u8; 6];
            for (i, b) in m.iter_mut().enumerate() {
                *b = read(i)?;
            }
            Ok(m)
        })
    }

    fn link_up(&self) -> Result<bool, Error> {
        Ok(self.config16(6)? & 1 != 0)
    }

    fn max_queue_pairs(&self) -> Result<u16, Error> {
        self.config16(8)
    }
}
