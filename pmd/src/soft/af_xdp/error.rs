//! [`AfXdpError`]: what goes wrong opening an AF_XDP port.

use std::io;

/// An AF_XDP step that failed. Part of [`crate::Error`] as [`crate::Error::AfXdp`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AfXdpError {
    /// The named network interface does not exist (in this network namespace).
    #[error("no network interface '{interface}': check `ip link show` (and the network namespace)")]
    NoSuchInterface {
        /// The interface name.
        interface: String,
        /// The errno of `if_nametoindex`.
        #[source]
        source: io::Error,
    },

    /// The port asks for more queues than the interface has. Lower `queues`, or give the
    /// interface more (`ethtool -L IF combined N`; veth: `numrxqueues`/`numtxqueues`).
    #[error(
        "{interface}: queue {queue} is out of range: the interface has {available} queue(s) (raise them with `ethtool -L {interface} combined N`, or create a veth with `numrxqueues N numtxqueues N`)"
    )]
    QueueOutOfRange {
        /// The interface.
        interface: String,
        /// The highest queue id asked for.
        queue: u32,
        /// Queues the interface has.
        available: u32,
    },

    /// A privileged step was refused. Run as root or grant the capabilities named.
    #[error("{interface}: permission denied to {step}: run as root or grant {needs}")]
    Permission {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// The capabilities it needs.
        needs: &'static str,
        /// EPERM or EACCES.
        #[source]
        source: io::Error,
    },

    /// The kernel would not pin the UMEM: it counts against `RLIMIT_MEMLOCK`.
    #[error(
        "{interface}: cannot pin the {bytes}-byte UMEM: raise RLIMIT_MEMLOCK (`ulimit -l unlimited`, or LimitMEMLOCK=infinity in a systemd unit) or grant CAP_IPC_LOCK"
    )]
    Memlock {
        /// The interface.
        interface: String,
        /// The UMEM's size.
        bytes: usize,
        /// ENOBUFS (or ENOMEM/EPERM).
        #[source]
        source: io::Error,
    },

    /// Zero-copy was required and the interface's driver cannot do it (veth never can).
    #[error(
        "{interface} queue {queue}: the driver does not support AF_XDP zero-copy: use mode \"copy\" or \"auto\""
    )]
    ZeroCopyUnsupported {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// EOPNOTSUPP.
        #[source]
        source: io::Error,
    },

    /// Another AF_XDP socket is bound to the queue (another process, or a port opened
    /// twice).
    #[error(
        "{interface} queue {queue} is busy: another AF_XDP socket is bound to it (stop the process that holds it)"
    )]
    QueueBusy {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// EBUSY.
        #[source]
        source: io::Error,
    },

    /// Another step of AF_XDP socket setup failed; the OS error says why.
    #[error("{interface} queue {queue}: cannot {step}")]
    Setup {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// What was being done.
        step: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// An XDP program is attached to the interface already (by another AF_XDP port, or by
    /// another program): stop it, or detach it with `ip link set dev IF xdp off`.
    #[error(
        "{interface}: cannot {step} (an XDP program is already attached, by another AF_XDP \
         port or program: stop it, or `ip link set dev {interface} xdp off`)"
    )]
    ProgramAttached {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// EBUSY or EEXIST.
        #[source]
        source: io::Error,
    },

    /// The XDP program could not be created, loaded or attached.
    #[error(
        "{interface}: cannot {step}{}",
        verifier_log.as_ref().map(|log| format!(" (verifier: {log})")).unwrap_or_default()
    )]
    Program {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// The verifier's log, when the kernel refused to load the program and wrote one.
        verifier_log: Option<String>,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// `/sys/class/net` belongs to another network namespace than the one the interface
    /// was found in (a thread that entered a namespace with `setns` without remounting
    /// sysfs).
    #[error(
        "{interface}: /sys/class/net shows another network namespace (interface index \
         {ifindex}, sysfs says {sysfs_ifindex:?}): run inside the namespace with `ip netns \
         exec`, or remount /sys there"
    )]
    SysfsOtherNamespace {
        /// The interface.
        interface: String,
        /// Its index in this network namespace.
        ifindex: u32,
        /// The index sysfs shows for that name, if any.
        sysfs_ifindex: Option<u32>,
    },
}
