//! The error type of `sluice-apps`.

use sluice_config::ConfigError;

/// Why an app could not start or stop cleanly. The binaries print it on one line (with its
/// sources) and exit non-zero.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration file is unreadable or invalid (the message names file, key, value).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port's driver is not part of this build yet.
    #[error("port {port}: driver {driver} is not in this build yet")]
    DriverNotBuilt {
        /// The port.
        port: String,
        /// The driver named in the configuration.
        driver: &'static str,
    },
    /// A driver could not open a port (missing interface, no permission, ...).
    #[error("port {port}: cannot open")]
    Port {
        /// The port.
        port: String,
        /// What the driver said.
        #[source]
        source: sluice_pmd::Error,
    },
    /// A mempool could not be created (no hugepages, no memory).
    #[error("mempool {pool}: cannot create")]
    Mempool {
        /// The pool.
        pool: String,
        /// What the mempool crate said.
        #[source]
        source: sluice_mempool::Error,
    },
    /// The runtime could not start or stop an lcore (a missing core, a hung lcore).
    #[error(transparent)]
    Runtime(#[from] sluice_dataplane::Error),
    /// The frame size does not fit the port or its buffers.
    #[error("frame size {size} is out of range (64..={max} on this port and mempool)")]
    FrameSize {
        /// The size asked for (with FCS).
        size: usize,
        /// The largest that fits.
        max: usize,
    },
    /// A command-line argument that names something the configuration lacks.
    #[error("{0}")]
    Usage(String),
    /// The telemetry socket or the Prometheus endpoint could not start.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// Installing the SIGINT/SIGTERM handler or starting the stats thread failed.
    #[error("{what}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A capture could not be set up (a bad tap point, a file that cannot be created).
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
}

impl AppError {
    /// The error and its sources on one line: `a: b: c`.
    pub fn one_line(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            let text = e.to_string();
            if !s.ends_with(&text) {
                s.push_str(": ");
                s.push_str(&text);
            }
            src = e.source();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_the_sources() {
        let e = AppError::Os {
            what: "installing the SIGINT handler",
            source: std::io::Error::from_raw_os_error(libc_eperm()),
        };
        let line = e.one_line();
        assert!(
            line.starts_with("installing the SIGINT handler: "),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    fn libc_eperm() -> i32 {
        1
    }
}
