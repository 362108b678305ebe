//! [`VhostUserError`]: what can go wrong between this process and a vhost-user backend.

use std::io;
use std::path::PathBuf;

use crate::virtio::feature;

/// A vhost-user bring-up, ring or teardown step that failed, with the socket it concerns.
///
/// Every variant but [`Kick`](Self::Kick) names the socket path: a process may drive several
/// backends. [`is_disconnect`](Self::is_disconnect) tells a backend that went away (killed,
/// closed the connection) from one that answered badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VhostUserError {
    /// Nothing listens at the path: no socket file, or a stale one whose backend is gone.
    #[error(
        "no vhost-user backend listens at {}: start the backend first (it creates the \
         socket; this side connects as the client)",
        path.display()
    )]
    NoBackend {
        /// The socket path.
        path: PathBuf,
        /// `ENOENT` (no such file) or `ECONNREFUSED` (nobody accepts on it).
        #[source]
        source: io::Error,
    },

    /// The path exists but cannot be connected to for another reason (`EACCES`, not a
    /// socket).
    #[error("cannot connect to the vhost-user socket {}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The backend does not offer virtio features this driver cannot work without.
    #[error(
        "the vhost-user backend at {} does not offer required features {} ({missing:#x}); \
         it offers {} ({offered:#x})",
        path.display(),
        feature::names(*missing),
        feature::names(*offered)
    )]
    FeaturesRefused {
        /// The socket path.
        path: PathBuf,
        /// The required feature bits it lacks.
        missing: u64,
        /// Everything it offers.
        offered: u64,
    },

    /// The backend does not offer a vhost-user protocol feature this frontend needs
    /// (`PROTOCOL_FEATURES` itself, `REPLY_ACK`).
    #[error(
        "the vhost-user backend at {} does not offer the protocol feature {feature}, which \
         this frontend needs",
        path.display()
    )]
    ProtocolFeatureMissing {
        /// The socket path.
        path: PathBuf,
        /// The protocol feature's name in the vhost-user specification.
        feature: &'static str,
    },

    /// More memory regions than the backend can take in one table: 8 (`SET_MEM_TABLE`),
    /// or its `GET_MAX_MEM_SLOTS` with `CONFIGURE_MEM_SLOTS`.
    #[error(
        "{count} memory regions for the vhost-user backend at {}, which takes at most {max}: \
         use fewer, larger pools",
        path.display()
    )]
    TooManyRegions {
        /// The socket path.
        path: PathBuf,
        /// Regions asked for.
        count: usize,
        /// The backend's limit.
        max: u64,
    },

    /// A region handed to the memory table is not shareable memory (anonymous, or IOVAs not
    /// one range).
    #[error(
        "memory region {index} for the vhost-user backend at {} is not shareable: allocate it \
         with the memfd mapper (MemfdMapper, PktPool::new_shareable)",
        path.display()
    )]
    NotShareable {
        /// The socket path.
        path: PathBuf,
        /// Its position in the list given.
        index: usize,
    },

    /// A ring index beyond what the backend said it has (`GET_QUEUE_NUM`), or a ring used
    /// before it was set up.
    #[error("ring {ring} of the vhost-user backend at {}: {why}", path.display())]
    Ring {
        /// The socket path.
        path: PathBuf,
        /// The ring (virtqueue) index.
        ring: u16,
        /// What is wrong with it.
        why: RingFault,
    },

    /// An eventfd for a ring's kick or call could not be made (descriptor limits).
    #[error("eventfd for ring {ring} of the vhost-user backend at {}", path.display())]
    EventFd {
        /// The socket path.
        path: PathBuf,
        /// The ring index.
        ring: u16,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The backend closed the connection or died: it has to be started (and this port
    /// brought up) again.
    #[error("the vhost-user backend at {} has gone away ({request})", path.display())]
    Disconnected {
        /// The socket path.
        path: PathBuf,
        /// The message that found it gone (`GET_VRING_BASE`, ...).
        request: &'static str,
        /// What the protocol layer saw.
        #[source]
        source: vhost::Error,
    },

    /// The backend did not answer within [`REPLY_TIMEOUT`](super::REPLY_TIMEOUT): it hangs
    /// (stopped, or stuck). A late answer would be taken for the next message's, so the
    /// connection is done: drop the device.
    #[error(
        "the vhost-user backend at {} did not answer {request} within {} s",
        path.display(),
        super::REPLY_TIMEOUT.as_secs()
    )]
    NoReply {
        /// The socket path.
        path: PathBuf,
        /// The message left unanswered.
        request: &'static str,
    },

    /// The backend answered a message with an error or with something malformed.
    #[error("the vhost-user backend at {} failed {request}", path.display())]
    Request {
        /// The socket path.
        path: PathBuf,
        /// The message (`SET_MEM_TABLE`, `SET_VRING_ADDR`, ...).
        request: &'static str,
        /// What the protocol layer saw.
        #[source]
        source: vhost::Error,
    },

    /// Writing a ring's kick eventfd failed (only a closed or invalid descriptor can make it).
    #[error("kick of ring {ring} failed")]
    Kick {
        /// The ring index.
        ring: u16,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What is wrong with a ring index ([`VhostUserError::Ring`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingFault {
    /// Beyond the rings the backend has: at least twice its `GET_QUEUE_NUM` answer (which
    /// counts queue pairs for DPDK, rings for rust-vmm backends).
    #[error("beyond the backend's rings (it answers GET_QUEUE_NUM with {queue_num})")]
    OutOfRange {
        /// Its `GET_QUEUE_NUM` answer.
        queue_num: u64,
    },
    /// Set up twice without a stop in between.
    #[error("already set up")]
    AlreadySetUp,
    /// Stopped or enabled without having been set up.
    #[error("not set up")]
    NotSetUp,
    /// Set up before the features were negotiated (`SET_FEATURES` comes first).
    #[error("set up before the features were negotiated")]
    BeforeFeatures,
    /// A size of zero or above the virtio maximum of 32768.
    #[error("size {size} (1 to 32768)")]
    BadSize {
        /// The size asked for.
        size: u16,
    },
}

impl VhostUserError {
    /// Whether the backend has gone away (as opposed to refusing or misbehaving).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, VhostUserError::Disconnected { .. })
    }
}

/// Whether a protocol-layer error is a reply that did not come in time (the socket's read
/// timeout).
pub(super) fn is_timeout(e: &vhost::Error) -> bool {
    use vhost::vhost_user::Error as E;
    match e {
        vhost::Error::VhostUserProtocol(E::SocketError(io) | E::SocketRetry(io)) => matches!(
            io.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        _ => false,
    }
}

/// Whether a protocol-layer error means the connection is gone.
pub(super) fn is_disconnect(e: &vhost::Error) -> bool {
    use vhost::vhost_user::Error as E;
    match e {
        vhost::Error::VhostUserProtocol(e) => match e {
            E::Disconnected | E::PartialMessage | E::SocketBroken(_) => true,
            E::SocketError(io) | E::SocketRetry(io) => matches!(
                io.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
            ),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_socket_and_the_fix() {
        let e = VhostUserError::NoBackend {
            path: "/run/sluice/vhost-net0.sock".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        let s = e.to_string();
        assert!(s.contains("/run/sluice/vhost-net0.sock"), "{s}");
        assert!(s.contains("start the backend first"), "{s}");

        let e = VhostUserError::FeaturesRefused {
            path: "/tmp/x.sock".into(),
            missing: feature::VERSION_1 | feature::RING_PACKED,
            offered: feature::MAC | (1 << 30),
        };
        let s = e.to_string();
        assert!(
            s.contains("required features VERSION_1|RING_PACKED (0x500000000)"),
            "{s}"
        );
        assert!(s.contains("it offers MAC|bit 30"), "{s}");

        let e = VhostUserError::ProtocolFeatureMissing {
            path: "/tmp/x.sock".into(),
            feature: "REPLY_ACK",
        };
        assert_eq!(
            e.to_string(),
            "the vhost-user backend at /tmp/x.sock does not offer the protocol feature \
             REPLY_ACK, which this frontend needs"
        );

        let e = VhostUserError::Ring {
            path: "/tmp/x.sock".into(),
            ring: 5,
            why: RingFault::OutOfRange { queue_num: 2 },
        };
        assert_eq!(
            e.to_string(),
            "ring 5 of the vhost-user backend at /tmp/x.sock: beyond the backend's rings (it \
             answers GET_QUEUE_NUM with 2)"
        );
    }

    #[test]
    fn disconnects_are_told_apart() {
        use vhost::vhost_user::Error as E;
        let gone = vhost::Error::VhostUserProtocol(E::Disconnected);
        assert!(is_disconnect(&gone));
        let pipe = vhost::Error::VhostUserProtocol(E::SocketError(io::Error::from(
            io::ErrorKind::BrokenPipe,
        )));
        assert!(is_disconnect(&pipe));
        let refused = vhost::Error::VhostUserProtocol(E::BackendInternalError);
        assert!(!is_disconnect(&refused));
        let hung = vhost::Error::VhostUserProtocol(E::SocketRetry(io::Error::from(
            io::ErrorKind::WouldBlock,
        )));
        assert!(is_timeout(&hung) && !is_disconnect(&hung));
        assert!(!is_timeout(&refused));
    }

    #[test]
    fn error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<VhostUserError>();
    }
}
