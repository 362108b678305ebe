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
//! Both keep the driver's own shadow of every buffer in flight (`InFlight`) and check each
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

/// A device fault found in the used ring, with what the driver expected instead.
///
/// The queue handles count each one in their `errors` counter; the ring keeps the last
/// one until [`take_fault`](Virtqueue::take_fault), a copy in the queue, so finding a fault
/// costs no allocation. `Display` says what the device did and what was expected, without
/// the queue, which the caller names as it knows it (e.g. `queue 0 rx: {fault}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedFault {
    /// A used id out of range, or in range but not the id of a buffer in flight; nothing
    /// was taken.
    BadId {
        /// The virtqueue's index, as the device numbers its queues (virtio-net: receiveq
        /// `n` is `2n`, transmitq `n` is `2n + 1`, virtio 1.2 §5.1.2).
        queue: u16,
        /// The id the device wrote.
        id: u32,
        /// The queue size: ids run from 0 to `size - 1`.
        size: u16,
    },
    /// A used length larger than the writable bytes of the buffer posted; the buffer was
    /// taken back unread.
    BadLen {
        /// The virtqueue's index (as in [`BadId`](Self::BadId)).
        queue: u16,
        /// The buffer's id (split rings: the head descriptor of its chain).
        id: u16,
        /// The length the device wrote.
        len: u32,
        /// Writable bytes posted: the most the device may write.
        max: u32,
    },
    /// A used index more than the queue size ahead of what the driver had reaped (split
    /// rings); the queue is broken from then on.
    IndexJump {
        /// The virtqueue's index (as in [`BadId`](Self::BadId)).
        queue: u16,
        /// What the driver had reaped up to.
        last: u16,
        /// What the device wrote.
        device: u16,
        /// The queue size: the most `device` may be ahead of `last`.
        size: u16,
    },
}

impl UsedFault {
    /// The index of the virtqueue it was found on.
    pub fn queue(&self) -> u16 {
        match *self {
            UsedFault::BadId { queue, .. }
            | UsedFault::BadLen { queue, .. }
            | UsedFault::IndexJump { queue, .. } => queue,
        }
    }
}

impl core::fmt::Display for UsedFault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            UsedFault::BadId { id, size, .. } if id >= u32::from(size) => {
                write!(f, "device wrote used id {id} (queue size {size})")
            }
            UsedFault::BadId { id, size, .. } => write!(
                f,
                "device wrote used id {id}, which is not in flight (queue size {size})"
            ),
            UsedFault::BadLen { id, len, max, .. } => write!(
                f,
                "device wrote used length {len} for id {id}, which has {max} writable bytes"
            ),
            UsedFault::IndexJump {
                last, device, size, ..
            } => write!(
                f,
                "device moved the used index from {last} to {device}, more than the queue \
                 size {size} ahead"
            ),
        }
    }
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

/// Zeroed ring memory of at least `len` bytes at IOVA = VA, for the rings' unit tests.
#[cfg(test)]
fn test_memory(len: usize) -> std::sync::Arc<crate::SharedMemory> {
    use sluice_mempool::{DmaRegion, HugePagePolicy, PageSize};
    let len = len.next_multiple_of(4096);
    let r = DmaRegion::identity(len, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    std::sync::Arc::new(crate::SharedMemory::new(r))
}

#[cfg(test)]
mod tests {
    use super::UsedFault;

    #[test]
    fn faults_say_what_the_device_wrote_and_what_was_expected() {
        let msg = |f: UsedFault| f.to_string();
        let bad_id = |id| UsedFault::BadId {
            queue: 0,
            id,
            size: 256,
        };
        assert_eq!(
            format!("queue 0 rx: {}", bad_id(300)),
            "queue 0 rx: device wrote used id 300 (queue size 256)"
        );
        assert_eq!(
            msg(bad_id(7)),
            "device wrote used id 7, which is not in flight (queue size 256)"
        );
        let bad_len = UsedFault::BadLen {
            queue: 1,
            id: 3,
            len: 100_000,
            max: 2060,
        };
        assert_eq!(
            msg(bad_len),
            "device wrote used length 100000 for id 3, which has 2060 writable bytes"
        );
        let jump = UsedFault::IndexJump {
            queue: 1,
            last: 10,
            device: 300,
            size: 256,
        };
        assert_eq!(
            msg(jump),
            "device moved the used index from 10 to 300, more than the queue size 256 ahead"
        );
        assert_eq!(
            (bad_id(1).queue(), bad_len.queue(), jump.queue()),
            (0, 1, 1)
        );
    }
}
