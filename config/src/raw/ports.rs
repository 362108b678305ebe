//! `[[ports]]` entries: one struct per driver, chosen by the entry's `driver` key.
//!
//! Each struct holds exactly the keys its driver takes and denies every other, so a key of
//! another driver (`pci` on a ring port) fails to parse like any unknown key: the error names
//! the key, its line and the keys the driver takes.
//!
//! [`RawPort`] serializes as a `#[serde(tag = "driver")]` enum, but is not deserialized by
//! serde's derive for such enums: that derive buffers the whole entry before it knows the
//! variant, and an error inside the buffered entry can then only point at the `[[ports]]`
//! header, not at the key or value at fault. [`read`] instead takes the entry from the parsed
//! document, reads `driver` first and then deserializes the rest of the table, positions
//! intact, into that driver's struct.
//!
//! A new driver is a struct here, a variant of [`RawPort`] and of [`Driver`]; the compiler
//! points at the matches to extend.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::ParseError;
use crate::model::XdpMode;

/// A `[[ports]]` entry, by driver.
#[derive(Debug, Serialize)]
#[serde(tag = "driver", rename_all = "snake_case")]
pub(crate) enum RawPort {
    Ring(RingPort),
    AfXdp(AfXdpPort),
    Virtio(VirtioPort),
    #[serde(rename = "virtio-user")]
    VirtioUser(VirtioUserPort),
    #[serde(rename = "vhost-user")]
    VhostUser(VhostUserPort),
}

/// The value of `driver`: which struct the rest of the entry is read into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Driver {
    Ring,
    AfXdp,
    Virtio,
    #[serde(rename = "virtio-user")]
    VirtioUser,
    #[serde(rename = "vhost-user")]
    VhostUser,
}

impl Driver {
    /// The name as written in the file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Driver::Ring => "ring",
            Driver::AfXdp => "af_xdp",
            Driver::Virtio => "virtio",
            Driver::VirtioUser => "virtio-user",
            Driver::VhostUser => "vhost-user",
        }
    }
}

/// `driver = "ring"`: one end of an in-memory port pair.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RingPort {
    pub name: String,
    /// Required; an `Option` so that validation can say so with an example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
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

/// `driver = "af_xdp"`: AF_XDP sockets on a Linux interface.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AfXdpPort {
    pub name: String,
    /// Required; an `Option` so that validation can say so with an example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<XdpMode>,
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

/// `driver = "virtio"`: a virtio-net PCI device bound to vfio-pci.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VirtioPort {
    pub name: String,
    /// Required; an `Option` so that validation can say so with an example.
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

/// `driver = "virtio-user"`: a virtio-net device that a vhost-user backend on this host
/// implements, reached through its unix socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VirtioUserPort {
    pub name: String,
    /// Required; an `Option` so that validation can say so with an example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
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
    /// Packed virtqueues when the backend offers them; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<bool>,
}

/// `driver = "vhost-user"`: this process as the vhost-user backend (the virtio-net device)
/// of a QEMU guest or a virtio-user container, listening on a unix socket. The ring sizes
/// are the frontend's, so there are no descriptor keys.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VhostUserPort {
    pub name: String,
    /// Required; an `Option` so that validation can say so with an example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mempool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The keys that every driver's struct has (under the same names), borrowed from it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Common<'a> {
    pub name: &'a str,
    pub queues: Option<u64>,
    pub rx_descriptors: Option<u64>,
    pub tx_descriptors: Option<u64>,
    pub mempool: Option<&'a str>,
    pub mac: Option<&'a str>,
}

/// [`Common`] of a driver's struct.
macro_rules! common {
    ($p:expr) => {
        Common {
            name: &$p.name,
            queues: $p.queues,
            rx_descriptors: $p.rx_descriptors,
            tx_descriptors: $p.tx_descriptors,
            mempool: $p.mempool.as_deref(),
            mac: $p.mac.as_deref(),
        }
    };
}

impl RawPort {
    pub(crate) fn driver(&self) -> Driver {
        match self {
            RawPort::Ring(_) => Driver::Ring,
            RawPort::AfXdp(_) => Driver::AfXdp,
            RawPort::Virtio(_) => Driver::Virtio,
            RawPort::VirtioUser(_) => Driver::VirtioUser,
            RawPort::VhostUser(_) => Driver::VhostUser,
        }
    }

    pub(crate) fn common(&self) -> Common<'_> {
        match self {
            RawPort::Ring(p) => common!(p),
            RawPort::AfXdp(p) => common!(p),
            RawPort::Virtio(p) => common!(p),
            RawPort::VirtioUser(p) => common!(p),
            RawPort::VhostUser(p) => Common {
                name: &p.name,
                queues: p.queues,
                rx_descriptors: None,
                tx_descriptors: None,
                mempool: p.mempool.as_deref(),
                mac: p.mac.as_deref(),
            },
        }
    }

    /// Reads one entry: its `driver`, then the rest of its table into that driver's struct.
    fn read(entry: &Spanned<DeValue<'_>>) -> Result<RawPort, ParseError> {
        let span = entry.span();
        let DeValue::Table(table) = entry.get_ref() else {
            return Err(not_a(entry, "a [[ports]] table"));
        };
        let mut table = table.clone();
        let driver = table
            .remove("driver")
            .ok_or_else(|| ParseError::new("missing field `driver`", span.clone()))?;
        let driver = Driver::deserialize(ValueDeserializer::from(driver))?;
        let keys: Vec<Range<usize>> = table.iter().map(|(k, _)| k.span()).collect();
        let rest = ValueDeserializer::from(Spanned::new(span, DeValue::Table(table)));
        let port = match driver {
            Driver::Ring => RingPort::deserialize(rest).map(RawPort::Ring),
            Driver::AfXdp => AfXdpPort::deserialize(rest).map(RawPort::AfXdp),
            Driver::Virtio => VirtioPort::deserialize(rest).map(RawPort::Virtio),
            Driver::VirtioUser => VirtioUserPort::deserialize(rest).map(RawPort::VirtioUser),
            Driver::VhostUser => VhostUserPort::deserialize(rest).map(RawPort::VhostUser),
        };
        port.map_err(|e| {
            let mut e = ParseError::from(e);
            // An error at a key is the struct denying it: say whose keys were expected.
            if e.span.as_ref().is_some_and(|s| keys.contains(s)) {
                e.message = format!("{} for driver = {:?}", e.message, driver.name());
            }
            e
        })
    }
}

/// Reads the document's `ports` value, which should be an array of tables.
pub(crate) fn read(list: &Spanned<DeValue<'_>>) -> Result<Vec<RawPort>, ParseError> {
    match list.get_ref() {
        DeValue::Array(entries) => entries.iter().map(RawPort::read).collect(),
        _ => Err(not_a(list, "an array of [[ports]] tables")),
    }
}

/// A value of the wrong type, worded as serde words it.
fn not_a(value: &Spanned<DeValue<'_>>, expected: &str) -> ParseError {
    let found = match value.get_ref() {
        DeValue::String(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "float",
        DeValue::Boolean(_) => "boolean",
        DeValue::Datetime(_) => "datetime",
        DeValue::Array(_) => "array",
        DeValue::Table(_) => "table",
    };
    ParseError::new(
        format!("invalid type: {found}, expected {expected}"),
        value.span(),
    )
}
