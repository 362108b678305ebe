//! Live telemetry, off the data path: a unix socket that speaks DPDK's telemetry v2 protocol
//! (so DPDK's own `dpdk-telemetry.py` queries Sluice unchanged) and a Prometheus endpoint,
//! both reading only the counters the lcores bump anyway.
//!
//! [`Telemetry`] is the command table: `/`, `/info` and `/help` are built in, [`commands`]
//! registers DPDK's `/ethdev/...` and Sluice's `/sluice/...` from a [`Sources`], and any
//! part of an app can add its own with one [`Telemetry::register`] call, before or after
//! the socket is up. [`server::TelemetryServer`] serves the table on the socket;
//! [`prometheus::PrometheusServer`] serves `/metrics` over HTTP.
//!
//! The protocol (DPDK's `lib/telemetry`): the server sends
//! `{"version":..,"pid":..,"max_output_len":16384}` on connect; each message the client sends
//! is a command, optionally followed by `,` and a parameter; each reply is one message,
//! `{"<command>": <data>}`, or `{"<command>": null}` for an unknown command or a bad
//! parameter.

pub mod commands;
pub mod endpoints;
pub mod latency;
pub mod options;
pub mod prometheus;
pub mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

pub use commands::{BlockQueueCounters, Sources};
pub use endpoints::{Endpoints, Running};
pub use latency::{LatencyBuckets, LatencySnapshot};
pub use options::{TelemetryArgs, TelemetryOptions};

/// Longest reply, in bytes, as DPDK's (`max_output_len` in the info message).
pub const MAX_OUTPUT_LEN: usize = 16 * 1024;
/// Longest command name, in bytes, as DPDK's (`MAX_CMD_LEN` - 1).
pub const MAX_CMD_LEN: usize = 55;
/// Longest help text, in bytes, as DPDK's (`MAX_HELP_LEN` - 1).
pub const MAX_HELP_LEN: usize = 63;
/// The version string in the info message: the DPDK release whose protocol this speaks.
pub const VERSION: &str = concat!("DPDK 22.11.0 (Sluice ", env!("CARGO_PKG_VERSION"), ")");

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A command name or help text that DPDK's client could not handle, or one registered
    /// twice.
    #[error("telemetry command {name}: {why}")]
    Command {
        /// The command.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Another live process answers on the socket path.
    #[error(
        "telemetry socket {}: in use by another live process (stop it, or give this one \
         another --telemetry-prefix or --telemetry PATH)",
        path.display()
    )]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// Something at the socket path that is not a socket.
    #[error("telemetry socket {}: exists and is not a socket; not replacing it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The OS refused (creating the directory, binding, listening, a thread).
    #[error("telemetry socket {}: {what}", path.display())]
    Socket {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus address could not be bound.
    #[error("prometheus endpoint {addr}: cannot listen")]
    Bind {
        /// The address as given.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus address is not an address.
    #[error("prometheus endpoint '{addr}': not an IP address and port (e.g. 127.0.0.1:9464)")]
    BadAddr {
        /// The address as given.
        addr: String,
    },
}

/// A command's handler: the parameter (after the `,`), if any, gives its data, or `None` for
/// a bad parameter (the client then reads `null`, as from DPDK).
pub type Handler = dyn Fn(Option<&str>) -> Option<Value> + Send + Sync;

struct Command {
    help: String,
    handler: Arc<Handler>,
}

/// The command table; cloning gives another handle to the same table.
#[derive(Clone)]
pub struct Telemetry {
    commands: Arc<RwLock<BTreeMap<String, Command>>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("commands", &self.commands())
            .finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

const BUILT_IN: [(&str, &str); 3] = [
    (
        "/",
        "Returns list of available commands, Takes no parameters",
    ),
    (
        "/info",
        "Returns DPDK Telemetry information. Takes no parameters",
    ),
    (
        "/help",
        "Returns help text for a command. Parameters: string command",
    ),
];

impl Telemetry {
    /// A table with the built-in commands `/`, `/info` and `/help`.
    pub fn new() -> Self {
        let t = Self {
            commands: Arc::default(),
        };
        for (name, help) in BUILT_IN {
            // The built-in names are valid and registered once.
            let _ = t.register(name, help, |_| None);
        }
        t
    }

    /// Adds `name` (starting with `/`, at most [`MAX_CMD_LEN`] bytes, no `,`) with its help
    /// text (at most [`MAX_HELP_LEN`] bytes) and handler.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        handler: impl Fn(Option<&str>) -> Option<Value> + Send + Sync + 'static,
    ) -> Result<(), TelemetryError> {
        let bad = |why| {
            Err(TelemetryError::Command {
                name: name.to_string(),
                why,
            })
        };
        if !name.starts_with('/') || name.contains(',') || name.len() > MAX_CMD_LEN {
            return bad("a name starts with '/', has no ',' and at most 55 bytes");
        }
        if help.len() > MAX_HELP_LEN {
            return bad("help text over 63 bytes");
        }
        let mut table = self.commands.write().unwrap_or_else(|p| p.into_inner());
        if table.contains_key(name) {
            return bad("registered twice");
        }
        table.insert(
            name.to_string(),
            Command {
                help: help.to_string(),
                handler: Arc::new(handler),
            },
        );
        Ok(())
    }

    /// The command names, sorted (the reply to `/`).
    pub fn commands(&self) -> Vec<String> {
        let table = self.commands.read().unwrap_or_else(|p| p.into_inner());
        table.keys().cloned().collect()
    }

    /// The reply to one request, as DPDK's server writes it: `{"<command>": <data>}`.
    pub fn handle(&self, request: &str) -> String {
        let request = request.trim_end_matches(['\0', '\n']);
        let (cmd, param) = match request.split_once(',') {
            Some((c, p)) => (c, Some(p).filter(|p| !p.is_empty())),
            None => (request, None),
        };
        let data = self.data(cmd, param);
        let reply = json!({ cmd: data }).to_string();
        if reply.len() > MAX_OUTPUT_LEN {
            return json!({ cmd: Value::Null }).to_string();
        }
        reply
    }

    fn data(&self, cmd: &str, param: Option<&str>) -> Value {
        match cmd {
            "/" => return json!(self.commands()),
            "/info" => return info(),
            _ => {}
        }
        let table = self.commands.read().unwrap_or_else(|p| p.into_inner());
        if cmd == "/help" {
            return match param.and_then(|p| table.get(p).map(|c| (p, c))) {
                Some((p, c)) => json!({ p: c.help }),
                None => Value::Null,
            };
        }
        let Some(handler) = table.get(cmd).map(|c| c.handler.clone()) else {
            return Value::Null;
        };
        drop(table);
        handler(param).unwrap_or(Value::Null)
    }
}

/// The info message, sent on connect and the reply to `/info`.
pub fn info() -> Value {
    json!({
        "version": VERSION,
        "pid": std::process::id(),
        "max_output_len": MAX_OUTPUT_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_shaped_as_dpdks() {
        let t = Telemetry::new();
        t.register("/x/echo", "Echoes its parameter", |p| p.map(|p| json!(p)))
            .unwrap();
        assert_eq!(t.handle("/"), r#"{"/":["/","/help","/info","/x/echo"]}"#);
        assert_eq!(t.handle("/x/echo,hi"), r#"{"/x/echo":"hi"}"#);
        assert_eq!(t.handle("/x/echo"), r#"{"/x/echo":null}"#);
        assert_eq!(t.handle("/nope"), r#"{"/nope":null}"#);
        assert_eq!(
            t.handle("/help,/x/echo"),
            r#"{"/help":{"/x/echo":"Echoes its parameter"}}"#
        );
        assert_eq!(t.handle("/help,/nope"), r#"{"/help":null}"#);
        let info: Value = serde_json::from_str(&t.handle("/info")).unwrap();
        assert_eq!(info["/info"]["max_output_len"], 16384);
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let t = Telemetry::new();
        for bad in ["x", "/a,b", &format!("/{}", "a".repeat(55))] {
            assert!(t.register(bad, "", |_| None).is_err(), "{bad}");
        }
        assert!(t.register("/info", "", |_| None).is_err());
        assert!(t.register("/ok", &"h".repeat(64), |_| None).is_err());
    }
}
