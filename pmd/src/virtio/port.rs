//! [`VirtioPort`]: bring-up (REFERENCE B3 in order), the [`NetPort`] API, and shutdown.
//!
//! The device, its transport and everything it may still touch live in [`Shared`], which
//! the port and every queue handle hold an `Arc` of; the last one to go resets the device
//! before anything it was given is freed (see [`super::shared`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_mempool::{DmaRegion, HugePagePolicy, IovaMapper, PageSize, PktBuf, PktPool};

use super::ctrl::{self, ControlQueue};
use super::net::{VirtioRxQueue, VirtioTxQueue};
use super::pci_transport::{Notifier, Transport, VirtioRegs};
use super::ring::packed::{PackedLayout, PackedQueue};
use super::ring::split::{RingLayout, SplitQueue};
use super::ring::{RingKind, Virtqueue};
use super::shared::{PoolMapping, Shared, map_pool};
use super::{NET_HDR_LEN, feature};
use crate::dma::SharedMemory;
use crate::error::Error;
use crate::mmio::MmioRegion;
use crate::net::{LinkStatus, MacAddr, NetPort, PortCounters, PortInfo, Queues};
use crate::pci::{PciAddr, Sysfs, caps};
use crate::vfio::{Container, Device};

/// How a virtio port is brought up.
#[derive(Clone, Debug)]
pub struct VirtioConfig {
    /// The port's name (reports, errors).
    pub name: String,
    /// Written into received packets' `PktMeta::port`.
    pub port_id: u16,
    /// Queue pairs (more than one needs MQ).
    pub queues: u16,
    /// Receive ring entries (a power of two; capped at the device's maximum).
    pub rx_descriptors: u16,
    /// Transmit ring entries (likewise).
    pub tx_descriptors: u16,
    /// Receive everything (CTRL_RX); otherwise only the port's MAC, broadcast and
    /// multicast it joined (QEMU starts promiscuous after a reset).
    pub promiscuous: bool,
    /// All-multicast (CTRL_RX).
    pub all_multicast: bool,
    /// The MAC to report when the device has none (no `MAC` feature).
    pub mac: Option<MacAddr>,
    /// Features to ask for, within [`feature::SUPPORTED`]; VERSION_1 is always required and
    /// ACCESS_PLATFORM always accepted when offered. The default asks for everything
    /// supported, `RING_PACKED` included: a device offers packed rings only when its host
    /// enabled them (QEMU `packed=on`), and they touch fewer cache lines per buffer; clear
    /// the bit to keep split rings.
    pub features: u64,
    /// Bound on every wait (reset, control commands).
    pub timeout: Duration,
    /// Page size for ring memory.
    pub dma_page: PageSize,
    /// Hugepage policy for ring memory.
    pub huge_pages: HugePagePolicy,
}

impl Default for VirtioConfig {
    fn default() -> Self {
        Self {
            name: "virtio".into(),
            port_id: 0,
            queues: 1,
            rx_descriptors: 256,
            tx_descriptors: 256,
            promiscuous: true,
            all_multicast: false,
            mac: None,
            features: feature::SUPPORTED,
            timeout: Duration::from_secs(1),
            dma_page: PageSize::Size2M,
            huge_pages: HugePagePolicy::Prefer,
        }
    }
}

/// A virtio-net port: a device brought up with its queues, or a software device in tests.
pub struct VirtioPort<R: VirtioRegs = MmioRegion> {
    info: PortInfo,
    features: u64,
    ring_kind: RingKind,
    queues: Option<Queues<VirtioRxQueue<R>, VirtioTxQueue<R>>>,
    ctrl: Option<ControlQueue<R>>,
    counters: PortCounters,
    // Last: the port's own hold on the device.
    shared: Arc<Shared<R>>,
}

impl<R: VirtioRegs> core::fmt::Debug for VirtioPort<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioPort")
            .field("info", &self.info)
            .field(
                "features",
                &format_args!("{}", feature::names(self.features)),
            )
            .finish_non_exhaustive()
    }
}

impl VirtioPort<MmioRegion> {
    /// Opens the virtio-net device at `addr` (bound to vfio-pci) in `container`, resets it,
    /// and brings it up with `cfg`: receive buffers come from `pool`. A pool made with the
    /// identity mapper is registered with a type1 container at IOVA = VA here (once per
    /// container); for a no-IOMMU container make the pool with the container as mapper.
    ///
    /// # Errors
    /// VFIO errors (not bound, no group, ...), [`Error::VirtioNoCap`], and the bring-up
    /// errors of [`VirtioPort::with_transport`].
    pub fn open(
        addr: PciAddr,
        cfg: &VirtioConfig,
        pool: &PktPool,
        container: &Arc<Container>,
    ) -> Result<Self, Error> {
        let device = Device::open(container, &Sysfs::system(), addr)?;
        let vcaps = caps::virtio_caps(&device.config())?;
        let transport = Transport::new(
            addr.to_string(),
            &vcaps,
            |bar| device.map_bar(bar).map(Arc::new),
            cfg.timeout,
        )?;
        // A previous run may have died mid-flight: stop the device before it may master the
        // bus (with memory decoding on, which MMIO needs, and its old IOVAs gone with the
        // old container).
        device.enable_bus_master()?;
        transport.reset()?;
        let pool_map = map_pool(container, pool, addr)?;
        Self::bring_up(
            transport,
            cfg,
            pool,
            container.clone(),
            pool_map,
            Some(device),
        )
    }
}

impl<R: VirtioRegs> VirtioPort<R> {
    /// Brings up the device behind `transport` (REFERENCE B3): feature negotiation, queue
    /// set-up with ring memory from `mapper`, receive rings filled from `pool`, DRIVER_OK,
    /// then the control commands (active queue pairs, receive mode).
    ///
    /// # Errors
    /// [`Error::VirtioFeatureMissing`], [`Error::VirtioFeaturesRefused`], [`Error::VirtioQueue`]
    /// (absent queue, more queue pairs than the device has), [`Error::VirtioDma`],
    /// [`Error::VirtioCtrl`], [`Error::VirtioTimeout`]. The device is reset on every error.
    pub fn with_transport(
        transport: Transport<R>,
        cfg: &VirtioConfig,
        pool: &PktPool,
        mapper: Arc<dyn IovaMapper>,
    ) -> Result<Self, Error> {
        Self::bring_up(transport, cfg, pool, mapper, None, None)
    }

    fn bring_up(
        transport: Transport<R>,
        cfg: &VirtioConfig,
        pool: &PktPool,
        mapper: Arc<dyn IovaMapper>,
        pool_map: Option<PoolMapping>,
        device: Option<Device>,
    ) -> Result<Self, Error> {
        let features =
            transport.negotiate(cfg.features & feature::SUPPORTED, feature::VERSION_1)?;
        let shared = Arc::new(Shared {
            transport,
            parked: Mutex::default(),
            pool_map,
            _device: device,
        });
        // From here on an error drops `shared`, which resets the device before the rings go.
        let t = &shared.transport;
        let dev = t.device().to_string();
        let has = |f: u64| features & f != 0;
        let max_pairs = if has(feature::MQ) {
            t.config16(8)?.max(1)
        } else {
            1
        };
        if cfg.queues == 0 || cfg.queues > max_pairs {
            return Err(Error::VirtioQueue {
                device: dev,
                queue: cfg.queues,
                why: format!(
                    "{} queue pairs asked for; the device has {max_pairs}{}",
                    cfg.queues,
                    if has(feature::MQ) {
                        ""
                    } else {
                        " (MQ not offered: multiqueue needs a multi-queue backend)"
                    }
                ),
            });
        }
        if pool.headroom() < NET_HDR_LEN {
            return Err(Error::VirtioPool {
                device: dev,
                why: format!(
                    "pool {}: headroom {} below the {NET_HDR_LEN}-byte header",
                    pool.name(),
                    pool.headroom()
                ),
            });
        }
        let mac = if has(feature::MAC) {
            MacAddr(t.read_config(|read| {
                let mut m = [0u8; 6];
                for (i, b) in m.iter_mut().enumerate() {
                    *b = read(i)?;
                }
                Ok(m)
            })?)
        } else {
            cfg.mac.unwrap_or(MacAddr::local(u32::from(cfg.port_id)))
        };
        let counters = PortCounters::new(cfg.queues.into(), cfg.queues.into());
        let setup = SetUp {
            shared: &shared,
            cfg,
            mapper: &mapper,
            event_idx: has(feature::EVENT_IDX),
            packed: has(feature::RING_PACKED),
        };
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for q in 0..cfg.queues {
            let (vq, n) = setup.queue::<PktBuf>(2 * q, cfg.rx_descriptors)?;
            rx.push(VirtioRxQueue::new(
                vq,
                n,
                pool.clone(),
                counters.rx[usize::from(q)].clone(),
                has(feature::GUEST_CSUM),
                cfg.port_id,
                q,
                shared.clone(),
            ));
            let (vq, n) = setup.queue::<PktBuf>(2 * q + 1, cfg.tx_descriptors)?;
            tx.push(VirtioTxQueue::new(
                vq,
                n,
                counters.tx[usize::from(q)].clone(),
                q,
                shared.clone(),
            ));
        }
        let ctrl = if has(feature::CTRL_VQ) {
            let (vq, n) = setup.queue::<()>(2 * max_pairs, 64)?;
            let page = setup.memory(4096, "control commands")?;
            Some(ControlQueue::new(vq, n, page, dev.clone(), cfg.timeout))
        } else {
            None
        };
        for q in &mut rx {
            q.refill();
        }
        let mut port = Self {
            info: PortInfo {
                name: cfg.name.clone(),
                driver: "virtio",
                mac,
                rx_queues: cfg.queues,
                tx_queues: cfg.queues,
                max_frame: pool.buf_len() - pool.headroom(),
            },
            features,
            ring_kind: if setup.packed {
                RingKind::Packed
            } else {
                RingKind::Split
            },
            queues: Some(Queues { rx, tx }),
            ctrl,
            counters,
            shared: shared.clone(),
        };
        drop(shared);
        port.shared.transport.driver_ok()?;
        if cfg.queues > 1 {
            port.control(
                ctrl::CLASS_MQ,
                ctrl::MQ_VQ_PAIRS_SET,
                &cfg.queues.to_le_bytes(),
            )?;
        }
        if has(feature::CTRL_RX) {
            port.set_promiscuous(cfg.promiscuous)?;
            if cfg.all_multicast {
                port.set_all_multicast(true)?;
            }
        }
        Ok(port)
    }

    /// The features negotiated.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// The virtqueue format in use: packed when `RING_PACKED` was negotiated.
    pub fn ring_kind(&self) -> RingKind {
        self.ring_kind
    }

    /// The shared device state (its transport, for diagnostics).
    pub fn shared(&self) -> &Arc<Shared<R>> {
        &self.shared
    }

    fn control(&mut self, class: u8, cmd: u8, data: &[u8]) -> Result<(), Error> {
        match &mut self.ctrl {
            Some(c) => c.command(class, cmd, data),
            None => Err(Error::VirtioCtrl {
                device: self.shared.transport.device().to_string(),
                class,
                cmd,
                why: "CTRL_VQ was not negotiated".into(),
            }),
        }
    }

    /// Turns promiscuous mode on or off (needs CTRL_RX).
    ///
    /// # Errors
    /// [`Error::VirtioCtrl`] when the device refuses or has no control queue.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<(), Error> {
        self.control(ctrl::CLASS_RX, ctrl::RX_PROMISC, &[u8::from(on)])
    }

    /// Turns all-multicast mode on or off (needs CTRL_RX).
    ///
    /// # Errors
    /// As [`set_promiscuous`](Self::set_promiscuous).
    pub fn set_all_multicast(&mut self, on: bool) -> Result<(), Error> {
        self.control(ctrl::CLASS_RX, ctrl::RX_ALLMULTI, &[u8::from(on)])
    }
}

/// Queue set-up helpers for `bring_up`.
struct SetUp<'a, R: VirtioRegs> {
    shared: &'a Arc<Shared<R>>,
    cfg: &'a VirtioConfig,
    mapper: &'a Arc<dyn IovaMapper>,
    event_idx: bool,
    packed: bool,
}

impl<R: VirtioRegs> SetUp<'_, R> {
    fn memory(&self, len: usize, what: &str) -> Result<SharedMemory, Error> {
        let dev = || self.shared.transport.device().to_string();
        let region = DmaRegion::allocate(
            len,
            self.cfg.dma_page,
            self.cfg.huge_pages,
            self.mapper.clone(),
        )
        .map_err(|source| Error::VirtioDma {
            what: format!("{} {what}", dev()),
            len,
            source: Box::new(source),
        })?;
        let mem = SharedMemory::new(region);
        if !mem.is_contiguous(0, len) {
            return Err(Error::VirtioQueue {
                device: dev(),
                queue: 0,
                why: format!(
                    "{what}: {len} bytes of DMA memory are not IOVA-contiguous (use hugepages)"
                ),
            });
        }
        Ok(mem)
    }

    /// Sizes, allocates and enables queue `index` (REFERENCE B3 step 5).
    fn queue<T>(&self, index: u16, want: u16) -> Result<(Virtqueue<T>, Notifier<R>), Error> {
        let t = &self.shared.transport;
        let max = t.queue_max_size(index)?;
        let size = want.min(max).min(super::ring::MAX_QUEUE_SIZE);
        if size == 0 {
            return Err(Error::VirtioQueue {
                device: t.device().to_string(),
                queue: index,
                why: "absent (queue_size reads 0)".into(),
            });
        }
        // Round down to a power of two (QEMU accepts any size; the split ring math needs
        // one, and packed rings keep the same sizes).
        let size = 1u16 << (15 - size.leading_zeros());
        let bad_size = || Error::VirtioQueue {
            device: t.device().to_string(),
            queue: index,
            why: format!("size {size} is not a power of two"),
        };
        let vq = if self.packed {
            let layout = PackedLayout::new(size).ok_or_else(bad_size)?;
            let mem = Arc::new(self.memory(layout.len, &format!("queue {index}"))?);
            Virtqueue::Packed(PackedQueue::new(index, mem, layout, self.event_idx))
        } else {
            let layout = RingLayout::new(size).ok_or_else(bad_size)?;
            let mem = Arc::new(self.memory(layout.len, &format!("queue {index}"))?);
            Virtqueue::Split(SplitQueue::new(index, mem, layout, self.event_idx))
        };
        let notifier = t.enable_queue(index, size, vq.iovas())?;
        Ok((vq, notifier))
    }
}

impl<R: VirtioRegs> NetPort for VirtioPort<R> {
    type Rx = VirtioRxQueue<R>;
    type Tx = VirtioTxQueue<R>;

    fn info(&self) -> &PortInfo {
        &self.info
    }

    /// From the device's `status` field when STATUS was negotiated; up otherwise.
    fn link(&self) -> LinkStatus {
        if self.features & feature::STATUS == 0 {
            return LinkStatus::Up { speed_mbps: None };
        }
        match self.shared.transport.config16(6) {
            Ok(s) if s & 1 != 0 => LinkStatus::Up { speed_mbps: None },
            _ => LinkStatus::Down,
        }
    }

    fn take_queues(&mut self) -> Option<Queues<VirtioRxQueue<R>, VirtioTxQueue<R>>> {
        self.queues.take()
    }

    fn counters(&self) -> PortCounters {
        self.counters.clone()
    }
}

impl<R: VirtioRegs> Drop for VirtioPort<R> {
    fn drop(&mut self) {
        // Queues never taken park themselves as they drop; the control queue's ring and
        // command page are parked here.
        self.queues = None;
        if let Some(c) = self.ctrl.take() {
            let (mut vq, page) = c.into_parts();
            self.shared.park(&mut vq);
            let mut p = self.shared.parked.lock().unwrap_or_else(|e| e.into_inner());
            p.rings.push(Arc::new(page));
        }
    }
}
