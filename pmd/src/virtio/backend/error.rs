//! [`BackendError`]: what stops a vhost-user backend port from opening; [`RingFault`]: what
//! stops one of its rings.

use std::io;
use std::path::PathBuf;

use super::ring::RingAddrs;

/// A vhost-user backend port that cannot open, with the socket it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Another process accepts connections on the socket (a second `sluice-fwd`, a DPDK
    /// vhost PMD): this port will not take it over.
    #[error(
        "another vhost-user backend listens at {}: stop it, or give this port another path",
        path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
    },

    /// The path exists and is not a socket: it is not removed.
    #[error(
        "{} exists and is not a unix socket: remove it or choose another path",
        path.display()
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
    },

    /// The socket could not be created (directory missing or not writable, ...).
    #[error("cannot listen on the vhost-user socket {}", path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The port's control thread or its wake-up eventfd could not be made.
    #[error("vhost-user backend port {port}: cannot start its control thread")]
    Thread {
        /// The port's name.
        port: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A port shape this backend cannot have.
    #[error("vhost-user backend port {port}: {what}")]
    Config {
        /// The port's name.
        port: String,
        /// What is wrong.
        what: String,
    },
}

/// Why a ring was not started or was stopped: the frontend broke the ring's rules. The ring
/// stays stopped (the lcore skips it) until the frontend sets it up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingFault {
    /// A size that is not a power of two up to 32768, or misaligned ring addresses.
    #[error("ring of {size} entries at {addrs:x?}: bad size or alignment")]
    BadLayout {
        /// Entries.
        size: u16,
        /// Where.
        addrs: RingAddrs,
    },
    /// Ring addresses not (wholly) inside the memory table.
    #[error("ring of {size} entries at {addrs:x?}: outside the frontend's memory table")]
    OutsideMemory {
        /// Entries.
        size: u16,
        /// Where.
        addrs: RingAddrs,
    },
    /// A ring address the memory table does not translate (`SET_VRING_ADDR` takes the
    /// frontend's own addresses).
    #[error("ring address {addr:#x} is in no region of the memory table")]
    Untranslated {
        /// The frontend's address.
        addr: u64,
    },
    /// The available index moved by more than the ring size: the driver lies.
    #[error("available index jumped to {avail} from {next}: more than the ring holds")]
    AvailJump {
        /// The driver's index.
        avail: u16,
        /// Where the device was.
        next: u16,
    },
    /// A split ring's available entry names a descriptor outside the table.
    #[error("available entry names descriptor {head}, outside the ring")]
    BadHead {
        /// The index it names.
        head: u16,
    },
    /// A packed chain longer than the device walks: where it ends is unknown.
    #[error(
        "packed chain at slot {at} longer than {} descriptors",
        super::ring::MAX_CHAIN
    )]
    ChainTooLong {
        /// Its first slot.
        at: u16,
    },
    /// Part of the ring could not be read or written (the memory table changed under it).
    #[error("{what} at {addr:#x} could not be accessed")]
    Unreadable {
        /// Which part.
        what: &'static str,
        /// Its guest address.
        addr: u64,
    },
}
