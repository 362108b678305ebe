//! Control commands (virtio 1.2 §5.1.6.5) and the control virtqueue that carries them to a
//! device that serves one: one command at a time, each a chain of a device-readable
//! `{class, command, data}` and a device-writable ack byte in a small DMA page, notified and
//! then polled for (bounded). A transport without a device-side control queue executes
//! [`CtrlCommand`]s itself ([`Transport::control`](super::transport::Transport::control)).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ring::{Segment, Used, Virtqueue};
use super::transport::Doorbell;
use super::{CtrlFailure, VirtioError};
use crate::SharedMemory;
use crate::error::Error;

/// Class RX: promiscuous and all-multicast modes (needs CTRL_RX).
pub const CLASS_RX: u8 = 0;
/// RX command: promiscuous on/off (u8).
pub const RX_PROMISC: u8 = 0;
/// RX command: all-multicast on/off (u8).
pub const RX_ALLMULTI: u8 = 1;
/// Class MQ (needs MQ).
pub const CLASS_MQ: u8 = 4;
/// MQ command: the number of active queue pairs (le16).
pub const MQ_VQ_PAIRS_SET: u8 = 0;

/// A control command this driver sends (virtio 1.2 §5.1.6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlCommand {
    /// `VIRTIO_NET_CTRL_RX_PROMISC`: receive every frame, or only those addressed to the
    /// port (needs CTRL_RX; §5.1.6.5.1).
    Promiscuous(bool),
    /// `VIRTIO_NET_CTRL_RX_ALLMULTI`: receive every multicast frame (needs CTRL_RX).
    AllMulticast(bool),
    /// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`: the number of queue pairs the device spreads
    /// receive traffic over and takes transmit traffic from (needs MQ; §5.1.6.5.5).
    QueuePairs(u16),
}

impl CtrlCommand {
    /// Its class (`CLASS_RX`, `CLASS_MQ`).
    pub fn class(self) -> u8 {
        match self {
            Self::Promiscuous(_) | Self::AllMulticast(_) => CLASS_RX,
            Self::QueuePairs(_) => CLASS_MQ,
        }
    }

    /// Its command within the class.
    pub fn command(self) -> u8 {
        match self {
            Self::Promiscuous(_) => RX_PROMISC,
            Self::AllMulticast(_) => RX_ALLMULTI,
            Self::QueuePairs(_) => MQ_VQ_PAIRS_SET,
        }
    }

    /// The command-specific data as the device reads it (a u8 flag, or a le16), and its
    /// length.
    pub fn data(self) -> ([u8; 2], usize) {
        match self {
            Self::Promiscuous(on) | Self::AllMulticast(on) => ([u8::from(on), 0], 1),
            Self::QueuePairs(n) => (n.to_le_bytes(), 2),
        }
    }

    /// The error for this command failing on `device`.
    pub fn failed(self, device: &str, failure: CtrlFailure) -> Error {
        VirtioError::Ctrl {
            device: device.to_string(),
            class: self.class(),
            cmd: self.command(),
            failure,
        }
        .into()
    }
}

/// Where the ack byte lives in the command page (its own cache line).
const ACK_AT: usize = 64;
/// The ack value written before the command, so a device that never answers is told apart.
const ACK_UNSET: u8 = 0xff;

/// The control queue and its command page.
pub struct ControlQueue<D> {
    pub(super) vq: Virtqueue<()>,
    doorbell: D,
    page: SharedMemory,
    device: String,
    timeout: Duration,
}

impl<D> core::fmt::Debug for ControlQueue<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlQueue")
            .field("vq", &self.vq)
            .finish_non_exhaustive()
    }
}

impl<D: Doorbell> ControlQueue<D> {
    pub(super) fn new(
        vq: Virtqueue<()>,
        doorbell: D,
        page: SharedMemory,
        device: String,
        timeout: Duration,
    ) -> Self {
        Self {
            vq,
            doorbell,
            page,
            device,
            timeout,
        }
    }

    /// Sends `command` and waits (bounded) for the ack.
    ///
    /// # Errors
    /// [`VirtioError::Ctrl`] when the device answers other than OK, never answers within the
    /// timeout, or returns something else than the command.
    pub fn command(&mut self, command: CtrlCommand) -> Result<(), Error> {
        let fail = |failure| command.failed(&self.device, failure);
        if self.vq.is_broken() {
            return Err(fail(CtrlFailure::Broken));
        }
        let (data, len) = command.data();
        let mut bytes = [0u8; 8];
        bytes[0] = command.class();
        bytes[1] = command.command();
        bytes[2..2 + len].copy_from_slice(&data[..len]);
        self.page
            .store_u64(0, u64::from_le_bytes(bytes), Ordering::Relaxed);
        self.page
            .store_u32(ACK_AT, u32::from(ACK_UNSET), Ordering::Relaxed);
        let segs = [
            Segment {
                iova: self.page.iova(0),
                len: 2 + len as u32,
                writable: false,
            },
            Segment {
                iova: self.page.iova(ACK_AT),
                len: 1,
                writable: true,
            },
        ];
        if self.vq.add(&segs, ()).is_err() {
            return Err(fail(CtrlFailure::Full));
        }
        // The control queue is always notified: commands are rare and the device may have
        // suppressed notifications while idle.
        self.vq.publish();
        self.doorbell.notify()?;
        let start = Instant::now();
        loop {
            if self.vq.used_ready().is_err() {
                return Err(fail(CtrlFailure::IndexJump));
            }
            match self.vq.pop_used() {
                Some(Used::Done((), _)) => break,
                Some(Used::BadLen((), len)) => return Err(fail(CtrlFailure::BadLen(len))),
                Some(Used::BadId(id)) => return Err(fail(CtrlFailure::BadId(id))),
                None => {}
            }
            if start.elapsed() >= self.timeout {
                return Err(fail(CtrlFailure::NoAnswer {
                    waited_ms: start.elapsed().as_millis() as u64,
                }));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        match self.page.load_u32(ACK_AT, Ordering::Relaxed) as u8 {
            0 => Ok(()),
            ack => Err(fail(CtrlFailure::Refused(ack))),
        }
    }

    /// The ring and command page (to park until the device is reset).
    pub(super) fn into_parts(self) -> (Virtqueue<()>, SharedMemory) {
        (self.vq, self.page)
    }
}
