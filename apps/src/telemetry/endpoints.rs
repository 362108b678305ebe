//! Both endpoints of an app, bound before its lcores start and serving once their counters
//! exist.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::prometheus::{PrometheusListener, PrometheusServer};
use super::server::TelemetryServer;
use super::{Sources, Telemetry, TelemetryError, TelemetryOptions, commands};

/// The endpoints an app asked for, bound. The socket answers the built-in commands at once;
/// [`Endpoints::serve`] adds the rest.
#[derive(Debug)]
pub struct Endpoints {
    telemetry: Telemetry,
    socket: Option<TelemetryServer>,
    prometheus: Option<PrometheusListener>,
}

impl Endpoints {
    /// No endpoint.
    pub fn none() -> Self {
        Self {
            telemetry: Telemetry::new(),
            socket: None,
            prometheus: None,
        }
    }

    /// Binds what `opts` asks for (nothing when it asks for nothing).
    pub fn bind(opts: &TelemetryOptions) -> Result<Self, TelemetryError> {
        // The address first: it fails without leaving a socket file behind.
        let prometheus = opts
            .prometheus
            .as_deref()
            .map(PrometheusListener::bind)
            .transpose()?;
        let telemetry = Telemetry::new();
        let socket = opts
            .socket
            .as_deref()
            .map(|p| TelemetryServer::start(telemetry.clone(), p))
            .transpose()?;
        Ok(Self {
            telemetry,
            socket,
            prometheus,
        })
    }

    /// The command table (to register more commands).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The socket's path, if it is on.
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket.as_ref().map(|s| s.path())
    }

    /// The Prometheus endpoint's address, if it is on.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|p| p.addr())
    }

    /// What is on, for a line on stderr: how to query each endpoint; `None` when off.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(p) = self.socket_path() {
            // The client's -f finds the socket only in DPDK's runtime directory.
            let prefix = p
                .parent()
                .and_then(|d| d.file_name())
                .and_then(|f| f.to_str())
                .filter(|f| super::options::default_socket(f) == p);
            parts.push(match prefix {
                Some(f) => format!(
                    "telemetry socket {} (dpdk-telemetry.py -f {f})",
                    p.display()
                ),
                None => format!("telemetry socket {}", p.display()),
            });
        }
        if let Some(a) = self.prometheus_addr() {
            parts.push(format!("prometheus http://{a}/metrics"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Registers the commands over `sources` and starts serving metrics.
    pub fn serve(self, sources: Sources) -> Result<Running, TelemetryError> {
        let sources = Arc::new(sources);
        if self.socket.is_some() {
            commands::register(&self.telemetry, sources.clone())?;
        }
        let prometheus = self.prometheus.map(|p| p.serve(sources)).transpose()?;
        Ok(Running {
            telemetry: self.telemetry,
            _socket: self.socket,
            _prometheus: prometheus,
        })
    }
}

/// Serving endpoints; dropping this stops them (and removes the socket file).
#[derive(Debug)]
pub struct Running {
    /// The command table (to register more commands).
    pub telemetry: Telemetry,
    _socket: Option<TelemetryServer>,
    _prometheus: Option<PrometheusServer>,
}
