//! The transport seam: how the virtio-net driver reaches its device.
//!
//! The rings (split and packed), the datapath, the control queue and the checks on what the
//! device writes are the same whatever carries the device's registers and notifications; a
//! [`Transport`] is the rest (virtio 1.2 §4 lists the standard ones): feature negotiation,
//! the status byte, queue set-up with ring addresses, a [`Doorbell`] per queue, the few
//! device-configuration fields a net driver reads, and reset.
//!
//! - [`pci`]: [`PciTransport`], the modern virtio PCI transport (virtio 1.2 §4.1) behind
//!   VFIO, or over the software device of the tests (`model`). Its doorbell is a 16-bit
//!   MMIO store.
//! - [`vhost_user`]: [`VhostUserTransport`], the frontend of a vhost-user backend (another
//!   process on the host): its doorbell writes an eventfd, it keeps the status byte, the MAC
//!   and the link status itself, and it handles the control queue locally
//!   ([`Transport::device_control_queue`]).
//!
//! The driver is generic over the transport ([`VirtioPort<T>`](super::VirtioPort) and its
//! queue handles): every doorbell call on the data path is static, no `dyn`.
//!
//! [`negotiate`] is the driver's half of device initialisation (virtio 1.2 §3.1.1 steps 1–6)
//! written once against the trait.

pub mod pci;
pub mod vhost_user;

use std::fmt;

use sluice_mempool::{DmaRegion, Iova};

pub use pci::{PciDoorbell, PciTransport};
pub use vhost_user::{VhostUserDoorbell, VhostUserTransport};

use super::ctrl::CtrlCommand;
use super::{CtrlFailure, VirtioError, feature, status};
use crate::error::Error;

/// Where a queue's three areas are, in the device's address space (virtio 1.2 §2.6: the
/// descriptor area, the driver area and the device area; for a packed ring the descriptor
/// ring and the two event suppression structures, §2.8.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingAddrs {
    /// Descriptor table (split) or descriptor ring (packed).
    pub desc: Iova,
    /// Available ring (split) or driver event suppression (packed).
    pub driver: Iova,
    /// Used ring (split) or device event suppression (packed).
    pub device: Iova,
}

impl From<(Iova, Iova, Iova)> for RingAddrs {
    fn from((desc, driver, device): (Iova, Iova, Iova)) -> Self {
        Self {
            desc,
            driver,
            device,
        }
    }
}

/// A queue's doorbell: tells the device that the queue has new available buffers (virtio
/// 1.2 §2.9, "driver notifications").
///
/// Owned by the queue handle (one writer per doorbell) and moved with it to the thread that
/// polls it.
pub trait Doorbell: Send + fmt::Debug {
    /// Notifies the device.
    ///
    /// Data path: called at most once per burst, after the ring's publish said the device
    /// asked for it. It must not allocate, lock, block or format; one MMIO store or one
    /// eventfd write. An error is counted by the caller on the queue's counters and the
    /// burst goes on, so it must leave the doorbell usable for the next call.
    fn notify(&self) -> Result<(), Error>;
}

/// How the virtio-net driver reaches one device.
///
/// The driver calls, in order (virtio 1.2 §3.1.1): [`reset`](Self::reset), then
/// [`status`](Self::status)/[`set_status`](Self::set_status) with ACKNOWLEDGE and DRIVER,
/// [`device_features`](Self::device_features), [`set_driver_features`](Self::set_driver_features),
/// FEATURES_OK and its read-back, the configuration reads, [`setup_queue`](Self::setup_queue)
/// for each queue, DRIVER_OK; then control commands and [`link_up`](Self::link_up) while it
/// runs; [`reset`](Self::reset) last, when the port and every queue handle have gone.
///
/// Every method but [`Doorbell::notify`] is control path: it may allocate, sleep in bounded
/// waits and format errors; none may wait unboundedly. Errors name the device as
/// [`device`](Self::device) does. The transport is shared (`Sync`) between the port and its
/// queue handles; the last of them to go resets it, from any thread.
pub trait Transport: Send + Sync + 'static {
    /// A queue's doorbell, as [`setup_queue`](Self::setup_queue) hands it out.
    type Doorbell: Doorbell;

    /// The device's name in errors and warnings (a PCI address, a socket path).
    fn device(&self) -> &str;

    /// Resets the device (virtio 1.2 §2.4) and waits, bounded, until it confirms.
    ///
    /// `Ok` must mean that the device no longer reads or writes any memory it was given
    /// (rings, posted buffers) and has forgotten its queues and negotiated features: the
    /// driver frees that memory on `Ok`, and leaks it on `Err`. Called first in bring-up
    /// and once at teardown.
    fn reset(&self) -> Result<(), Error>;

    /// The device status byte ([`status`] bits, virtio 1.2 §2.1).
    fn status(&self) -> Result<u8, Error>;

    /// Writes the device status byte. The driver only adds bits to what
    /// [`status`](Self::status) read (it resets with [`reset`](Self::reset), never by
    /// writing 0 here). After FEATURES_OK, [`status`](Self::status) must read the bit back
    /// only if the device accepts the features written before.
    fn set_status(&self, status: u8) -> Result<(), Error>;

    /// Every feature bit the device offers (all 64, virtio 1.2 §2.2), including those the
    /// transport provides itself (a frontend that keeps the MAC offers MAC).
    fn device_features(&self) -> Result<u64, Error>;

    /// Accepts `features`, a subset of [`device_features`](Self::device_features); written
    /// before FEATURES_OK. A transport that provides a feature itself keeps it from the
    /// device it fronts.
    fn set_driver_features(&self, features: u64) -> Result<(), Error>;

    /// The largest size queue `queue` may have, or 0 if the device has no such queue.
    fn max_queue_size(&self, queue: u16) -> Result<u16, Error>;

    /// Sets up queue `queue` with `size` entries (a power of two at most
    /// [`max_queue_size`](Self::max_queue_size)) at `rings`, without interrupts (the driver
    /// polls), enables it, and returns its doorbell.
    ///
    /// Called after FEATURES_OK and before DRIVER_OK, once per queue, in increasing index:
    /// receive and transmit queue of pair 0, pair 1, ..., then the control queue (index
    /// `2 × max_queue_pairs`) if the device has one. The ring memory stays valid and
    /// unmoved until [`reset`](Self::reset) returns `Ok`.
    fn setup_queue(&self, queue: u16, size: u16, rings: RingAddrs)
    -> Result<Self::Doorbell, Error>;

    /// Whether the device reaches ring memory only through regions announced to it
    /// ([`share_rings`](Self::share_rings)): then the driver puts every ring of the port in
    /// one region and announces it before the first [`setup_queue`](Self::setup_queue).
    /// `false` (the default): one region per ring, nothing announced.
    fn rings_in_one_region(&self) -> bool {
        false
    }

    /// Announces `region`, which holds every ring of the port (called once, after
    /// FEATURES_OK and before the first [`setup_queue`](Self::setup_queue), when
    /// [`rings_in_one_region`](Self::rings_in_one_region) says so). The region stays mapped
    /// until [`reset`](Self::reset) returns `Ok`.
    fn share_rings(&self, region: &DmaRegion) -> Result<(), Error> {
        let _ = region;
        Ok(())
    }

    /// The MAC address (virtio 1.2 §5.1.4 `mac`), read consistently (§2.5). Called only
    /// with MAC negotiated.
    fn mac(&self) -> Result<[u8; 6], Error>;

    /// Whether the link is up (§5.1.4 `status`, bit `VIRTIO_NET_S_LINK_UP`). Called only
    /// with STATUS negotiated, at any time after DRIVER_OK; a device that has gone away is
    /// down.
    fn link_up(&self) -> Result<bool, Error>;

    /// Whether the device is known to be gone (removed from under the driver): a register
    /// read all ones, or VFIO released it ([`Registers::removed`](crate::regs::Registers::removed)).
    /// Data path: one or two relaxed loads, no register access; the queues take and give
    /// nothing once it is true. The default (a transport that cannot lose its device this
    /// way): never.
    #[inline]
    fn gone(&self) -> bool {
        false
    }

    /// `max_virtqueue_pairs` (§5.1.4). Called only with MQ negotiated.
    fn max_queue_pairs(&self) -> Result<u16, Error>;

    /// Whether the device serves a control virtqueue (the default). When CTRL_VQ is
    /// negotiated and this says `false`, the driver sets up no control queue and hands each
    /// command to [`control`](Self::control) instead: a vhost-user frontend executes them
    /// itself (queue pairs become ring enables), as DPDK's virtio-user does.
    fn device_control_queue(&self) -> bool {
        true
    }

    /// Executes `command` in the transport (virtio 1.2 §5.1.6.5 semantics: `Ok` once it
    /// took effect). Called only when [`device_control_queue`](Self::device_control_queue)
    /// is `false`, after DRIVER_OK.
    ///
    /// # Errors
    /// [`VirtioError::Ctrl`] naming the command when the transport refuses it or does not
    /// handle it ([`CtrlFailure::Unsupported`], the default).
    fn control(&self, command: CtrlCommand) -> Result<(), Error> {
        Err(command.failed(self.device(), CtrlFailure::Unsupported))
    }
}

/// The driver's part of device initialisation (virtio 1.2 §3.1.1 steps 1–6, before the
/// queues): reset, ACKNOWLEDGE, DRIVER, then accepts `offered & (wanted | required)` plus
/// ACCESS_PLATFORM whenever offered (behind an IOMMU a device refuses FEATURES_OK without
/// it), sets FEATURES_OK and reads it back. Returns the accepted set.
///
/// # Errors
/// [`VirtioError::FeatureMissing`] naming the bits of `required` the device does not offer;
/// [`VirtioError::FeaturesRefused`] if FEATURES_OK did not stick. Both after writing FAILED.
pub fn negotiate<T: Transport>(t: &T, wanted: u64, required: u64) -> Result<u64, Error> {
    let add_status = |bits: u8| t.set_status(t.status()? | bits);
    let fail = || {
        // Best effort: the error being reported matters more than this write's.
        let _ = add_status(status::FAILED);
    };
    t.reset()?;
    add_status(status::ACKNOWLEDGE)?;
    add_status(status::DRIVER)?;
    let offered = t.device_features()?;
    let missing = required & !offered;
    if missing != 0 {
        fail();
        return Err(VirtioError::FeatureMissing {
            device: t.device().to_string(),
            missing,
            offered,
        }
        .into());
    }
    let accepted = offered & (wanted | required | feature::ACCESS_PLATFORM);
    t.set_driver_features(accepted)?;
    add_status(status::FEATURES_OK)?;
    let s = t.status()?;
    if s & status::FEATURES_OK == 0 {
        fail();
        return Err(VirtioError::FeaturesRefused {
            device: t.device().to_string(),
            features: accepted,
            status: s,
        }
        .into());
    }
    Ok(accepted)
}
