//! The TOML document as serde sees it: loose types, every numeric field `u64` so that range
//! errors come from validation (which names the limit) rather than from serde. Private to the
//! crate; `validate` turns it into [`Config`](crate::Config) and `render` turns a `Config` back
//! into it.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::model::{LcoreRole, PageSize, TxPolicy};

mod ports;

pub(crate) use ports::{
    AfXdpPort, Driver, RawPort, RingPort, VhostUserPort, VirtioPort, VirtioUserPort,
};

/// Why the text does not parse into [`RawConfig`]: the TOML parser's or serde's message, and
/// the byte range of the text it is about.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub message: String,
    pub span: Option<Range<usize>>,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, span: Range<usize>) -> Self {
        Self {
            message: message.into(),
            span: Some(span),
        }
    }

    /// Where the error starts, for picking the first of two.
    fn start(&self) -> usize {
        self.span.as_ref().map_or(usize::MAX, |s| s.start)
    }
}

impl From<toml::de::Error> for ParseError {
    fn from(e: toml::de::Error) -> Self {
        Self {
            message: e.message().trim_end().to_owned(),
            span: e.span(),
        }
    }
}

/// Parses the text: the `[[ports]]` entries by driver ([`ports::read`]), everything else by
/// derive. When both parts have an error, the one earlier in the text is returned, so the first
/// problem in the file is the one reported.
pub(crate) fn parse(text: &str) -> Result<RawConfig, ParseError> {
    let mut root = DeTable::parse(text)?;
    let ports = root.get_mut().remove("ports");
    let rest = RawConfig::deserialize(toml::de::Deserializer::from(root)).map_err(ParseError::from);
    let ports = ports.as_ref().map(ports::read).transpose();
    match (rest, ports) {
        (Ok(mut raw), Ok(ports)) => {
            raw.ports = ports.unwrap_or_default();
            Ok(raw)
        }
        (Err(a), Err(b)) => Err(if b.start() < a.start() { b } else { a }),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mempools: Vec<RawMempool>,
    /// Read by [`parse`] through [`ports::read`], not by this derive.
    #[serde(skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<RawPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lcores: Vec<RawLcore>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<RawForward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<RawPipeline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<RawStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<RawGenerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<RawSink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<RawTelemetry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMempool {
    pub name: String,
    pub buffers: u64,
    pub buffer_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<PageSize>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLcore {
    pub core: u64,
    pub role: LcoreRole,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rx: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_policy: Option<TxPolicy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawMode {
    Io,
    MacSwap,
    L2,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    pub from: String,
    pub to: String,
    pub mode: RawMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_mac: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGenerator {
    pub port: String,
    pub core: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_pps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    pub port: String,
    pub core: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTelemetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
}
