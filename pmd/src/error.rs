//! The error type of `sluice-pmd`.

use std::io;

/// What went wrong in the device layer or a driver. Each variant names the port or device
/// and the value at fault, so that the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A port was asked for with a shape it cannot have (zero queues, a ring size that is
    /// not a power of two, ...). Fix the configuration value named.
    #[error("port {port}: invalid {what}: {value}")]
    InvalidConfig {
        /// The port's name.
        port: String,
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
    },

    /// Memory for buffers could not be had (no hugepages where the pool requires them, a
    /// bad pool shape, ...). The mempool error says which.
    #[error(transparent)]
    Mempool(#[from] sluice_mempool::Error),

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
    AfXdpPermission {
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
    AfXdpMemlock {
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
    AfXdpZeroCopyUnsupported {
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
    AfXdpQueueBusy {
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
    AfXdpSetup {
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

    /// The XDP program could not be created, loaded or attached.
    #[error("{interface}: cannot {step}{detail}")]
    XdpProgram {
        /// The interface.
        interface: String,
        /// What was being done.
        step: &'static str,
        /// A hint or the verifier's log, starting with a space, or empty.
        detail: String,
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
