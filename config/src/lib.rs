//! Sluice configuration: the TOML file that says which ports to open, which cores poll which
//! queues, and where frames go.
//!
//! # Model
//!
//! A config describes four things:
//!
//! - **mempools**: pools of packet buffers;
//! - **ports**: network ports, each with a driver (in-memory `ring` pair, `af_xdp` socket on a
//!   Linux interface, `virtio` NIC via VFIO) and a number of rx/tx **queue pairs**;
//! - **lcores**: polling threads pinned to CPUs, each owning the rx and tx queues it uses; a
//!   queue is owned by exactly one lcore, so the data path needs no locks;
//! - the **forwarding map**: for each ingress port, the egress port and the frame rewrite.
//!
//! Lcores either run to completion (`rtc`: receive, forward, transmit on one core) or form a
//! pipeline (`rx` → `worker` → `tx` lcores connected by SPSC rings). Optional `[generator]` and
//! `[sink]` sections attach the built-in traffic generator and sink to ports of their own.
//!
//! Reading a config has two steps: the text is parsed into private serde structs (TOML syntax,
//! unknown keys, value types), then validated into the public types of this crate ([`Config`],
//! [`Port`], [`Lcore`], [`QueueRef`], …). Names become indices ([`PortId`], [`MempoolId`]),
//! strings become typed addresses ([`MacAddr`], [`PciAddr`]), defaults are filled in. A
//! [`Config`] can only be obtained by [`Config::from_file`], [`Config::from_str_named`] or
//! [`Config::builtin_default`], so code that holds one can rely on every rule below.
//!
//! # Errors
//!
//! Every rejection is a [`ConfigError`] that names the file, the key path and the bad value:
//!
//! ```text
//! fwd.toml: lcores[2].rx: port0/q3 is already polled by lcore 1
//! fwd.toml: ports[0].rx_descriptors: 1000 is not a power of two (allowed: powers of two in 64..=32768)
//! fwd.toml: ports[1].queues: invalid type: string "2", expected u64 (line 14, column 10)
//! fwd.toml: ports[0].pci: unknown field `pci`, expected one of `name`, `peer`, `queues`, `rx_descriptors`, `tx_descriptors`, `mempool`, `mac` for driver = "ring" (line 11, column 1)
//! fwd.toml: line 3, column 9: TOML syntax error: string values must be quoted, expected literal string
//! ```
//!
//! In a key path, `[i]` is the 0-based position of an entry in its array (`lcores[2]` is the
//! third `[[lcores]]`). In messages, "lcore N" is the lcore whose `core = N` (cores are unique,
//! so this names one lcore). Only the first problem is reported.
//!
//! # Schema
//!
//! A complete file, with every key; the comments give each key's rules and default:
//!
//! ```
//! let text = r#"
//! burst = 32                  # rx/tx burst of rtc lcores, 1..=256; default 32
//!
//! [[mempools]]
//! name = "pkt"                # unique; letters, digits, '_', '-', '.'
//! buffers = 8191              # 1..=2^32-2; must cover the rx rings of its af_xdp and
//!                             ## virtio ports (queues x rx_descriptors, summed)
//! buffer_size = 2048          # data room in bytes, 64..=16384 (9000 B jumbo frames fit);
//!                             ## the pool adds headroom
//! cache_size = 256            # per-lcore cache, 0..=512 and <= buffers / 2;
//!                             ## default min(256, buffers / 2)
//! hugepages = "2M"            # "2M" (default) | "1G" | "none" (4 KiB pages)
//!
//! [[ports]]
//! name = "port0"              # unique; same characters as mempool names (no '/')
//! driver = "virtio"           # "ring" | "af_xdp" | "virtio"
//! pci = "0000:00:10.0"        # virtio only, required; domain optional ("00:10.0")
//! queues = 2                  # rx/tx queue pairs, 1..= 16 (ring, virtio) or 64 (af_xdp);
//!                             ## default 1
//! rx_descriptors = 1024       # power of two, 64..=32768; default 1024
//! tx_descriptors = 1024       # same
//! mempool = "pkt"             # required when the file has more than one mempool
//! mac = "02:00:00:00:00:01"   # optional unicast override of the device's MAC
//!
//! [[ports]]
//! name = "port1"
//! driver = "af_xdp"
//! interface = "veth-a"        # af_xdp only, required; a Linux interface name
//! xdp_mode = "auto"           # af_xdp only: "copy" | "zero-copy" | "auto" (default)
//! queues = 2
//!
//! [[ports]]
//! name = "gen0"
//! driver = "ring"
//! peer = "loop0"              # ring only, required; peers name each other and have the
//!                             ## same number of queues
//! [[ports]]
//! name = "loop0"
//! driver = "ring"
//! peer = "gen0"
//!
//! [[lcores]]
//! core = 1                    # CPU id; unique among lcores; not the generator's or sink's
//! role = "rtc"                # "rtc" | "rx" | "worker" | "tx"
//! rx = ["port0/q0", "port1/q0"]  # "<port>/q<index>"; each rx queue polled by one lcore
//! tx = ["port1/q0", "port0/q0"]  # each tx queue used by one lcore; rtc: optional, must cover
//!                             ## the destinations of the rx ports and nothing else; when
//!                             ## absent, the rx queue's index on each rx port's destination
//! tx_policy = "drop"          # "drop" (default): a burst its tx queue (or ring) refuses is
//!                             ## held, and dropped after 100 µs without progress;
//!                             ## "lossless": held as long as it takes (back-pressure only)
//! [[lcores]]
//! core = 2
//! role = "rtc"
//! rx = ["port0/q1", "port1/q1", "loop0/q0"]   # tx: port1/q1, port0/q1, loop0/q0
//!
//! [[forward]]                 # one rule per ingress port; the ingress port must be polled
//! from = "port0"
//! to = "port1"
//! mode = "io"                 # "io" | "mac-swap" | "l2"
//!
//! [[forward]]
//! from = "port1"
//! to = "port0"
//! mode = "l2"
//! dst_mac = "02:00:00:00:00:99"   # l2 only, required
//! src_mac = "02:00:00:00:00:01"   # l2 only, optional; default: the egress port's MAC
//!
//! [[forward]]
//! from = "loop0"
//! to = "loop0"                # to itself: only in "mac-swap" or "l2" mode (a reflector)
//! mode = "mac-swap"
//!
//! [generator]                 # optional built-in generator; owns its port (no lcore or
//! port = "gen0"               # rule may use it) and transmits on queue 0
//! core = 0                    # may equal sink.core, not an lcore's core
//! frame_size = 64             # bytes with FCS, 64..=buffer_size + 4; default 64
//! rate_pps = 0                # frames per second, 0 (default) = as fast as possible
//! flows = 1                   # distinct UDP flows, 1..=65536; default 1
//!
//! [sink]                      # optional built-in sink; owns its port (may be the
//! port = "gen0"               # generator's) and receives on queue 0
//! core = 0
//!
//! [stats]
//! interval_ms = 1000          # counter print interval; 0 = off; default 1000
//!
//! [telemetry]                 # optional
//! prometheus = "127.0.0.1:9464"  # serve Prometheus metrics at http://ADDR/metrics
//! "#;
//! let config = sluice_config::Config::from_str_named(text, "fwd.toml")?;
//! assert_eq!(config.ports().len(), 4);
//! assert_eq!(config.lcores()[1].tx.len(), 3);
//! # Ok::<(), sluice_config::ConfigError>(())
//! ```
//!
//! A pipeline replaces rtc lcores by stages, and then needs a `[pipeline]` section:
//!
//! ```toml
//! [[lcores]]
//! core = 1
//! role = "rx"                 # polls rx queues; no tx
//! rx = ["in0/q0"]
//! [[lcores]]
//! core = 2
//! role = "worker"             # no rx, no tx: applies the forwarding rules
//! [[lcores]]
//! core = 3
//! role = "tx"                 # sends on tx queues; no rx; must cover every destination
//! tx = ["out0/q0"]            # of the ports the rx lcores poll
//!
//! [pipeline]                  # required exactly when some lcore is rx, worker or tx,
//! ring_size = 1024            # and then rx, worker and tx lcores must all exist.
//! burst = 32                  # ring_size: packets per SPSC ring, power of two in
//!                             # 64..=65536, default 1024; burst: 1..=ring_size, <= 256
//! ```
//!
//! Every rx lcore hands batches to every worker, and every worker to every tx lcore, over one
//! SPSC ring per pair.
//!
//! Also decided, and checked:
//!
//! - Unpolled rx queues are allowed (a port may have more queues than lcores poll); frames the
//!   device steers there are not received.
//! - A forwarding rule from a port to itself is allowed in `mac-swap` and `l2` modes only: in
//!   `io` mode it would echo frames unchanged to their sender.
//! - Names and addresses are unique: port and mempool names, an af_xdp `interface`, a virtio
//!   `pci` address.
//! - Keys that do not belong to a port's driver (`pci` on a ring port) are unknown keys of
//!   that driver's `[[ports]]` table; keys that do not belong to a rule's mode (`dst_mac` in io
//!   mode) are rejected too.
//! - Core ids are not checked against the machine by validation: the app calls
//!   [`Config::check_cores`] with the CPUs it may run on before it pins threads, and the
//!   error names the key.
//! - Configs that are valid key by key but cannot work are rejected too, naming the key:
//!   frames that would loop forever through ring peers (`forward[i].to`), a sink on a ring
//!   port whose peer nothing transmits on (`sink.port`), a rule sending to the ring peer of the
//!   generator's port, which only transmits, or an lcore polling the ring peer of the sink's
//!   port, which only receives; sizes a driver would refuse at start-up (an `af_xdp` port's
//!   `buffer_size` over 4096 − 256).
//! - [`Config::from_file`] reads at most [`MAX_CONFIG_BYTES`]; a longer file (or
//!   `/dev/zero`) is an error, not an exhausted memory.
//!
//! The examples in `config/examples/` are tested to validate; `loopback.toml` is
//! [`LOOPBACK_EXAMPLE`].
//!
//! # Usage
//!
//! ```
//! use sluice_config::{Config, PortDriver};
//!
//! let config = Config::builtin_default();
//! let lcore = &config.lcores()[0];
//! let rx = lcore.rx[0];
//! assert_eq!(config.queue_name(rx), "fwd0/q0");
//! let rule = config.forward_from(rx.port).expect("fwd0 has a rule");
//! assert_eq!(config.port(rule.to).name, "fwd1");
//! assert!(matches!(config.port(rule.to).driver, PortDriver::Ring { .. }));
//! ```
#![forbid(unsafe_code)]

mod addr;
mod cores;
mod error;
mod model;
mod raw;
mod render;
mod validate;

use std::io::Read;
use std::path::Path;

pub use addr::{MacAddr, PciAddr};
pub use error::ConfigError;
pub use model::{
    Config, ForwardMode, ForwardRule, Generator, Lcore, LcoreRole, Mempool, MempoolId, PageSize,
    Pipeline, Port, PortDriver, PortId, QueueRef, Sink, TxPolicy, XdpMode,
};

/// The text of `config/examples/loopback.toml`, what `sluice-fwd` runs with no `--config`:
/// in-memory ports, the built-in generator and sink on core 0, one forwarding lcore on core 1.
pub const LOOPBACK_EXAMPLE: &str = include_str!("../examples/loopback.toml");

/// File name reported in errors about [`LOOPBACK_EXAMPLE`].
const LOOPBACK_NAME: &str = "config/examples/loopback.toml";

/// The largest config file [`Config::from_file`] reads: 1 MiB, far beyond any real config.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Reads and validates the config file at `path`. Errors name the path as given.
    ///
    /// Reads at most [`MAX_CONFIG_BYTES`]: a longer file, or one that never ends
    /// (`/dev/zero`), is [`ConfigError::TooLarge`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
            .map_err(io)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                limit: MAX_CONFIG_BYTES,
            });
        }
        Config::from_str_named(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `name` stands for the file in error messages.
    pub fn from_str_named(text: &str, name: &str) -> Result<Config, ConfigError> {
        let raw = raw::parse(text).map_err(|e| ConfigError::from_parse(name, text, e))?;
        validate::validate(name, raw)
    }

    /// The built-in loopback configuration ([`LOOPBACK_EXAMPLE`]).
    pub fn builtin_default() -> Config {
        Config::from_str_named(LOOPBACK_EXAMPLE, LOOPBACK_NAME)
            .expect("the loopback example validates: tests/examples.rs checks it")
    }
}
