//! The two virtqueue formats and what they share.
//!
//! - [`split`]: [`SplitQueue`](split::SplitQueue), split rings (virtio 1.2 §2.7): a
//!   descriptor table, an available ring the driver writes and a used ring the device
//!   writes.
//! - [`packed`]: [`PackedQueue`](packed::PackedQueue), packed rings (virtio 1.2 §2.8,
//!   `RING_PACKED`): one descriptor ring for both ways.
//! - [`Virtqueue`]: either of the two behind one set of calls, which the datapath and the
//!   control queue are written against; [`RingKind`] says which.
//!
//! Both keep the driver's own shadow of every buffer in flight ([`InFlight`]) and check each
//! used entry the device writes against it before anything is followed, answering with the
//! same [`Used`] values.

use sluice_mempool::Iova;

pub mod packed;
pub mod split;
mod virtqueue;

pub use virtqueue::{RingKind, Virtqueue};

/// Descriptor flag: the chain continues (split: in `next`; packed: in the next slot).
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer (otherwise it reads it).
pub const DESC_F_WRITE: u16 = 2;
/// The largest queue of either format (virtio 1.2 §2.7, §2.8: 32768 entries).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// One buffer of a chain to post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where it is, for the device.
    pub iova: Iova,
    /// Its length (non-zero: QEMU rejects zero-sized buffers).
    pub len: u32,
    /// Whether the device writes it.
    pub writable: bool,
}

/// What a used entry turned out to be.
#[derive(Debug)]
pub enum Used<T> {
    /// A chain came back: its token and the bytes the device wrote.
    Done(T, u32),
    /// A chain came back with a length larger than its writable buffers: a device fault.
    /// The token is returned so that its buffer can be recovered (not read).
    BadLen(T, u32),
    /// An id out of range or not the head of a chain in flight: a device fault; nothing
    /// was taken.
    BadId(u32),
}

/// A device fault found in the used ring (for counters and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedFault {
    /// Used id out of range or not in flight.
    BadId(u32),
    /// Used length larger than the buffer posted.
    BadLen(u32),
    /// Used index more than the queue size ahead of the driver.
    IndexJump {
        /// What the driver had reaped up to.
        last: u16,
        /// What the device wrote.
        device: u16,
    },
}

/// The shadow of one chain (split) or buffer (packed) in the device's hands, by its id.
struct InFlight<T> {
    token: T,
    /// Writable bytes posted: the most the device may report.
    writable: u32,
    /// Descriptors it took: freed by following the shadow's `next` links (split), or
    /// skipped over by the device when it returns the buffer (packed).
    descs: u16,
}
