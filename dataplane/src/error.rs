//! The error type of `sluice-dataplane`.

use std::time::Duration;

/// What went wrong starting or stopping the runtime. Each variant names the lcore or core at
/// fault and says what the machine has, so that the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An lcore asks for a CPU this machine (or this process's affinity mask) does not have.
    /// Use one of the cores listed, or change the configuration's core map.
    #[error("{lcore}: core {core} does not exist on this machine (cores here: {available})")]
    NoSuchCore {
        /// The lcore's name.
        lcore: String,
        /// The core asked for.
        core: usize,
        /// The cores this process may run on, as a list (`0-1` style).
        available: String,
    },
    /// The kernel refused to pin the thread (a cgroup or cpuset may forbid that core).
    #[error("{lcore}: cannot pin the thread to core {core} (sched_setaffinity refused)")]
    Pin {
        /// The lcore's name.
        lcore: String,
        /// The core asked for.
        core: usize,
    },
    /// Every lcore slot of the buffer pools is taken (see `sluice_mempool::lcore::MAX_LCORES`).
    #[error("{lcore}: no free lcore id (all {max} are registered by other threads)")]
    NoLcoreId {
        /// The lcore's name.
        lcore: String,
        /// How many ids a process has.
        max: usize,
    },
    /// The OS would not start a thread.
    #[error("{lcore}: cannot start its thread")]
    Spawn {
        /// The lcore's name.
        lcore: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An lcore did not finish within the stop timeout after the stop signal: its task is
    /// stuck (a driver call that does not return). The thread is left behind; exit the process.
    #[error("{lcore} did not stop within {waited:?} of the stop signal")]
    Hung {
        /// The lcore's name.
        lcore: String,
        /// How long the runtime waited.
        waited: Duration,
    },
    /// An lcore's thread panicked (a bug); the message is the panic's.
    #[error("{lcore} panicked: {message}")]
    Panicked {
        /// The lcore's name.
        lcore: String,
        /// The panic message.
        message: String,
    },
    /// The runtime was described inconsistently (for example a pipeline without workers).
    #[error("invalid runtime layout: {0}")]
    Layout(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_core_and_the_machine() {
        let e = Error::NoSuchCore {
            lcore: "lcore fwd".into(),
            core: 7,
            available: "0-1".into(),
        };
        assert_eq!(
            e.to_string(),
            "lcore fwd: core 7 does not exist on this machine (cores here: 0-1)"
        );
        let e = Error::Hung {
            lcore: "lcore rx".into(),
            waited: Duration::from_secs(1),
        };
        assert_eq!(
            e.to_string(),
            "lcore rx did not stop within 1s of the stop signal"
        );
    }
}
