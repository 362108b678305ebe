//! [`PciError`]: what goes wrong with PCI addresses, sysfs, config space and capability lists.

use std::io;
use std::path::PathBuf;

use super::PciAddr;

/// A PCI step that failed. Part of [`crate::Error`] as [`crate::Error::Pci`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PciError {
    /// A PCI address did not parse.
    ///
    /// Write it as `DDDD:BB:DD.F` (`0000:00:04.0`) or `BB:DD.F` (`00:04.0`), in hex.
    #[error("'{input}' is not a PCI address ({why}); write it as 0000:00:04.0 or 00:04.0")]
    ParseAddr {
        /// What was given.
        input: String,
        /// Which part is wrong.
        why: &'static str,
    },

    /// No such PCI device in sysfs.
    ///
    /// Check the address against `sluice-devbind status` or `lspci -D`.
    #[error("no PCI device {addr} (nothing at {path}); list devices with `sluice-devbind status`")]
    NoDevice {
        /// The device asked for.
        addr: PciAddr,
        /// The sysfs directory that is missing.
        path: PathBuf,
    },

    /// Reading or writing a sysfs file failed.
    #[error("{op} {path} failed")]
    Sysfs {
        /// "reading" or "writing".
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A sysfs file held something this crate cannot interpret.
    #[error("{path} holds '{value}', expected {expected}")]
    SysfsValue {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed).
        value: String,
        /// What was expected there.
        expected: &'static str,
    },

    /// A config-space access failed or fell outside the config space.
    #[error("{addr}: config space {op} of {len} bytes at {offset:#x} failed")]
    Config {
        /// The device.
        addr: PciAddr,
        /// "read" or "write".
        op: &'static str,
        /// Offset in config space.
        offset: u16,
        /// Access width in bytes.
        len: usize,
        /// The OS error (`UnexpectedEof` past the end).
        #[source]
        source: io::Error,
    },

    /// A capability list is malformed (a loop, a pointer into the header, a truncated
    /// capability).
    #[error("{addr}: malformed capability list at {offset:#x}: {why}")]
    CapList {
        /// The device.
        addr: PciAddr,
        /// Where the bad entry is.
        offset: u16,
        /// What is wrong.
        why: &'static str,
    },
}
