//! The modern virtio PCI transport (virtio 1.2 §4.1): the register blocks the vendor
//! capabilities point at, reset and status, feature bits, queue set-up and notification,
//! and the net device's configuration, as a [`Transport`].
//!
//! This is control path: it may allocate, sleep in bounded waits and format errors. The only
//! hot-path piece is [`PciDoorbell`], one 16-bit store.
//!
//! Registers are reached through [`Registers`]: a BAR mapped through VFIO
//! ([`MmioRegion`]), or the software device of the tests. [`cfg`](mod@cfg) lays out the blocks;
//! [`vfio`] opens a device bound to vfio-pci and registers the packet pool with the IOMMU.

pub mod cfg;
pub mod vfio;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use cfg::{CommonCfg, Field, NetConfig, ReadOnly, ReadWrite, Readable, Value, Writable};

use super::{RingAddrs, Transport};
use crate::error::Error;
use crate::mmio::{MmioError, MmioRegion};
use crate::pci::caps::{VirtioCfgType, VirtioPciCap};
use crate::regs::Registers;
use crate::vfio::Device;
use crate::virtio::VirtioError;

/// "No MSI-X vector" (virtio 1.2 §4.1.5.1.2): the driver polls.
pub const NO_VECTOR: u16 = 0xFFFF;

/// One register block: a window of a BAR as a capability described it.
struct Block<R> {
    regs: Arc<R>,
    base: usize,
    len: usize,
}

impl<R: Registers> Block<R> {
    /// The BAR offset of `width` bytes at `offset` of the block, checked against the length
    /// the device gave the block (the BAR's own bounds are the region's to check).
    fn at(&self, offset: usize, width: usize) -> Result<usize, MmioError> {
        if offset + width > self.len {
            return Err(MmioError::OutOfBounds {
                offset,
                width,
                len: self.len,
            });
        }
        Ok(self.base + offset)
    }

    fn read<T: Value, A: Readable>(&self, field: Field<T, A>) -> Result<T, Error> {
        let at = self.at(field.offset(), field.width())?;
        Ok(T::read(&*self.regs, at)?)
    }

    fn write<T: Value, A: Writable>(&self, field: Field<T, A>, value: T) -> Result<(), Error> {
        let at = self.at(field.offset(), field.width())?;
        Ok(T::write(&*self.regs, at, value)?)
    }
}

/// A queue's doorbell: the one register its owner writes on the hot path.
pub struct PciDoorbell<R> {
    regs: Arc<R>,
    offset: usize,
    queue: u16,
}

impl<R: Registers> super::Doorbell for PciDoorbell<R> {
    /// Tells the device the queue has new buffers (virtio 1.2 §4.1.4.4: the value written is
    /// the queue index). Bounds were checked at set-up, so this cannot fail for a mapped BAR;
    /// an error is returned anyway rather than hidden.
    #[inline]
    fn notify(&self) -> Result<(), Error> {
        Ok(self.regs.write16(self.offset, self.queue)?)
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
    /// A register read all ones: the device was removed.
    gone: AtomicBool,
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

impl<R: Registers> PciTransport<R> {
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
        if common.len < CommonCfg::LEN {
            return Err(missing("common (shorter than 0x38 bytes)").into());
        }
        Ok(Self {
            device,
            common,
            notify,
            notify_mult,
            device_cfg,
            timeout,
            gone: AtomicBool::new(false),
            _vfio: None,
        })
    }

    /// Gives the transport the VFIO device its BARs belong to, to close when it goes.
    fn own(&mut self, device: Device) {
        self._vfio = Some(device);
    }

    /// How many queues the device has.
    pub fn num_queues(&self) -> Result<u16, Error> {
        self.common.read(CommonCfg::NUM_QUEUES)
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

    /// Reads a device-configuration field as one access of its width (virtio 1.2 §4.1.3.1:
    /// atomic for fields up to 32 bits).
    ///
    /// # Errors
    /// [`VirtioError::NoCap`] without a device block; a field outside it.
    pub fn config<T: Value, A: Readable>(&self, field: Field<T, A>) -> Result<T, Error> {
        self.device_block()?.read(field)
    }

    /// Reads a device-configuration field of several accesses, retrying while
    /// `config_generation` changes (virtio 1.2 §2.5), bounded.
    ///
    /// # Errors
    /// As [`config`](Self::config); [`VirtioError::Timeout`] if the generation never
    /// settles.
    pub fn config_consistent<T: Value, A: Readable>(&self, field: Field<T, A>) -> Result<T, Error> {
        let generation = || self.common.read(CommonCfg::CONFIG_GENERATION);
        for _ in 0..64 {
            let before = generation()?;
            let v = self.config(field)?;
            if generation()? == before {
                return Ok(v);
            }
        }
        Err(VirtioError::Timeout {
            device: self.device.clone(),
            register: "config_generation (changing across every config read)",
            value: u32::from(generation()?),
            waited_ms: 0,
        }
        .into())
    }
}

impl<R: Registers + 'static> Transport for PciTransport<R> {
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
        if self.common.regs.removed() {
            // VFIO released it after the kernel asked for it back, and vfio-pci disabled
            // it (bus mastering off) on release: it touches no memory any more.
            return Ok(());
        }
        self.common.write(CommonCfg::DEVICE_STATUS, 0)?;
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

    /// # Errors
    /// [`VirtioError::Gone`] when it reads 0xff (no device answers), noted for
    /// [`gone`](Transport::gone).
    fn status(&self) -> Result<u8, Error> {
        let s = self.common.read(CommonCfg::DEVICE_STATUS)?;
        if s == 0xFF {
            self.gone.store(true, Ordering::Relaxed);
            return Err(VirtioError::Gone {
                device: self.device.clone(),
                register: "device_status",
            }
            .into());
        }
        Ok(s)
    }

    fn set_status(&self, status: u8) -> Result<(), Error> {
        self.common.write(CommonCfg::DEVICE_STATUS, status)
    }

    /// Both 32-bit halves through `device_feature_select` (virtio 1.2 §4.1.4.3).
    fn device_features(&self) -> Result<u64, Error> {
        let mut f = 0u64;
        for half in 0..2u32 {
            self.common.write(CommonCfg::DEVICE_FEATURE_SELECT, half)?;
            f |= u64::from(self.common.read(CommonCfg::DEVICE_FEATURE)?) << (32 * half);
        }
        Ok(f)
    }

    fn set_driver_features(&self, features: u64) -> Result<(), Error> {
        for half in 0..2u32 {
            self.common.write(CommonCfg::DRIVER_FEATURE_SELECT, half)?;
            self.common
                .write(CommonCfg::DRIVER_FEATURE, (features >> (32 * half)) as u32)?;
        }
        Ok(())
    }

    fn max_queue_size(&self, queue: u16) -> Result<u16, Error> {
        self.common.write(CommonCfg::QUEUE_SELECT, queue)?;
        self.common.read(CommonCfg::QUEUE_SIZE)
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
        c.write(CommonCfg::CONFIG_MSIX_VECTOR, NO_VECTOR)?;
        c.write(CommonCfg::QUEUE_SELECT, queue)?;
        c.write(CommonCfg::QUEUE_SIZE, size)?;
        c.write(CommonCfg::QUEUE_MSIX_VECTOR, NO_VECTOR)?;
        c.write(CommonCfg::QUEUE_DESC, rings.desc.as_u64())?;
        c.write(CommonCfg::QUEUE_DRIVER, rings.driver.as_u64())?;
        c.write(CommonCfg::QUEUE_DEVICE, rings.device.as_u64())?;
        let off = usize::from(c.read(CommonCfg::QUEUE_NOTIFY_OFF)?) * self.notify_mult as usize;
        if off + 2 > self.notify.len {
            return Err(VirtioError::NotifyOutside {
                device: self.device.clone(),
                queue,
                offset: off,
                len: self.notify.len,
            }
            .into());
        }
        c.write(CommonCfg::QUEUE_ENABLE, 1)?;
        Ok(PciDoorbell {
            regs: self.notify.regs.clone(),
            offset: self.notify.base + off,
            queue,
        })
    }

    /// Six byte reads, consistent through `config_generation`.
    fn mac(&self) -> Result<[u8; 6], Error> {
        self.config_consistent(NetConfig::MAC)
    }

    /// Down once the device is gone; a `status` of all ones also means gone.
    fn link_up(&self) -> Result<bool, Error> {
        if self.gone() {
            return Ok(false);
        }
        let s = self.config(NetConfig::STATUS)?;
        if s == u16::MAX {
            self.gone.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(s & NetConfig::S_LINK_UP != 0)
    }

    #[inline]
    fn gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed) || self.common.regs.removed()
    }

    fn max_queue_pairs(&self) -> Result<u16, Error> {
        self.config(NetConfig::MAX_VIRTQUEUE_PAIRS)
    }
}
