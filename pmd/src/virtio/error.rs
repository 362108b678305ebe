//! [`VirtioError`]: what goes wrong bringing up or driving a virtio-net device, whatever its
//! transport. Each variant names the device (its PCI address, or the transport's name for
//! it) and carries the values a caller can act on; the messages end with what to do.
//!
//! Register and VFIO failures underneath keep their own types and reach the caller as the
//! crate's [`Error`](crate::Error), which nests this one.

use super::feature;

/// A virtio-net device could not be brought up or driven as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VirtioError {
    /// A device register did not reach the expected value in time (device_status after a
    /// reset, a config generation that never settles).
    ///
    /// The device is hung or gone (0xff reads mean it no longer answers): rebind it to
    /// virtio-pci and back, or restart the VM.
    #[error(
        "virtio {device}: {register} = {value:#x} after {waited_ms} ms; the device is hung or gone"
    )]
    Timeout {
        /// The device (PCI address, or the model's name).
        device: String,
        /// The register polled and what was awaited ("device_status, waiting for 0").
        register: &'static str,
        /// The value last read.
        value: u32,
        /// How long it was polled, in milliseconds.
        waited_ms: u64,
    },

    /// A register of the device reads all ones, or VFIO released the device after the
    /// kernel asked for it back: it was removed (hot-unplug, surprise removal). Its port is
    /// down for good; restart with the device back in place.
    #[error("virtio {device}: {register} reads all ones: the device is gone (removed)")]
    Gone {
        /// The device.
        device: String,
        /// The register that read all ones ("device_status").
        register: &'static str,
    },

    /// The device does not offer a feature the driver requires (VERSION_1: it is not a
    /// modern device; use `disable-legacy=on` or a 1.x device).
    #[error(
        "virtio {device}: required feature(s) {} not offered (device offers {offered:#018x})",
        feature::names(*.missing)
    )]
    FeatureMissing {
        /// The device.
        device: String,
        /// The required feature bits the device does not offer (masks of [`feature`]).
        missing: u64,
        /// What the device offered.
        offered: u64,
    },

    /// The device cleared FEATURES_OK: it refuses the accepted feature set (QEMU behind an
    /// IOMMU refuses any set without ACCESS_PLATFORM; a device may insist on a feature the
    /// configuration turned off).
    #[error(
        "virtio {device}: the device refused features {} (status {status:#04x} after FEATURES_OK)",
        feature::names(*.features)
    )]
    FeaturesRefused {
        /// The device.
        device: String,
        /// The feature bits the driver accepted.
        features: u64,
        /// The status read back.
        status: u8,
    },

    /// A virtio PCI capability the driver needs is missing or unusable.
    #[error("virtio {device}: no usable {cap} configuration capability")]
    NoCap {
        /// The device.
        device: String,
        /// Which block ("common", "notify", "device").
        cap: &'static str,
    },

    /// More queue pairs (or none) were asked for than the device has. Lower `queues`, or
    /// give the device more (QEMU: `mq=on,vectors=2N+2` and a multi-queue backend).
    #[error(
        "virtio {device}: queue {asked}: {asked} queue pairs asked for; the device has {max}{}",
        if *.mq { "" } else { " (MQ not offered: multiqueue needs a multi-queue backend)" }
    )]
    QueuePairs {
        /// The device.
        device: String,
        /// Queue pairs asked for.
        asked: u16,
        /// Queue pairs the device has (1 without MQ).
        max: u16,
        /// Whether MQ was negotiated.
        mq: bool,
    },

    /// A queue the driver needs reads size 0: the device does not have it.
    #[error("virtio {device}: queue {queue}: absent (queue_size reads 0)")]
    QueueAbsent {
        /// The device.
        device: String,
        /// The queue index.
        queue: u16,
    },

    /// A queue size the ring formats cannot have.
    #[error("virtio {device}: queue {queue}: size {size} is not a power of two")]
    QueueSize {
        /// The device.
        device: String,
        /// The queue index.
        queue: u16,
        /// The size.
        size: u16,
    },

    /// A queue's doorbell lies outside the notify block the device described.
    #[error(
        "virtio {device}: queue {queue}: notify offset {offset:#x} outside the {len:#x}-byte notify block"
    )]
    NotifyOutside {
        /// The device.
        device: String,
        /// The queue index.
        queue: u16,
        /// The doorbell's offset in the block.
        offset: usize,
        /// The block's length.
        len: usize,
    },

    /// Ring or command memory is not one IOVA-contiguous range (4 KiB pages without an
    /// IOMMU): use hugepages.
    #[error(
        "virtio {device}: {what}: {len} bytes of DMA memory are not IOVA-contiguous (use hugepages)"
    )]
    NotContiguous {
        /// The device.
        device: String,
        /// What the memory is for ("queue 1", "control commands").
        what: String,
        /// Bytes.
        len: usize,
    },

    /// Ring or command memory could not be allocated or mapped for DMA.
    ///
    /// Reserve hugepages, raise `RLIMIT_MEMLOCK`, or check the mapping error below.
    #[error("virtio: cannot allocate or map {len} bytes of DMA memory for {what}")]
    Dma {
        /// The device and what the memory was for ("0000:00:02.0 queue 1").
        what: String,
        /// Bytes.
        len: usize,
        /// The memory layer's error (boxed: it keeps this enum small).
        #[source]
        source: Box<sluice_mempool::Error>,
    },

    /// A control command failed (refused, unanswered, or the control queue is unusable).
    #[error("virtio {device}: control command class {class} command {cmd}: {failure}")]
    Ctrl {
        /// The device.
        device: String,
        /// Command class (0 RX, 4 MQ).
        class: u8,
        /// Command.
        cmd: u8,
        /// What happened.
        failure: CtrlFailure,
    },

    /// A packet pool's headroom cannot hold the virtio-net header in front of a frame:
    /// make the pool with more headroom.
    #[error(
        "virtio {device}: a packet pool cannot be used: pool {pool}: headroom {headroom} below \
         the {need}-byte header"
    )]
    PoolHeadroom {
        /// The device.
        device: String,
        /// The pool's name.
        pool: String,
        /// Its headroom.
        headroom: usize,
        /// The header's length.
        need: usize,
    },

    /// The vhost-user transport failed (connect, a message, a kick).
    #[error(transparent)]
    VhostUser(#[from] super::vhost_user::VhostUserError),

    /// A vhost-user port's packet pool is not in memory the backend can map: create it
    /// shareable (`PktPool::new_shareable`; the apps do for every pool a `virtio-user` port
    /// uses).
    #[error(
        "virtio {device}: pool {pool} is not shareable with the vhost-user backend (anonymous \
         memory); create it with PktPool::new_shareable"
    )]
    PoolNotShareable {
        /// The device (the socket path).
        device: String,
        /// The pool's name.
        pool: String,
    },

    /// A transport that takes every ring in one region was asked for more ring memory than
    /// the region was sized for (a control queue at the device).
    #[error("virtio {device}: no room left in the ring region for {what}")]
    RingRegion {
        /// The device.
        device: String,
        /// What the memory is for.
        what: String,
    },

    /// A packet pool's memory is mapped for another IOMMU context than the device's.
    #[error(
        "virtio {device}: a packet pool cannot be used: pool {pool}'s memory is mapped by \
         '{mapper}'; make it with the identity mapper or with this container as its mapper \
         (no-IOMMU mode: the container or the pagemap mapper)"
    )]
    PoolMapper {
        /// The device.
        device: String,
        /// The pool's name.
        pool: String,
        /// The name of the mapper that mapped it.
        mapper: String,
    },
}

impl VirtioError {
    /// Whether this is a vhost-user backend that went away.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Self::VhostUser(e) if e.is_disconnect())
    }
}

/// Why a control command failed (virtio 1.2 §5.1.6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtrlFailure {
    /// CTRL_VQ was not negotiated: the device takes no commands.
    #[error("CTRL_VQ was not negotiated")]
    NotNegotiated,
    /// The transport handles control commands itself and does not take this one.
    #[error("not handled by this transport")]
    Unsupported,
    /// A device fault broke the control queue earlier.
    #[error("queue broken")]
    Broken,
    /// Every descriptor is in flight (an earlier command was never answered).
    #[error("no free descriptors")]
    Full,
    /// The device moved the used index by more than the queue size; the queue is broken.
    #[error("the device moved the used index too far")]
    IndexJump,
    /// The device used the command with a length larger than its ack buffer.
    #[error("used length {0}")]
    BadLen(u32),
    /// The device used a buffer id that is not the command's.
    #[error("used id {0}")]
    BadId(u32),
    /// The device did not answer within the port's timeout.
    #[error("no answer after {waited_ms} ms")]
    NoAnswer {
        /// How long it was waited for.
        waited_ms: u64,
    },
    /// The device answered with an ack other than OK (0).
    #[error("ack {0:#04x} (1 = error)")]
    Refused(u8),
}
