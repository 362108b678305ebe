//! The two virtqueue formats: [`split`] rings (virtio 1.2 §2.7) and [`packed`] rings
//! (virtio 1.2 §2.8), and [`Virtqueue`], either of them behind one set of calls.

pub mod packed;
pub mod split;
mod virtqueue;

pub use split::{DESC_F_NEXT, DESC_F_WRITE, MAX_QUEUE_SIZE, Segment, Used, UsedFault};
pub use virtqueue::{RingKind, Virtqueue};
