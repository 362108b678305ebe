//! Raw document → [`Config`]: every rule of the schema, each failure a [`ConfigError::Invalid`]
//! naming the key path and the bad value. Checks run in file order, section by section
//! (mempools, ports, forward, generator and sink, lcores, pipeline), and the first failure is
//! returned.

use std::collections::HashMap;
use std::fmt::Display;
use std::num::NonZeroU64;
use std::time::Duration;

use crate::ConfigError;
use crate::addr::{MacAddr, PciAddr};
use crate::model::{
    Config, ForwardMode, ForwardRule, Generator, Lcore, LcoreRole, Mempool, MempoolId, PageSize,
    Pipeline, Port, PortDriver, PortId, QueueRef, Sink, XdpMode, driver_max_queues,
};
use crate::raw::RawTelemetry;
use crate::raw::{
    AfXdpPort, Driver, RawConfig, RawForward, RawGenerator, RawLcore, RawMode, RawPort, RawSink,
    RingPort, VirtioPort, VirtioUserPort,
};

mod flows;
mod forward;
mod lcores;
mod ports;
mod sizes;

type Result<T> = std::result::Result<T, ConfigError>;

/// Default packets per burst (DESIGN.md §6).
const DEFAULT_BURST: u64 = 32;
const MAX_BURST: u64 = 256;
const DEFAULT_DESCRIPTORS: u64 = 1024;
const DEFAULT_CACHE: u64 = 256;
const MAX_CACHE: u64 = 512;
const MIN_BUFFER: u64 = 64;
const MAX_BUFFER: u64 = 16384;
const MIN_PIPELINE_RING: u64 = 64;
const MAX_PIPELINE_RING: u64 = 65536;
const DEFAULT_PIPELINE_RING: u64 = 1024;
const DEFAULT_STATS_MS: u64 = 1000;
const MIN_FRAME: u64 = 64;
const FCS: u64 = 4;
const MAX_FLOWS: u64 = 65536;
/// IFNAMSIZ (16) less the terminating NUL.
const MAX_IFNAME: usize = 15;
/// The longest unix socket path (`sun_path` is 108 bytes with its NUL, unix(7)).
const MAX_SOCKET_PATH: usize = 107;

pub(crate) fn validate(file: &str, raw: RawConfig) -> Result<Config> {
    let v = Validator { file };
    let burst = v.range("burst", raw.burst.unwrap_or(DEFAULT_BURST), 1, MAX_BURST)? as u16;
    let mempools = raw
        .mempools
        .iter()
        .enumerate()
        .map(|(i, m)| v.mempool(i, m, &raw.mempools[..i]))
        .collect::<Result<Vec<_>>>()?;
    let ports = v.ports(&raw.ports, &mempools)?;
    v.pool_sizes(&mempools, &ports)?;
    v.startup_sizes(&mempools, &ports)?;
    let names = Names(&ports);
    let generator = raw
        .generator
        .as_ref()
        .map(|g| v.generator(g, &names, &mempools))
        .transpose()?;
    let sink = raw.sink.as_ref().map(|s| v.sink(s, &names)).transpose()?;
    let owned = Owned { generator, sink };
    let forward = v.forward(&raw.forward, &names, &owned)?;
    let lcores = v.lcores(&raw.lcores, &names, &forward, &owned)?;
    v.helper_cores(&owned, &lcores)?;
    let pipeline = v.pipeline(&raw, &lcores, &names, &forward)?;
    v.forward_sources_polled(&forward, &lcores, &names)?;
    v.forward_loops(&forward, &names, &owned)?;
    v.sink_reachable(&forward, &names, &owned)?;
    v.role_conflicts(&forward, &lcores, &names, &owned)?;
    let stats_ms = raw
        .stats
        .as_ref()
        .and_then(|s| s.interval_ms)
        .unwrap_or(DEFAULT_STATS_MS);
    Ok(Config {
        name: file.to_owned(),
        burst,
        mempools,
        ports,
        lcores,
        forward,
        pipeline,
        stats_interval: (stats_ms > 0).then(|| Duration::from_millis(stats_ms)),
        generator,
        sink,
        prometheus: v.prometheus(raw.telemetry.as_ref())?,
    })
}

struct Validator<'a> {
    file: &'a str,
}

/// Port lookup by name, for references.
struct Names<'a>(&'a [Port]);

impl Names<'_> {
    fn find(&self, name: &str) -> Option<PortId> {
        self.0.iter().position(|p| p.name == name).map(PortId)
    }

    fn name(&self, id: PortId) -> &str {
        &self.0[id.0].name
    }

    fn port(&self, id: PortId) -> &Port {
        &self.0[id.0]
    }

    fn list(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|p| p.name.as_str()).collect();
        names.join(", ")
    }

    fn queue(&self, q: QueueRef) -> String {
        format!("{}/q{}", self.name(q.port), q.queue)
    }
}

/// Ports taken whole by the built-in generator and sink.
struct Owned {
    generator: Option<Generator>,
    sink: Option<Sink>,
}

impl Owned {
    fn owner_of(&self, port: PortId) -> Option<&'static str> {
        if self.generator.is_some_and(|g| g.port == port) {
            Some("the generator")
        } else if self.sink.is_some_and(|s| s.port == port) {
            Some("the sink")
        } else {
            None
        }
    }
}

impl Validator<'_> {
    fn prometheus(&self, t: Option<&RawTelemetry>) -> Result<Option<std::net::SocketAddr>> {
        let Some(addr) = t.and_then(|t| t.prometheus.as_deref()) else {
            return Ok(None);
        };
        addr.parse().map(Some).map_err(|_| {
            self.err(
                "telemetry.prometheus",
                format!("'{addr}' is not an IP address and port (e.g. \"127.0.0.1:9464\")"),
            )
        })
    }

    fn err(&self, key: impl Display, message: impl Display) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    fn range(&self, key: impl Display, value: u64, min: u64, max: u64) -> Result<u64> {
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(self.err(key, format!("{value} is out of range {min}..={max}")))
        }
    }

    fn power_of_two(&self, key: impl Display, value: u64, min: u64, max: u64) -> Result<u64> {
        if !value.is_power_of_two() {
            return Err(self.err(
                key,
                format!("{value} is not a power of two (allowed: powers of two in {min}..={max})"),
            ));
        }
        self.range(key, value, min, max)
    }

    fn core(&self, key: impl Display, core: u64) -> Result<u32> {
        u32::try_from(core).map_err(|_| self.err(key, format!("{core} is not a CPU id")))
    }

    /// Names of ports and mempools: non-empty, letters, digits, `_`, `-` and `.` (no `/`, which
    /// separates port and queue in `port0/q1`).
    fn name(&self, key: impl Display, name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!("{name:?} is not a valid name: use letters, digits, '_', '-' and '.'"),
            ))
        }
    }
}

fn raw_names(ports: &[RawPort]) -> String {
    let names: Vec<&str> = ports.iter().map(|p| p.common().name).collect();
    names.join(", ")
}

fn plural(n: u16) -> &'static str {
    if n == 1 { "" } else { "s" }
}
