//! The TOML document as serde sees it: loose types, every numeric field `u64` so that range
//! errors come from validation (which names the limit) rather than from serde. Private to the
//! crate; `validate` turns it into [`Config`](crate::Config) and `render` turns a `Config` back
//! into it.

use serde::{Deserialize, Serialize};

use crate::model::{LcoreRole, PageSize, XdpMode};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mempools: Vec<RawMempool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawDriver {
    Ring,
    AfXdp,
    Virtio,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub name: String,
    pub driver: RawDriver,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<XdpMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_descriptors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_descriptors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mempool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
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
