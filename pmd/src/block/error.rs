//! [`BackendError`]: what goes wrong setting up or driving a block backend's system calls.
//!
//! Not to be confused with [`BlockError`](super::BlockError), why one request failed, which
//! comes back in its completion.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A block backend's system call failed. Part of [`crate::Error`] as [`crate::Error::Block`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// A system call on the backing file or device, or on its io_uring, failed (opening the
    /// file, setting up the ring, ...). The OS error says why.
    #[error("{step} {path} failed")]
    Io {
        /// What was being done.
        step: BackendStep,
        /// The file or device.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The step of a block backend that a system call was part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendStep {
    /// `open` of the file or device.
    Open,
    /// `fstat` of it.
    Stat,
    /// `BLKGETSIZE64`/`BLKSSZGET` on a block device.
    QuerySize,
    /// Growing a regular file to the size asked for.
    Extend,
    /// `io_uring_setup`: refused where io_uring is unavailable (old kernels, seccomp).
    UringSetup,
    /// `IORING_REGISTER_BUFFERS` (also refused while requests are outstanding).
    RegisterBuffers,
    /// `io_uring_enter` to submit.
    Submit,
}

impl fmt::Display for BackendStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendStep::Open => "opening",
            BackendStep::Stat => "stat of",
            BackendStep::QuerySize => "querying the size of",
            BackendStep::Extend => "extending",
            BackendStep::UringSetup => "io_uring_setup for",
            BackendStep::RegisterBuffers => "IORING_REGISTER_BUFFERS for",
            BackendStep::Submit => "io_uring_enter on",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_step_and_the_file() {
        let e = BackendError::Io {
            step: BackendStep::UringSetup,
            path: "/tmp/disk.img".into(),
            source: io::Error::from_raw_os_error(libc::ENOSYS),
        };
        assert_eq!(e.to_string(), "io_uring_setup for /tmp/disk.img failed");
        assert!(std::error::Error::source(&e).is_some());
    }
}
