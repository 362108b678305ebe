//! [`Shared`]: the device's transport and what the device may still touch, kept together
//! until the device is reset.
//!
//! The port and every queue handle hold an `Arc<Shared>`. A queue handle that is dropped
//! parks its ring memory and posted buffers in the device's
//! [`DeviceHold`]; when the last holder goes, `Shared` resets the
//! device through its transport (a bounded wait for the device to confirm) and only then
//! lets the hold release them (and whatever the transport's opener kept there, such as a
//! pool's IOMMU mapping). If the reset is not confirmed, the hold leaks them rather than hand
//! back memory the device might still write.

use super::ring::Virtqueue;
use super::transport::Transport;
use crate::quiesce::DeviceHold;

/// The device's transport and what the device may touch; resets the device when dropped.
pub struct Shared<T: Transport> {
    // Dropped first, after the reset released it (or leaked it): the transport, which may
    // own the device's VFIO handles, closes after.
    hold: DeviceHold,
    transport: T,
}

impl<T: Transport> Shared<T> {
    /// A device that is running (or being brought up) behind `transport`.
    pub(super) fn new(transport: T) -> Self {
        Self {
            hold: DeviceHold::new(format!("virtio {}", transport.device())),
            transport,
        }
    }

    /// Keeps `thing` until the device is reset.
    pub(super) fn keep<X: Send + 'static>(&self, thing: X) {
        self.hold.keep(thing);
    }

    /// Takes a queue's posted buffers and keeps them and its ring until the reset.
    pub(super) fn park<X: Send + 'static>(&self, vq: &mut Virtqueue<X>) {
        self.hold.keep(vq.memory());
        self.hold.keep(vq.take_all());
    }

    /// The transport (control path).
    pub fn transport(&self) -> &T {
        &self.transport
    }
}

impl<T: Transport> Drop for Shared<T> {
    fn drop(&mut self) {
        match self.transport.reset() {
            Ok(()) => self.hold.confirm_stopped(),
            // The device may still DMA into what it was given: the hold leaks it as it goes.
            Err(e) => eprintln!("sluice-pmd: warning: {e}"),
        }
    }
}
