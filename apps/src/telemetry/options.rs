//! The telemetry flags every app shares, and where the socket goes.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use clap::Args;

/// The file prefix when none is given (DPDK's `--file-prefix`; DPDK's own default is `rte`).
pub const DEFAULT_PREFIX: &str = "sluice";
/// The socket's name in the runtime directory, as DPDK's.
pub const SOCKET_NAME: &str = "dpdk_telemetry.v2";

/// The telemetry flags (`#[command(flatten)]` them into an app's arguments).
#[derive(Debug, Clone, Default, Args)]
pub struct TelemetryArgs {
    /// Telemetry socket (DPDK telemetry v2; query with `dpdk-telemetry.py -f PREFIX`): `on`
    /// puts it at /var/run/dpdk/PREFIX/dpdk_telemetry.v2 as root, else
    /// $XDG_RUNTIME_DIR/dpdk/PREFIX/dpdk_telemetry.v2 (DPDK's runtime directory); `off`;
    /// or a socket path. Default: off, on with --telemetry-prefix.
    #[arg(long, value_name = "on|off|PATH")]
    pub telemetry: Option<String>,
    /// File prefix of the telemetry socket's directory (DPDK's --file-prefix; turns the
    /// socket on) [default: sluice].
    #[arg(long, value_name = "PREFIX", value_parser = parse_prefix)]
    pub telemetry_prefix: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; overrides the
    /// configuration's `[telemetry] prometheus`).
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<String>,
}

fn parse_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') || s == "." || s == ".." || s.contains('\0') {
        return Err(format!(
            "'{s}' is not a file prefix (a non-empty name without '/')"
        ));
    }
    Ok(s.to_string())
}

/// What telemetry an app runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryOptions {
    /// The telemetry socket's path; `None`: no socket.
    pub socket: Option<PathBuf>,
    /// The Prometheus endpoint's address; `None`: none.
    pub prometheus: Option<String>,
}

impl TelemetryOptions {
    /// These, with the configuration's `[telemetry] prometheus` when no address was given.
    pub fn with_config(&self, prometheus: Option<std::net::SocketAddr>) -> Self {
        Self {
            socket: self.socket.clone(),
            prometheus: self
                .prometheus
                .clone()
                .or_else(|| prometheus.map(|a| a.to_string())),
        }
    }

    /// Whether anything is on.
    pub fn any(&self) -> bool {
        self.socket.is_some() || self.prometheus.is_some()
    }
}

impl TelemetryArgs {
    /// What the flags ask for, with `config_prometheus` (the configuration's
    /// `[telemetry] prometheus`) when `--prometheus` is not given.
    pub fn options(&self, config_prometheus: Option<&str>) -> TelemetryOptions {
        let prefix = self.telemetry_prefix.as_deref();
        let socket = match self.telemetry.as_deref() {
            Some("off") => None,
            Some("on") => Some(default_socket(prefix.unwrap_or(DEFAULT_PREFIX))),
            Some(path) => Some(PathBuf::from(path)),
            None => prefix.map(default_socket),
        };
        TelemetryOptions {
            socket,
            prometheus: self
                .prometheus
                .clone()
                .or_else(|| config_prometheus.map(str::to_string)),
        }
    }
}

/// DPDK's runtime directory for `prefix`, as its EAL and `dpdk-telemetry.py` find it:
/// `$RUNTIME_DIRECTORY`, else `/var/run` as root, else `$XDG_RUNTIME_DIR` (or `/tmp`);
/// then `dpdk/<prefix>`.
pub fn runtime_dir(prefix: &str) -> PathBuf {
    let base = match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ if is_root() => PathBuf::from("/var/run"),
        _ => std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from),
    };
    base.join("dpdk").join(prefix)
}

/// The socket path for `prefix` in DPDK's runtime directory.
pub fn default_socket(prefix: &str) -> PathBuf {
    runtime_dir(prefix).join(SOCKET_NAME)
}

fn is_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_resolve_to_a_socket_and_an_endpoint() {
        let a = TelemetryArgs::default();
        assert!(!a.options(None).any());
        assert_eq!(
            a.options(Some("127.0.0.1:9464")).prometheus.as_deref(),
            Some("127.0.0.1:9464")
        );
        let a = TelemetryArgs {
            telemetry: Some("/tmp/x.sock".into()),
            prometheus: Some("[::1]:1".into()),
            ..TelemetryArgs::default()
        };
        let o = a.options(Some("127.0.0.1:9464"));
        assert_eq!(o.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(o.prometheus.as_deref(), Some("[::1]:1"));
        let a = TelemetryArgs {
            telemetry_prefix: Some("p1".into()),
            ..TelemetryArgs::default()
        };
        let s = a.options(None).socket.unwrap();
        assert!(s.ends_with("dpdk/p1/dpdk_telemetry.v2"), "{}", s.display());
        let a = TelemetryArgs {
            telemetry: Some("off".into()),
            telemetry_prefix: Some("p1".into()),
            ..TelemetryArgs::default()
        };
        assert_eq!(a.options(None).socket, None);
        for bad in ["", "a/b", "..", "."] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
