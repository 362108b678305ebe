//! The virtio-net poll-mode driver: split or packed virtqueues, multiqueue, polled with
//! interrupts suppressed, over a transport: modern virtio 1.x PCI behind VFIO, or vhost-user
//! ([`VirtioPort::open_vhost_user`], a backend process on the same host, no VFIO or root).
//!
//! # Layout
//! - [`transport`]: the [`Transport`] seam (feature negotiation, status, queue set-up, a
//!   [`Doorbell`] per queue, device-config reads, reset) and the driver's half of device
//!   initialisation over it; [`transport::pci`]: [`PciTransport`], the capability walk and
//!   typed register blocks (virtio 1.2 §4.1.4) through [`Registers`](crate::regs::Registers)
//!   — a mapped BAR ([`MmioRegion`](crate::MmioRegion)) behind VFIO, or the software device
//!   in tests — and [`VirtioPort::open`] on a device bound to vfio-pci.
//!   [`transport::vhost_user`]: [`VhostUserTransport`] over [`vhost_user`]'s frontend, every
//!   ring of a port in one shareable region, the control queue handled locally.
//! - [`SharedMemory`](crate::SharedMemory), shared with the NVMe driver, is the only access
//!   path to the memory shared with the device.
//! - [`ring`]: the two virtqueue formats, with the driver's own shadow of what it posted;
//!   every used entry the device writes is checked against it. [`ring::split`]:
//!   [`SplitQueue`] (virtio 1.2 §2.7); [`ring::packed`]: [`PackedQueue`] (virtio 1.2 §2.8,
//!   `RING_PACKED`); [`Virtqueue`]: either of the two behind one set of calls, which the
//!   datapath and the control queue are written against.
//! - [`net`]: the receive and transmit queue handles (virtio 1.2 §5.1.6); [`ctrl`]: the
//!   control queue (virtio 1.2 §5.1.6.5).
//! - [`port`]: [`VirtioPort`], the [`NetPort`](crate::net::NetPort) over all of that, generic
//!   over its transport; [`shared`]: the transport and what the device may touch, freed
//!   only after its reset (a [`DeviceHold`](crate::quiesce::DeviceHold)).
//! - [`error`]: [`VirtioError`], what goes wrong.
//! - [`backend`]: the other side of vhost-user, a port that *is* a virtio-net device for a
//!   QEMU guest or a virtio-user container (`driver = "vhost-user"`).
//! - [`vhost_user`]: the vhost-user frontend, a device in another process on the host
//!   (not yet a [`Transport`]).
//! - `model` (feature `test-utils`): a software virtio-net device for tests, whose receive
//!   and transmit rings are walked by its own code or by rust-vmm's `virtio-queue`.
//!
//! # Call sequence
//! ```no_run
//! use std::sync::Arc;
//! use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
//! use sluice_pmd::virtio::{VirtioConfig, VirtioPort};
//! use sluice_pmd::vfio::{Container, IommuMode};
//! use sluice_pmd::{Batch, IdentityMapper, PktPool, PktPoolConfig};
//!
//! let container = Container::new(IommuMode::Type1v2)?;
//! // Buffers at IOVA = VA; opening the port registers the pool with the container's IOMMU.
//! let pool = PktPool::new(&PktPoolConfig::new("pkt", 4096), Arc::new(IdentityMapper))?;
//! let mut port = VirtioPort::open("00:02.0".parse()?, &VirtioConfig::default(), &pool, &container)?;
//! println!("{} {} link {}", port.info().name, port.info().mac, port.link());
//! let mut q = port.take_queues().unwrap(); // each handle is Send: one lcore each
//! let mut burst: Batch<_> = Batch::new();
//! loop {
//!     q.rx[0].rx_burst(&mut burst);
//!     q.tx[0].tx_burst(&mut burst); // what the ring did not take stays in `burst`
//!     burst.clear();
//! #   break;
//! }
//! drop(q);
//! drop(port); // the last handle resets the device, then frees rings and unmaps the pool
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Model
//! The device is untrusted: a used-ring id out of range or not in flight, a length larger
//! than the buffer posted, or a used index that jumps by more than the queue size is counted
//! as a device error on the queue's counters and survived — a bad id is ignored, a bad
//! length drops that buffer back to its pool, an index jump marks the queue broken (it then
//! returns nothing until the port is reset). Nothing the device writes is used as an index
//! before it is checked. The last fault of each queue is kept with its details, a
//! [`UsedFault`], until [`VirtioRxQueue::take_fault`] or [`VirtioTxQueue::take_fault`].

pub mod backend;
pub mod ctrl;
pub mod error;
#[cfg(any(test, feature = "test-utils"))]
pub mod model;
pub mod net;
pub mod port;
pub mod ring;
pub mod shared;
pub mod transport;
pub mod vhost_user;

#[cfg(test)]
mod tests;

pub use ctrl::CtrlCommand;
pub use error::{CtrlFailure, VirtioError};
pub use net::{NetHdr, VirtioRxQueue, VirtioTxQueue};
pub use port::{VirtioConfig, VirtioPort};
pub use ring::packed::PackedQueue;
pub use ring::split::SplitQueue;
pub use ring::{RingKind, UsedFault, Virtqueue};
pub use transport::{
    Doorbell, PciDoorbell, PciTransport, RingAddrs, Transport, VhostUserDoorbell,
    VhostUserTransport,
};

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error and needs a reset.
    pub const NEEDS_RESET: u8 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// Feature bits (virtio 1.2 §6, §5.1.3), as masks.
pub mod feature {
    /// Device handles packets with partial checksum (TX offload; not asked for).
    pub const CSUM: u64 = 1 << 0;
    /// Driver handles packets with partial checksum (RX: `DATA_VALID`/`NEEDS_CSUM`).
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// Device config has a MAC address.
    pub const MAC: u64 = 1 << 5;
    /// Driver can merge receive buffers.
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// Device config has a link status.
    pub const STATUS: u64 = 1 << 16;
    /// A control virtqueue exists.
    pub const CTRL_VQ: u64 = 1 << 17;
    /// Control channel RX mode (promiscuous, all-multicast).
    pub const CTRL_RX: u64 = 1 << 18;
    /// Several queue pairs.
    pub const MQ: u64 = 1 << 22;
    /// `used_event`/`avail_event` notification suppression.
    pub const EVENT_IDX: u64 = 1 << 29;
    /// Virtio 1.x (mandatory for a modern device).
    pub const VERSION_1: u64 = 1 << 32;
    /// The device goes through the platform's IOMMU.
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// Packed virtqueues (virtio 1.2 §2.8) instead of split ones.
    pub const RING_PACKED: u64 = 1 << 34;

    /// What this driver can use; it accepts the intersection with the device's offer.
    pub const SUPPORTED: u64 = GUEST_CSUM
        | MAC
        | MRG_RXBUF
        | STATUS
        | CTRL_VQ
        | CTRL_RX
        | MQ
        | EVENT_IDX
        | VERSION_1
        | ACCESS_PLATFORM
        | RING_PACKED;

    /// The name of a single feature bit, for errors.
    pub fn name(bit: u64) -> &'static str {
        match bit {
            CSUM => "CSUM",
            GUEST_CSUM => "GUEST_CSUM",
            MAC => "MAC",
            MRG_RXBUF => "MRG_RXBUF",
            STATUS => "STATUS",
            CTRL_VQ => "CTRL_VQ",
            CTRL_RX => "CTRL_RX",
            MQ => "MQ",
            EVENT_IDX => "EVENT_IDX",
            VERSION_1 => "VERSION_1",
            ACCESS_PLATFORM => "ACCESS_PLATFORM",
            RING_PACKED => "RING_PACKED",
            _ => "another feature",
        }
    }

    /// The names of every bit in `mask` that [`name`] knows, joined by `|`.
    pub fn names(mask: u64) -> String {
        let mut out = Vec::new();
        for i in 0..64 {
            let bit = 1u64 << i;
            if mask & bit != 0 {
                out.push(match name(bit) {
                    "another feature" => format!("bit {i}"),
                    n => n.to_string(),
                });
            }
        }
        out.join("|")
    }
}

/// The `virtio_net_hdr_v1` length with VERSION_1 (virtio 1.2 §5.1.6): [`NetHdr::LEN`].
pub const NET_HDR_LEN: usize = NetHdr::LEN;

/// Virtio device ID of a network card, modern PCI (0x1040 + 1).
pub const PCI_DEVICE_ID_NET: u16 = 0x1041;
