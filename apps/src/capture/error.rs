//! The error type of [`crate::capture`].

use std::path::PathBuf;

/// Why a capture could not be set up, started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// A capture argument that does not parse (`PORT[/qN][:rx|tx|both]=FILE.pcapng`).
    #[error("capture '{arg}': {why}")]
    Syntax {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        why: String,
    },
    /// A port or queue that no forwarding lcore polls.
    #[error("capture '{spec}': no such {what}; known: {known}")]
    Unknown {
        /// The tap point as given.
        spec: String,
        /// `port`, `queue` or `direction`.
        what: &'static str,
        /// The tap points there are, comma separated.
        known: String,
    },
    /// The capture file could not be created.
    #[error("capture file {}: cannot create", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The pcapng header could not be written.
    #[error("capture file {}: cannot write the header: {why}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What the pcapng writer said.
        why: String,
    },
    /// A tap point already feeds another capture.
    #[error("{point} is already captured by tap {tap}")]
    Busy {
        /// The tap point.
        point: String,
        /// The tap that has it.
        tap: u32,
    },
    /// No tap with that id.
    #[error("no capture with id {0}")]
    NoSuchTap(u32),
    /// The writer thread could not be started.
    #[error("starting the capture writer thread")]
    Thread(#[source] std::io::Error),
    /// A control command that is not one of `start`, `stop`, `list`.
    #[error("capture command '{0}': expected list | start,PORT[/qN][:rx|tx|both],FILE | stop,ID")]
    Command(String),
    /// A setting out of range.
    #[error("{0}")]
    Setting(String),
}
