//! [`VirtioPort`]: bring-up (virtio 1.2 §3.1.1 in order), the [`NetPort`] API, and shutdown,
//! over any [`Transport`].
//!
//! The transport and everything the device may still touch live in [`Shared`], which the
//! port and every queue handle hold an `Arc` of; the last one to go resets the device before
//! anything it was given is freed (see [`super::shared`]).

use std::sync::Arc;
use std::time::Duration;

use sluice_mempool::{DmaRegion, HugePagePolicy, IovaMapper, PageSize, PktBuf, PktPool};

use super::ctrl::{ControlQueue, CtrlCommand};
use super::net::{VirtioRxQueue, VirtioTxQueue};
use super::ring::packed::{PackedLayout, PackedQueue};
use super::ring::split::{RingLayout, SplitQueue};
use super::ring::{RingKind, Virtqueue};
use super::shared::Shared;
use super::transport::{PciTransport, Transport, negotiate};
use super::{CtrlFailure, NET_HDR_LEN, VirtioError, feature, status};
use crate::SharedMemory;
use crate::error::Error;
use crate::net::{LinkStatus, MacAddr, NetPort, PortCounters, PortInfo, Queues};

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

/// A virtio-net port: a device brought up with its queues, behind transport `T` (the PCI
/// transport over VFIO by default; see [`PciTransport`]).
pub struct VirtioPort<T: Transport = PciTransport> {
    info: PortInfo,
    features: u64,
    ring_kind: RingKind,
    queues: Option<Queues<VirtioRxQueue<T>, VirtioTxQueue<T>>>,
    ctrl: Control<T>,
    counters: PortCounters,
    // Last: the port's own hold on the device.
    shared: Arc<Shared<T>>,
}

/// Where the port's control commands go.
// One per port, control path: boxing the queue would only add an indirection.
#[allow(clippy::large_enum_variant)]
enum Control<T: Transport> {
    /// CTRL_VQ was not negotiated.
    None,
    /// The device's control virtqueue.
    Queue(ControlQueue<T::Doorbell>),
    /// The transport executes them ([`Transport::device_control_queue`] is false).
    Transport,
}

impl<T: Transport> core::fmt::Debug for VirtioPort<T> {
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

impl<T: Transport> VirtioPort<T> {
    /// Brings up the device behind `transport` (virtio 1.2 §3.1.1): feature negotiation,
    /// queue set-up with ring memory from `mapper`, receive rings filled from `pool`,
    /// DRIVER_OK, then the control commands (active queue pairs, receive mode).
    ///
    /// # Errors
    /// As [`VirtioError`]: [`FeatureMissing`](VirtioError::FeatureMissing),
    /// [`FeaturesRefused`](VirtioError::FeaturesRefused), [`QueuePairs`](VirtioError::QueuePairs),
    /// [`QueueAbsent`](VirtioError::QueueAbsent), [`PoolHeadroom`](VirtioError::PoolHeadroom),
    /// [`Dma`](VirtioError::Dma), [`Ctrl`](VirtioError::Ctrl), [`Timeout`](VirtioError::Timeout);
    /// and the transport's own. The device is reset on every error after negotiation.
    pub fn with_transport(
        transport: T,
        cfg: &VirtioConfig,
        pool: &PktPool,
        mapper: Arc<dyn IovaMapper>,
    ) -> Result<Self, Error> {
        Self::bring_up(transport, cfg, pool, mapper, ())
    }

    /// [`with_transport`](Self::with_transport), keeping `kept` (what the device may reach
    /// besides its rings and buffers, such as a pool's IOMMU mapping) until the device is
    /// reset.
    pub(in crate::virtio) fn bring_up(
        transport: T,
        cfg: &VirtioConfig,
        pool: &PktPool,
        mapper: Arc<dyn IovaMapper>,
        kept: impl Send + 'static,
    ) -> Result<Self, Error> {
        let features = negotiate(
            &transport,
            cfg.features & feature::SUPPORTED,
            feature::VERSION_1,
        )?;
        let shared = Arc::new(Shared::new(transport));
        shared.keep(kept);
        // From here on an error drops `shared`, which resets the device before the rings go.
        let t = shared.transport();
        let has = |f: u64| features & f != 0;
        let max_pairs = if has(feature::MQ) {
            t.max_queue_pairs()?.max(1)
        } else {
            1
        };
        check_shape(t.device(), cfg, pool, max_pairs, has(feature::MQ))?;
        let mac = if has(feature::MAC) {
            MacAddr(t.mac()?)
        } else {
            cfg.mac.unwrap_or(MacAddr::local(u32::from(cfg.port_id)))
        };
        let mut setup = SetUp {
            shared: &shared,
            cfg,
            mapper: &mapper,
            event_idx: has(feature::EVENT_IDX),
            packed: has(feature::RING_PACKED),
            arena: None,
        };
        if t.rings_in_one_region() {
            setup.arena = Some(setup.arena()?);
        }
        let counters = PortCounters::new(cfg.queues.into(), cfg.queues.into());
        let mut queues = setup.queues(pool, &counters, features)?;
        let ctrl = if !has(feature::CTRL_VQ) {
            Control::None
        } else if t.device_control_queue() {
            let (vq, doorbell) = setup.queue::<()>(2 * max_pairs, 64)?;
            let page = setup.memory(4096, "control commands")?;
            let device = t.device().to_string();
            Control::Queue(ControlQueue::new(vq, doorbell, page, device, cfg.timeout))
        } else {
            Control::Transport
        };
        // Filled now, notified after DRIVER_OK (virtio 1.2 §3.1.1).
        let asked: Vec<bool> = queues.rx.iter_mut().map(|q| q.fill().1).collect();
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
            queues: Some(queues),
            ctrl,
            counters,
            shared: shared.clone(),
        };
        drop(shared);
        let t = port.shared.transport();
        t.set_status(t.status()? | status::DRIVER_OK)?;
        if let Some(queues) = &mut port.queues {
            for (q, _) in queues.rx.iter_mut().zip(asked).filter(|(_, asked)| *asked) {
                q.notify();
            }
        }
        port.start(cfg)?;
        Ok(port)
    }

    /// The control commands after DRIVER_OK: the queue pairs in use, the receive mode.
    fn start(&mut self, cfg: &VirtioConfig) -> Result<(), Error> {
        if cfg.queues > 1 {
            self.control(CtrlCommand::QueuePairs(cfg.queues))?;
        }
        if self.features & feature::CTRL_RX != 0 {
            self.set_promiscuous(cfg.promiscuous)?;
            if cfg.all_multicast {
                self.set_all_multicast(true)?;
            }
        }
        Ok(())
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
    pub fn shared(&self) -> &Arc<Shared<T>> {
        &self.shared
    }

    /// Sends `command` to the device's control queue, or has the transport execute it.
    ///
    /// # Errors
    /// [`VirtioError::Ctrl`] when the device or transport refuses it, or when CTRL_VQ was
    /// not negotiated.
    pub fn control(&mut self, command: CtrlCommand) -> Result<(), Error> {
        let t = self.shared.transport();
        match &mut self.ctrl {
            Control::Queue(c) => c.command(command),
            Control::Transport => t.control(command),
            Control::None => Err(command.failed(t.device(), CtrlFailure::NotNegotiated)),
        }
    }

    /// Turns promiscuous mode on or off (needs CTRL_RX).
    ///
    /// # Errors
    /// [`VirtioError::Ctrl`] when the device refuses or has no control queue.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<(), Error> {
        self.control(CtrlCommand::Promiscuous(on))
    }

    /// Turns all-multicast mode on or off (needs CTRL_RX).
    ///
    /// # Errors
    /// As [`set_promiscuous`](Self::set_promiscuous).
    pub fn set_all_multicast(&mut self, on: bool) -> Result<(), Error> {
        self.control(CtrlCommand::AllMulticast(on))
    }
}

/// Refuses a configuration the device or the pool cannot carry.
fn check_shape(
    device: &str,
    cfg: &VirtioConfig,
    pool: &PktPool,
    max_pairs: u16,
    mq: bool,
) -> Result<(), VirtioError> {
    if cfg.queues == 0 || cfg.queues > max_pairs {
        return Err(VirtioError::QueuePairs {
            device: device.to_string(),
            asked: cfg.queues,
            max: max_pairs,
            mq,
        });
    }
    if pool.headroom() < NET_HDR_LEN {
        return Err(VirtioError::PoolHeadroom {
            device: device.to_string(),
            pool: pool.name().to_string(),
            headroom: pool.headroom(),
            need: NET_HDR_LEN,
        });
    }
    Ok(())
}

/// One region that every ring of the port is carved from, in set-up order, each ring on a
/// page of its own ([`Transport::rings_in_one_region`]).
struct Arena {
    region: Arc<DmaRegion>,
    next: std::cell::Cell<usize>,
}

/// Where ring `len` bytes long starts in an arena: on a 4 KiB boundary.
fn arena_slot(len: usize) -> usize {
    len.next_multiple_of(4096)
}

/// Queue set-up helpers for `bring_up`.
struct SetUp<'a, T: Transport> {
    shared: &'a Arc<Shared<T>>,
    cfg: &'a VirtioConfig,
    mapper: &'a Arc<dyn IovaMapper>,
    event_idx: bool,
    packed: bool,
    arena: Option<Arena>,
}

impl<T: Transport> SetUp<'_, T> {
    fn allocate(&self, len: usize, what: &str) -> Result<DmaRegion, Error> {
        let dev = self.shared.transport().device();
        DmaRegion::allocate(
            len,
            self.cfg.dma_page,
            self.cfg.huge_pages,
            self.mapper.clone(),
        )
        .map_err(|source| {
            VirtioError::Dma {
                what: format!("{dev} {what}"),
                len,
                source: Box::new(source),
            }
            .into()
        })
    }

    /// Sizes every data ring as [`queue`](Self::queue) will, allocates one region for them
    /// all and announces it to the transport.
    fn arena(&self) -> Result<Arena, Error> {
        let mut total = 0;
        for q in 0..self.cfg.queues {
            for (index, want) in [
                (2 * q, self.cfg.rx_descriptors),
                (2 * q + 1, self.cfg.tx_descriptors),
            ] {
                let (_, len) = self.size(index, want)?;
                total += arena_slot(len);
            }
        }
        let region = Arc::new(self.allocate(total, "rings")?);
        self.shared.transport().share_rings(&region)?;
        // Kept until the reset, like each ring's window of it.
        self.shared.keep(region.clone());
        Ok(Arena {
            region,
            next: std::cell::Cell::new(0),
        })
    }

    fn memory(&self, len: usize, what: &str) -> Result<SharedMemory, Error> {
        let dev = || self.shared.transport().device().to_string();
        let mem = match &self.arena {
            Some(a) => {
                let start = a.next.get();
                a.next.set(start + arena_slot(len));
                // The whole slot: a window is a whole number of words.
                SharedMemory::window(a.region.clone(), start, arena_slot(len)).ok_or_else(|| {
                    VirtioError::RingRegion {
                        device: dev(),
                        what: what.to_string(),
                    }
                })?
            }
            None => SharedMemory::new(self.allocate(len, what)?),
        };
        if !mem.is_contiguous(0, len) {
            return Err(VirtioError::NotContiguous {
                device: dev(),
                what: what.to_string(),
                len,
            }
            .into());
        }
        Ok(mem)
    }

    /// The size queue `index` gets when `want` entries are asked for, and its ring's length
    /// in bytes.
    fn size(&self, index: u16, want: u16) -> Result<(u16, usize), Error> {
        let t = self.shared.transport();
        let max = t.max_queue_size(index)?;
        let size = want.min(max).min(super::ring::MAX_QUEUE_SIZE);
        if size == 0 {
            return Err(VirtioError::QueueAbsent {
                device: t.device().to_string(),
                queue: index,
            }
            .into());
        }
        // Round down to a power of two (QEMU accepts any size; the split ring math needs
        // one, and packed rings keep the same sizes).
        let size = 1u16 << (15 - size.leading_zeros());
        let bad_size = || VirtioError::QueueSize {
            device: t.device().to_string(),
            queue: index,
            size,
        };
        let len = if self.packed {
            PackedLayout::new(size).ok_or_else(bad_size)?.len
        } else {
            RingLayout::new(size).ok_or_else(bad_size)?.len
        };
        Ok((size, len))
    }

    /// Sizes, allocates and enables queue `index` (virtio 1.2 §3.1.1 step 7).
    fn queue<X>(&self, index: u16, want: u16) -> Result<(Virtqueue<X>, T::Doorbell), Error> {
        let t = self.shared.transport();
        let (size, len) = self.size(index, want)?;
        let what = format!("queue {index}");
        let bad_size = || VirtioError::QueueSize {
            device: t.device().to_string(),
            queue: index,
            size,
        };
        let vq = if self.packed {
            let layout = PackedLayout::new(size).ok_or_else(bad_size)?;
            let mem = Arc::new(self.memory(len, &what)?);
            Virtqueue::Packed(PackedQueue::new(index, mem, layout, self.event_idx))
        } else {
            let layout = RingLayout::new(size).ok_or_else(bad_size)?;
            let mem = Arc::new(self.memory(len, &what)?);
            Virtqueue::Split(SplitQueue::new(index, mem, layout, self.event_idx))
        };
        let doorbell = t.setup_queue(index, size, vq.iovas().into())?;
        Ok((vq, doorbell))
    }

    /// The receive and transmit queue of every pair, in index order.
    fn queues(
        &self,
        pool: &PktPool,
        counters: &PortCounters,
        features: u64,
    ) -> Result<Queues<VirtioRxQueue<T>, VirtioTxQueue<T>>, Error> {
        let cfg = self.cfg;
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for q in 0..cfg.queues {
            let (vq, doorbell) = self.queue::<PktBuf>(2 * q, cfg.rx_descriptors)?;
            rx.push(VirtioRxQueue::new(
                vq,
                doorbell,
                pool.clone(),
                counters.rx[usize::from(q)].clone(),
                features,
                cfg.port_id,
                q,
                self.shared.clone(),
            ));
            let (vq, doorbell) = self.queue::<PktBuf>(2 * q + 1, cfg.tx_descriptors)?;
            tx.push(VirtioTxQueue::new(
                vq,
                doorbell,
                counters.tx[usize::from(q)].clone(),
                q,
                self.shared.clone(),
            ));
        }
        Ok(Queues { rx, tx })
    }
}

impl<T: Transport> NetPort for VirtioPort<T> {
    type Rx = VirtioRxQueue<T>;
    type Tx = VirtioTxQueue<T>;

    fn info(&self) -> &PortInfo {
        &self.info
    }

    /// From the device's `status` field when STATUS was negotiated; up otherwise.
    fn link(&self) -> LinkStatus {
        if self.features & feature::STATUS == 0 {
            return LinkStatus::Up { speed_mbps: None };
        }
        match self.shared.transport().link_up() {
            Ok(true) => LinkStatus::Up { speed_mbps: None },
            _ => LinkStatus::Down,
        }
    }

    fn take_queues(&mut self) -> Option<Queues<VirtioRxQueue<T>, VirtioTxQueue<T>>> {
        self.queues.take()
    }

    fn counters(&self) -> PortCounters {
        self.counters.clone()
    }
}

impl<T: Transport> Drop for VirtioPort<T> {
    fn drop(&mut self) {
        // Queues never taken park themselves as they drop; the control queue's ring and
        // command page are parked here.
        self.queues = None;
        if let Control::Queue(c) = std::mem::replace(&mut self.ctrl, Control::None) {
            let (mut vq, page) = c.into_parts();
            self.shared.park(&mut vq);
            self.shared.keep(page);
        }
    }
}
