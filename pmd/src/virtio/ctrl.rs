//! The control virtqueue (virtio 1.2 §5.1.6.5, REFERENCE B7): one command at a time, each a
//! chain of a device-readable `{class, command, data}` and a device-writable ack byte in a
//! small DMA page, notified and then polled for (bounded).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pci_transport::{Notifier, VirtioRegs};
use super::ring::{Segment, Used, Virtqueue};
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

/// Where the ack byte lives in the command page (its own cache line).
const ACK_AT: usize = 64;
/// The ack value written before the command, so a device that never answers is told apart.
const ACK_UNSET: u8 = 0xff;

/// The control queue and its command page.
pub struct ControlQueue<R> {
    pub(super) vq: Virtqueue<()>,
    notify: Notifier<R>,
    page: SharedMemory,
    device: String,
    timeout: Duration,
}

impl<R> core::fmt::Debug for ControlQueue<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlQueue")
            .field("vq", &self.vq)
            .finish_non_exhaustive()
    }
}

impl<R: VirtioRegs> ControlQueue<R> {
    pub(super) fn new(
        vq: Virtqueue<()>,
        notify: Notifier<R>,
        page: SharedMemory,
        device: String,
        timeout: Duration,
    ) -> Self {
        Self {
            vq,
            notify,
            page,
            device,
            timeout,
        }
    }

    /// Sends `class`/`cmd` with up to 6 bytes of `data` and waits (bounded) for the ack.
    ///
    /// # Errors
    /// [`Error::VirtioCtrl`] when the device answers other than OK, never answers within the
    /// timeout, or returns something else than the command.
    pub fn command(&mut self, class: u8, cmd: u8, data: &[u8]) -> Result<(), Error> {
        let fail = |why: String| Error::VirtioCtrl {
            device: self.device.clone(),
            class,
            cmd,
            why,
        };
        if data.len() > 6 || self.vq.is_broken() {
            return Err(fail("queue broken or command too long".into()));
        }
        let mut bytes = [0u8; 8];
        bytes[0] = class;
        bytes[1] = cmd;
        bytes[2..2 + data.len()].copy_from_slice(data);
        self.page
            .store_u64(0, u64::from_le_bytes(bytes), Ordering::Relaxed);
        self.page
            .store_u32(ACK_AT, u32::from(ACK_UNSET), Ordering::Relaxed);
        let segs = [
            Segment {
                iova: self.page.iova(0),
                len: 2 + data.len() as u32,
                writable: false,
            },
            Segment {
                iova: self.page.iova(ACK_AT),
                len: 1,
                writable: true,
            },
        ];
        if self.vq.add(&segs, ()).is_err() {
            return Err(fail("no free descriptors".into()));
        }
        // The control queue is always notified: commands are rare and the device may have
        // suppressed notifications while idle.
        self.vq.publish();
        self.notify.notify()?;
        let start = Instant::now();
        loop {
            if self.vq.used_ready().is_err() {
                return Err(fail("the device moved the used index too far".into()));
            }
            match self.vq.pop_used() {
                Some(Used::Done((), _)) => break,
                Some(Used::BadLen((), len)) => return Err(fail(format!("used length {len}"))),
                Some(Used::BadId(id)) => return Err(fail(format!("used id {id}"))),
                None => {}
            }
            if start.elapsed() >= self.timeout {
                return Err(fail(format!(
                    "no answer after {} ms",
                    start.elapsed().as_millis()
                )));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        match self.page.load_u32(ACK_AT, Ordering::Relaxed) as u8 {
            0 => Ok(()),
            ack => Err(fail(format!("ack {ack:#04x} (1 = error)"))),
        }
    }

    /// The ring and command page (to park until the device is reset).
    pub(super) fn into_parts(self) -> (Virtqueue<()>, SharedMemory) {
        (self.vq, self.page)
    }
}
