//! [`Virtqueue`]: a split or a packed queue behind one set of calls, so that the receive,
//! transmit and control paths are written once.
//!
//! An enum rather than a trait object: the ring kind is fixed at bring-up, each call is one
//! well-predicted match, and the queue handles stay free of `dyn` and of a type parameter
//! that would leak into [`VirtioPort`](crate::virtio::VirtioPort)'s API.

use std::sync::Arc;

use sluice_mempool::Iova;

use super::packed::PackedQueue;
use super::split::SplitQueue;
use super::{Segment, Used, UsedFault};
use crate::SharedMemory;

/// Which virtqueue format a port negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// Split rings (virtio 1.2 §2.7): descriptor table, available and used rings.
    Split,
    /// Packed rings (virtio 1.2 §2.8, `RING_PACKED`): one descriptor ring for both ways.
    Packed,
}

impl core::fmt::Display for RingKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RingKind::Split => "split",
            RingKind::Packed => "packed",
        })
    }
}

/// A virtqueue of either format; see the two queues for the protocol and the checks.
#[derive(Debug)]
pub enum Virtqueue<T> {
    /// A split queue.
    Split(SplitQueue<T>),
    /// A packed queue.
    Packed(PackedQueue<T>),
}

/// One call, forwarded to whichever queue this is.
macro_rules! each {
    ($self:expr, $q:ident => $e:expr) => {
        match $self {
            Virtqueue::Split($q) => $e,
            Virtqueue::Packed($q) => $e,
        }
    };
}

impl<T> Virtqueue<T> {
    /// The format.
    pub fn kind(&self) -> RingKind {
        match self {
            Virtqueue::Split(_) => RingKind::Split,
            Virtqueue::Packed(_) => RingKind::Packed,
        }
    }

    /// Entries (descriptors).
    pub fn size(&self) -> u16 {
        each!(self, q => q.size())
    }

    /// The virtqueue's index on its device.
    pub fn index(&self) -> u16 {
        each!(self, q => q.index())
    }

    /// IOVAs of the descriptor area, driver area and device area (for queue set-up).
    pub fn iovas(&self) -> (Iova, Iova, Iova) {
        each!(self, q => q.iovas())
    }

    /// Free descriptors.
    #[inline]
    pub fn free_descs(&self) -> usize {
        each!(self, q => q.free_descs())
    }

    /// Descriptors in the device's hands (or posted and not yet published).
    #[inline]
    pub fn in_flight(&self) -> usize {
        each!(self, q => q.in_flight())
    }

    /// Whether a device fault stopped the queue (split rings only: a used index jump).
    #[inline]
    pub fn is_broken(&self) -> bool {
        match self {
            Virtqueue::Split(q) => q.is_broken(),
            Virtqueue::Packed(_) => false,
        }
    }

    /// The last device fault found in the used ring, cleared by the call.
    pub fn take_fault(&mut self) -> Option<UsedFault> {
        each!(self, q => q.take_fault())
    }

    /// Adds a chain of `segs` (readable first) carrying `token`, visible to the device at
    /// the next [`publish`](Self::publish); gives the token back if it does not fit.
    #[inline]
    pub fn add(&mut self, segs: &[Segment], token: T) -> Result<(), T> {
        each!(self, q => q.add(segs, token))
    }

    /// Makes what was added visible to the device; says whether it asked to be notified.
    #[inline]
    pub fn publish(&mut self) -> bool {
        each!(self, q => q.publish())
    }

    /// Whether chains were added and not yet published.
    pub fn has_unpublished(&self) -> bool {
        each!(self, q => q.has_unpublished())
    }

    /// Prepares a round of [`pop_used`](Self::pop_used): on a split ring, loads the used
    /// index (the fault is an index jump, after which the queue is broken); a packed ring
    /// has nothing to load up front.
    #[inline]
    pub fn used_ready(&mut self) -> Result<(), UsedFault> {
        match self {
            Virtqueue::Split(q) => q.used_ready().map(|_| ()),
            Virtqueue::Packed(_) => Ok(()),
        }
    }

    /// Takes the next used buffer, checked against the driver's shadow.
    #[inline]
    pub fn pop_used(&mut self) -> Option<Used<T>> {
        each!(self, q => q.pop_used())
    }

    /// Takes every in-flight token back and forgets the ring's state (control path: after
    /// the device was reset, or to park them until it is).
    pub fn take_all(&mut self) -> Vec<T> {
        each!(self, q => q.take_all().collect())
    }

    /// The ring memory (to keep it alive until the device is reset).
    pub fn memory(&self) -> Arc<SharedMemory> {
        each!(self, q => q.memory())
    }
}
