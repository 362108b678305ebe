//! A software virtio-net device for tests (feature `test-utils`): the modern PCI register
//! layout of QEMU 7.2 (docs/devices.md#qemu-virtio-net-modern-pci: common @0, ISR @0x1000,
//! device @0x2000, notify @0x3000 with multiplier 4) behind [`Registers`], feature
//! negotiation with FEATURES_OK checked, split or packed virtqueues (packed when the driver
//! accepts `RING_PACKED`) walked on the driver's real ring memory, a control queue,
//! mergeable receive buffers, multiqueue, and fault injection into the used ring.
//!
//! Frames the driver transmits on queue pair `q` are captured ([`SoftVirtioNet::take_sent`])
//! and, with `loopback`, delivered to receive queue `q`. Frames handed to
//! [`SoftVirtioNet::inject`] wait until the receive queue has buffers. By default a notify
//! processes the queue at once (inline, deterministic); with [`SoftVirtioNet::set_auto`]
//! `(false)` nothing moves until [`SoftVirtioNet::step`], which a test may call from a
//! thread of its own, as a polling device would.
//!
//! **IOVA = virtual address**: the model dereferences the addresses the driver gives it;
//! use it only with memory from the identity mapper.
//!
//! # Ring engines
//! [`ModelConfig::engine`] says which code walks the receive and transmit rings:
//! - [`RingEngine::Own`] (the default): this module's, over raw atomics. It is the one with
//!   fault injection ([`SoftVirtioNet::inject_used`], [`SoftVirtioNet::jump_used`]).
//! - [`RingEngine::RustVmm`]: rust-vmm's `virtio-queue` over a `vm-memory` guest memory made
//!   of the queues' rings and the pools mapped with [`SoftVirtioNet::map_pool`] — an
//!   implementation not written with the driver, which also refuses any address outside
//!   that memory. See `vmm.rs`. It has no packed rings: a driver accepting `RING_PACKED`
//!   from a model on this engine is a test bug, and the model panics when the queue is
//!   enabled.
//!
//! The register file, feature negotiation and the control queue are the model's own in both.

#[allow(unsafe_code)]
mod guest;
#[allow(unsafe_code)]
mod mem;
mod rings;
mod vmm;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use sluice_mempool::PktPool;

use super::ring::packed::{DESC_F_AVAIL, DESC_F_USED, EVENT_F_DESC, EVENT_F_DISABLE};
use super::ring::{DESC_F_NEXT, DESC_F_WRITE};
use super::transport::pci::{CommonCfg, NetConfig};
use super::{NET_HDR_LEN, NetHdr, feature, status};
use crate::mmio::MmioError;
use crate::pci::caps::{VirtioCfgType, VirtioPciCap};
use crate::regs::Registers;
use vmm::{RustVmmRings, RxShape};

const ISR: usize = 0x1000;
const DEVICE: usize = 0x2000;
const NOTIFY: usize = 0x3000;
const NOTIFY_MULT: u32 = 4;
/// The BAR's size.
pub const BAR_LEN: usize = 0x4000;

/// Which code walks the split rings of the receive and transmit queues (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RingEngine {
    /// The model's own ring code; fault injection needs it.
    #[default]
    Own,
    /// rust-vmm's `virtio_queue::Queue` over a `vm_memory::GuestMemoryMmap` of the queues'
    /// rings and the pools given to [`SoftVirtioNet::map_pool`] (every pool the driver posts
    /// buffers of must be mapped).
    RustVmm,
}

/// The model's shape.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Which code walks the receive and transmit rings.
    pub engine: RingEngine,
    /// Features offered.
    pub features: u64,
    /// Features the device insists on (FEATURES_OK is refused without them), as QEMU
    /// behind an IOMMU does with ACCESS_PLATFORM.
    pub insists_on: u64,
    /// `max_virtqueue_pairs` (used with MQ).
    pub max_pairs: u16,
    /// Every queue's maximum size.
    pub queue_max: u16,
    /// The MAC address in device config.
    pub mac: [u8; 6],
    /// Link up (device config `status` bit 0).
    pub link_up: bool,
    /// Transmitted frames are delivered to the same pair's receive queue.
    pub loopback: bool,
    /// Sets `VIRTQ_USED_F_NO_NOTIFY` (without EVENT_IDX the driver should not notify), and
    /// keeps it set.
    pub no_notify: bool,
    /// Transmit chains are used in the reverse of the order they were taken in, per pass:
    /// without IN_ORDER a device may use buffers in any order (virtio 1.2 §2.7.8), as
    /// backends completing asynchronous I/O do.
    pub tx_out_of_order: bool,
    /// On a packed ring with EVENT_IDX, a transmit pass leaves the notification request at
    /// the buffer it started from, though it went on past it, as QEMU 7.2's
    /// `virtio_net_tx_complete` does: the device then asks for a buffer it has taken.
    pub stale_tx_event: bool,
    /// The status register never reads 0 after a reset.
    pub stuck_reset: bool,
    /// `virtio_net_hdr.flags` written with every received frame (with GUEST_CSUM:
    /// 1 NEEDS_CSUM, 2 DATA_VALID).
    pub rx_hdr_flags: u8,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            engine: RingEngine::Own,
            // What QEMU 7.2 offers with a hubport backend and this driver takes
            // (docs/devices.md#qemu-virtio-net-modern-pci), plus MQ.
            features: feature::VERSION_1
                | feature::EVENT_IDX
                | feature::MAC
                | feature::MRG_RXBUF
                | feature::STATUS
                | feature::CTRL_VQ
                | feature::CTRL_RX
                | feature::MQ,
            insists_on: 0,
            max_pairs: 4,
            queue_max: 256,
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            link_up: true,
            loopback: false,
            no_notify: false,
            stale_tx_event: false,
            tx_out_of_order: false,
            stuck_reset: false,
            rx_hdr_flags: 0,
        }
    }
}

/// What the driver did to the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Notify writes, by kind.
    pub notifies: u64,
    /// Notify writes while DRIVER_OK was not set (virtio 1.2 §3.1.1: the driver must not
    /// send any before DRIVER_OK).
    pub early_notifies: u64,
    /// Frames dropped because a receive buffer was too small (QEMU drops them silently).
    pub rx_too_small: u64,
    /// Control commands executed.
    pub ctrl_commands: u64,
}

/// One descriptor as the device sees it: address, length, device-writable.
type Buf = (u64, u32, bool);

#[derive(Clone, Copy, Debug, Default)]
struct Queue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    enabled: bool,
    /// Split: the next available index to read; packed: the next descriptor slot.
    last_avail: u16,
    /// Split: the used index; packed: the slot of the next used descriptor.
    used_idx: u16,
    /// A packed ring (`desc`, `avail`, `used` are then the descriptor ring, driver area and
    /// device area).
    packed: bool,
    /// Packed: the device's wrap counters at `last_avail` and `used_idx`.
    avail_wrap: bool,
    used_wrap: bool,
}

/// Where the device reads next: (index or slot, wrap counter).
type Cursor = (u16, bool);

struct State {
    cfg: ModelConfig,
    status: u8,
    dev_sel: u32,
    drv_sel: u32,
    driver_features: u64,
    queue_sel: u16,
    queues: Vec<Queue>,
    pending: Vec<VecDeque<Vec<u8>>>,
    sent: Vec<(u16, Vec<u8>)>,
    auto: bool,
    promisc: bool,
    allmulti: bool,
    active_pairs: u16,
    /// Fault: the `num_buffers` written into received frames instead of the true count.
    num_buffers: Option<u16>,
    stats: ModelStats,
    /// Removed from under the driver ([`SoftVirtioNet::remove`]).
    removed: Option<Removed>,
    /// The rust-vmm engine (runs no queue with [`RingEngine::Own`]).
    vmm: RustVmmRings,
}

/// The software device; share it as `Arc<SoftVirtioNet>` between the driver (as its
/// [`Registers`]) and the test.
pub struct SoftVirtioNet {
    state: Mutex<State>,
}

impl SoftVirtioNet {
    /// A device as `cfg` says, reset.
    pub fn new(cfg: ModelConfig) -> Arc<Self> {
        let nq = 2 * usize::from(cfg.max_pairs) + 1;
        Arc::new(Self {
            state: Mutex::new(State {
                pending: vec![VecDeque::new(); usize::from(cfg.max_pairs)],
                queues: vec![Queue::default(); nq],
                vmm: RustVmmRings::new(nq, &cfg),
                cfg,
                status: 0,
                dev_sel: 0,
                drv_sel: 0,
                driver_features: 0,
                queue_sel: 0,
                sent: Vec::new(),
                auto: true,
                promisc: true,
                allmulti: false,
                active_pairs: 1,
                num_buffers: None,
                stats: ModelStats::default(),
                removed: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The virtio PCI capabilities of this device (all in BAR 4, as QEMU lays them out).
    pub fn caps(&self) -> Vec<VirtioPciCap> {
        let cap = |cfg_type, offset: usize, length: usize, mult| VirtioPciCap {
            cap_offset: 0x40,
            cfg_type,
            bar: 4,
            id: 0,
            offset: offset as u32,
            length: length as u32,
            notify_off_multiplier: mult,
        };
        vec![
            cap(VirtioCfgType::Common, 0, 0x1000, None),
            cap(VirtioCfgType::Isr, ISR, 0x1000, None),
            cap(VirtioCfgType::Device, DEVICE, 0x1000, None),
            cap(VirtioCfgType::Notify, NOTIFY, 0x1000, Some(NOTIFY_MULT)),
        ]
    }

    /// Lets the device reach `pool`'s buffers (its whole DMA region, at IOVA = VA). The
    /// rust-vmm engine reaches nothing else but the rings, so every pool the driver posts
    /// buffers of must be mapped; the own engine needs no mapping. The model keeps a handle of
    /// the pool, so the memory outlives the device.
    ///
    /// # Panics
    /// If the pool was not made with the identity mapper.
    pub fn map_pool(&self, pool: &PktPool) {
        self.lock().vmm.map_pool(pool);
    }

    /// Processes notifications as they come (`true`, the default) or only in [`step`](Self::step).
    pub fn set_auto(&self, auto: bool) {
        self.lock().auto = auto;
    }

    /// Processes every enabled queue once, as a polling device would.
    pub fn step(&self) {
        let mut s = self.lock();
        if s.status & status::DRIVER_OK == 0 {
            return;
        }
        for q in 0..s.queues.len() as u16 {
            s.process(q);
        }
    }

    /// Queues `frame` for receive queue `pair`; it is written when that queue has buffers.
    pub fn inject(&self, pair: u16, frame: &[u8]) {
        let mut s = self.lock();
        s.pending[usize::from(pair)].push_back(frame.to_vec());
        if s.auto && s.status & status::DRIVER_OK != 0 {
            s.deliver(pair);
        }
    }

    /// Frames still waiting for receive buffers on `pair`.
    pub fn pending(&self, pair: u16) -> usize {
        self.lock().pending[usize::from(pair)].len()
    }

    /// Takes the frames transmitted so far, with their queue pair, headers stripped.
    pub fn take_sent(&self) -> Vec<(u16, Vec<u8>)> {
        std::mem::take(&mut self.lock().sent)
    }

    /// Removes the device from under the driver: from now on every register reads all ones
    /// (as a PCIe read of a removed device does), writes reach nothing and no queue is
    /// processed. [`Removed::Released`] also plays VFIO's release after the kernel asked for
    /// the device back: [`Registers::removed`] turns true.
    pub fn remove(&self, how: Removed) {
        self.lock().removed = Some(how);
    }

    /// The device status register.
    pub fn status(&self) -> u8 {
        self.lock().status
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.lock().driver_features
    }

    /// Promiscuous and all-multicast, as the control queue last set them.
    pub fn rx_mode(&self) -> (bool, bool) {
        let s = self.lock();
        (s.promisc, s.allmulti)
    }

    /// Queue pairs made active by MQ_VQ_PAIRS_SET.
    pub fn active_pairs(&self) -> u16 {
        self.lock().active_pairs
    }

    /// Counters.
    pub fn stats(&self) -> ModelStats {
        self.lock().stats
    }

    /// Sets the link bit.
    pub fn set_link(&self, up: bool) {
        self.lock().cfg.link_up = up;
    }

    /// Fault: writes a used entry `{id, len}` on queue `q` and publishes it. On a packed
    /// ring a used descriptor takes the place of an available one, so this consumes the
    /// next available buffer and returns it under `id`/`len` instead of its own (as a device
    /// mixing up its buffers would).
    ///
    /// # Panics
    /// With [`RingEngine::RustVmm`]: this writes the used ring behind the engine's back
    /// (virtio-queue keeps its own used index). On a packed ring with no buffer available.
    pub fn inject_used(&self, q: u16, id: u32, len: u32) {
        let mut s = self.lock();
        s.own_engine_only("inject_used");
        let descs = if s.queues[usize::from(q)].packed {
            let Some((_, chain)) = s.pop_avail(q) else {
                panic!("model: inject_used on packed queue {q}: no buffer available");
            };
            chain.len() as u16
        } else {
            1
        };
        // A device claiming to have written something says so with WRITE on a packed ring
        // (which QEMU never sets: see `push_used`).
        let flags = if len > 0 { DESC_F_WRITE } else { 0 };
        s.push_used_flags(q, id, len, descs, flags);
    }

    /// Fault: writes `n` as the `num_buffers` of every frame received from now on, whatever
    /// the number of buffers it takes (and with or without `MRG_RXBUF`); `None` writes the
    /// true count again.
    ///
    /// # Panics
    /// As [`inject_used`](Self::inject_used).
    pub fn set_num_buffers(&self, n: Option<u16>) {
        let mut s = self.lock();
        s.own_engine_only("set_num_buffers");
        s.num_buffers = n;
    }

    /// Fault: writes `bytes` into the memory of queue `q` that the device writes — a split
    /// ring's used ring (flags, index, entries, `avail_event`), a packed ring's descriptor
    /// ring and device event area — at `offset` modulo its length, cut at its end, as a
    /// broken or hostile device would. Returns how many bytes were written (0 for a queue
    /// not set up).
    ///
    /// The model's own ring state is not updated: once a test scribbles, it should not let
    /// the model walk the rings again ([`step`](Self::step), or notifies with
    /// [`set_auto`](Self::set_auto) on), which would trust what it finds there.
    pub fn scribble(&self, q: u16, offset: usize, bytes: &[u8]) -> usize {
        let s = self.lock();
        let Some(qu) = s.queues.get(usize::from(q)).filter(|qu| qu.enabled) else {
            return 0;
        };
        let size = usize::from(qu.size);
        let areas: [(u64, usize); 2] = if qu.packed {
            [(qu.desc, 16 * size), (qu.used, 4)]
        } else {
            [(qu.used, 6 + 8 * size), (0, 0)]
        };
        let total: usize = areas.iter().map(|a| a.1).sum();
        if total == 0 {
            return 0;
        }
        let mut at = offset % total;
        let mut done = 0;
        for (base, len) in areas {
            if at >= len {
                at -= len;
                continue;
            }
            let n = bytes.len().saturating_sub(done).min(len - at);
            mem::write_bytes(base + at as u64, &bytes[done..done + n]);
            done += n;
            at = 0;
        }
        done
    }

    /// Fault: moves queue `q`'s used index `n` ahead without writing entries.
    ///
    /// # Panics
    /// As [`inject_used`](Self::inject_used).
    pub fn jump_used(&self, q: u16, n: u16) {
        let mut s = self.lock();
        s.own_engine_only("jump_used");
        let qu = &mut s.queues[usize::from(q)];
        assert!(
            !qu.packed,
            "model: jump_used: a packed ring has no used index"
        );
        qu.used_idx = qu.used_idx.wrapping_add(n);
        mem::store_u16(qu.used + 2, qu.used_idx, Ordering::Release);
    }
}

impl State {
    fn reset(&mut self) {
        self.status = 0;
        self.driver_features = 0;
        for q in &mut self.queues {
            *q = Queue::default();
        }
        self.promisc = true;
        self.allmulti = false;
        self.active_pairs = 1;
        self.vmm.reset();
    }

    fn own_engine_only(&self, what: &str) {
        assert_eq!(
            self.cfg.engine,
            RingEngine::Own,
            "model: {what} writes the own engine's used ring"
        );
    }

    fn has(&self, f: u64) -> bool {
        self.driver_features & f != 0
    }

    /// Queue index of the control queue: 2N with MQ, else 2 (virtio 1.2 §5.1.2).
    fn ctrl_index(&self) -> u16 {
        if self.has(feature::MQ) {
            2 * self.cfg.max_pairs
        } else {
            2
        }
    }

    fn num_queues(&self) -> u16 {
        2 * self.cfg.max_pairs + 1
    }

    fn write_status(&mut self, v: u8) {
        if v == 0 {
            self.reset();
            if self.cfg.stuck_reset {
                self.status = status::ACKNOWLEDGE;
            }
            return;
        }
        let mut v = v;
        if v & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0 {
            let f = self.driver_features;
            let ok = f & !self.cfg.features == 0 && f & self.cfg.insists_on == self.cfg.insists_on;
            if !ok {
                v &= !status::FEATURES_OK;
            }
        }
        self.status = v;
        if v & status::DRIVER_OK != 0 {
            for pair in 0..self.cfg.max_pairs {
                self.deliver(pair);
            }
        }
    }

    /// Queue `q` was just enabled: hands it to the engine that runs it.
    fn enable_queue(&mut self, q: u16) {
        let packed = self.has(feature::RING_PACKED);
        let qu = &mut self.queues[usize::from(q)];
        // Both wrap counters start at 1 (virtio 1.2 §2.8.1).
        (qu.packed, qu.avail_wrap, qu.used_wrap) = (packed, true, true);
        let regs = *qu;
        if packed {
            assert!(
                self.cfg.engine == RingEngine::Own,
                "model: rust-vmm's virtio-queue has no packed rings"
            );
            if self.cfg.no_notify {
                mem::store_u16(regs.used + 2, EVENT_F_DISABLE, Ordering::Relaxed);
            }
        } else if self.cfg.engine == RingEngine::RustVmm && q != self.ctrl_index() {
            let event_idx = self.has(feature::EVENT_IDX);
            self.vmm.enable(q, &regs, self.cfg.queue_max, event_idx);
        } else if self.cfg.no_notify {
            mem::store_u16(regs.used, 1, Ordering::Relaxed);
        }
    }

    fn read(&self, offset: usize, width: usize) -> u32 {
        if self.removed.is_some() {
            return u32::MAX >> (32 - 8 * width);
        }
        let qu = self.queues.get(usize::from(self.queue_sel)).copied();
        match offset {
            reg::DEVICE_FEATURE => match self.dev_sel {
                0 => self.cfg.features as u32,
                1 => (self.cfg.features >> 32) as u32,
                _ => 0,
            },
            reg::NUM_QUEUES => u32::from(self.num_queues()),
            reg::DEVICE_STATUS => u32::from(self.status),
            reg::CONFIG_GENERATION => 0,
            reg::QUEUE_SIZE => qu.map_or(0, |q| {
                if q.size == 0 {
                    u32::from(self.cfg.queue_max)
                } else {
                    u32::from(q.size)
                }
            }),
            reg::QUEUE_NOTIFY_OFF => u32::from(self.queue_sel),
            reg::QUEUE_ENABLE => qu.map_or(0, |q| u32::from(q.enabled)),
            ISR => 0,
            o if (reg::MAC..reg::MAC + 6).contains(&o) && width == 1 => {
                u32::from(self.cfg.mac[o - reg::MAC])
            }
            reg::NET_STATUS => u32::from(self.cfg.link_up),
            reg::MAX_VIRTQUEUE_PAIRS => u32::from(self.cfg.max_pairs),
            _ => 0,
        }
    }

    fn write(&mut self, offset: usize, v: u32) {
        if self.removed.is_some() {
            return;
        }
        let sel = usize::from(self.queue_sel);
        // A 64-bit field's low (at its offset) or high half (4 bytes on).
        let set_half = |cur: u64, at: usize| {
            if at == 0 {
                (cur & !0xffff_ffff) | u64::from(v)
            } else {
                (cur & 0xffff_ffff) | u64::from(v) << 32
            }
        };
        match offset {
            reg::DEVICE_FEATURE_SELECT => self.dev_sel = v,
            reg::DRIVER_FEATURE_SELECT => self.drv_sel = v,
            reg::DRIVER_FEATURE => match self.drv_sel {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
                1 => {
                    self.driver_features = (self.driver_features & 0xffff_ffff) | u64::from(v) << 32
                }
                _ => {}
            },
            reg::DEVICE_STATUS => self.write_status(v as u8),
            reg::QUEUE_SELECT => self.queue_sel = v as u16,
            o if sel < self.queues.len() && (reg::QUEUE_SIZE..CommonCfg::LEN).contains(&o) => {
                let q = &mut self.queues[sel];
                match o {
                    reg::QUEUE_SIZE => q.size = v as u16,
                    reg::QUEUE_ENABLE => q.enabled = v == 1,
                    o if (reg::QUEUE_DESC..reg::QUEUE_DESC + 8).contains(&o) => {
                        q.desc = set_half(q.desc, o - reg::QUEUE_DESC)
                    }
                    o if (reg::QUEUE_DRIVER..reg::QUEUE_DRIVER + 8).contains(&o) => {
                        q.avail = set_half(q.avail, o - reg::QUEUE_DRIVER)
                    }
                    o if (reg::QUEUE_DEVICE..reg::QUEUE_DEVICE + 8).contains(&o) => {
                        q.used = set_half(q.used, o - reg::QUEUE_DEVICE)
                    }
                    _ => {}
                }
                if o == reg::QUEUE_ENABLE && v == 1 {
                    self.enable_queue(sel as u16);
                }
            }
            o if (NOTIFY..NOTIFY + 4 * usize::from(self.num_queues())).contains(&o) => {
                self.stats.notifies += 1;
                if self.status & status::DRIVER_OK == 0 {
                    self.stats.early_notifies += 1;
                }
                if self.auto && self.status & status::DRIVER_OK != 0 {
                    self.process(((o - NOTIFY) / 4) as u16);
                }
            }
            _ => {}
        }
    }
}

/// BAR offsets of the registers the model plays: the common block at 0 and the device block
/// at [`DEVICE`], laid out by the driver's own typed blocks.
mod reg {
    use super::{CommonCfg, DEVICE, NetConfig};

    pub const DEVICE_FEATURE_SELECT: usize = CommonCfg::DEVICE_FEATURE_SELECT.offset();
    pub const DEVICE_FEATURE: usize = CommonCfg::DEVICE_FEATURE.offset();
    pub const DRIVER_FEATURE_SELECT: usize = CommonCfg::DRIVER_FEATURE_SELECT.offset();
    pub const DRIVER_FEATURE: usize = CommonCfg::DRIVER_FEATURE.offset();
    pub const NUM_QUEUES: usize = CommonCfg::NUM_QUEUES.offset();
    pub const DEVICE_STATUS: usize = CommonCfg::DEVICE_STATUS.offset();
    pub const CONFIG_GENERATION: usize = CommonCfg::CONFIG_GENERATION.offset();
    pub const QUEUE_SELECT: usize = CommonCfg::QUEUE_SELECT.offset();
    pub const QUEUE_SIZE: usize = CommonCfg::QUEUE_SIZE.offset();
    pub const QUEUE_ENABLE: usize = CommonCfg::QUEUE_ENABLE.offset();
    pub const QUEUE_NOTIFY_OFF: usize = CommonCfg::QUEUE_NOTIFY_OFF.offset();
    pub const QUEUE_DESC: usize = CommonCfg::QUEUE_DESC.offset();
    pub const QUEUE_DRIVER: usize = CommonCfg::QUEUE_DRIVER.offset();
    pub const QUEUE_DEVICE: usize = CommonCfg::QUEUE_DEVICE.offset();
    pub const MAC: usize = DEVICE + NetConfig::MAC.offset();
    pub const NET_STATUS: usize = DEVICE + NetConfig::STATUS.offset();
    pub const MAX_VIRTQUEUE_PAIRS: usize = DEVICE + NetConfig::MAX_VIRTQUEUE_PAIRS.offset();
}

/// A received frame as the device writes it: `virtio_net_hdr_v1` (virtio 1.2 §5.1.6) with
/// `flags` and `num_buffers`, then the frame.
fn rx_frame(frame: &[u8], flags: u8, num_buffers: u16) -> Vec<u8> {
    let mut hdr = [0u8; NET_HDR_LEN];
    NetHdr {
        flags,
        num_buffers,
        ..NetHdr::default()
    }
    .write(&mut hdr);
    let mut data = hdr.to_vec();
    data.extend_from_slice(frame);
    data
}

fn check(offset: usize, width: usize) -> Result<(), MmioError> {
    if offset + width > BAR_LEN || !offset.is_multiple_of(width) {
        return Err(MmioError::OutOfBounds {
            offset,
            width,
            len: BAR_LEN,
        });
    }
    Ok(())
}

/// How a model device was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    /// Gone without notice: only all-ones reads tell.
    Surprise,
    /// Gone after the kernel asked for it back and VFIO released it.
    Released,
}

impl Registers for SoftVirtioNet {
    fn removed(&self) -> bool {
        self.lock().removed == Some(Removed::Released)
    }
    fn read8(&self, offset: usize) -> Result<u8, MmioError> {
        check(offset, 1)?;
        Ok(self.lock().read(offset, 1) as u8)
    }
    fn read16(&self, offset: usize) -> Result<u16, MmioError> {
        check(offset, 2)?;
        Ok(self.lock().read(offset, 2) as u16)
    }
    fn read32(&self, offset: usize) -> Result<u32, MmioError> {
        check(offset, 4)?;
        Ok(self.lock().read(offset, 4))
    }
    fn write8(&self, offset: usize, value: u8) -> Result<(), MmioError> {
        check(offset, 1)?;
        self.lock().write(offset, u32::from(value));
        Ok(())
    }
    fn write16(&self, offset: usize, value: u16) -> Result<(), MmioError> {
        check(offset, 2)?;
        self.lock().write(offset, u32::from(value));
        Ok(())
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        check(offset, 4)?;
        self.lock().write(offset, value);
        Ok(())
    }
}
