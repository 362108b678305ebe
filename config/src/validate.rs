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
use crate::raw::{
    RawConfig, RawDriver, RawForward, RawGenerator, RawLcore, RawMode, RawPort, RawSink,
};

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
    fn err(&self, key: impl Display, message: impl Display) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// A `FromStr` failure of this crate, placed at `key`.
    fn at(&self, key: impl Display, e: ConfigError) -> ConfigError {
        self.err(key, e)
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

    fn mempool(
        &self,
        i: usize,
        m: &crate::raw::RawMempool,
        earlier: &[crate::raw::RawMempool],
    ) -> Result<Mempool> {
        let key = format!("mempools[{i}]");
        self.name(format_args!("{key}.name"), &m.name)?;
        if let Some(j) = earlier.iter().position(|e| e.name == m.name) {
            return Err(self.err(
                format_args!("{key}.name"),
                format!("{:?} is already the name of mempools[{j}]", m.name),
            ));
        }
        let buffers = self.range(format_args!("{key}.buffers"), m.buffers, 1, u32::MAX.into())?;
        let buffer_size = self.range(
            format_args!("{key}.buffer_size"),
            m.buffer_size,
            MIN_BUFFER,
            MAX_BUFFER,
        )?;
        let cache_size = m.cache_size.unwrap_or(DEFAULT_CACHE.min(buffers / 2));
        if cache_size > MAX_CACHE {
            return Err(self.err(
                format_args!("{key}.cache_size"),
                format!("{cache_size} is over the maximum of {MAX_CACHE}"),
            ));
        }
        if cache_size > buffers / 2 {
            return Err(self.err(
                format_args!("{key}.cache_size"),
                format!(
                    "{cache_size} is over half the pool ({buffers} buffers / 2 = {}): \
                     lcore caches would strand the pool",
                    buffers / 2
                ),
            ));
        }
        Ok(Mempool {
            name: m.name.clone(),
            buffers: buffers as u32,
            buffer_size: buffer_size as u16,
            cache_size: cache_size as u16,
            hugepages: m.hugepages.unwrap_or(PageSize::Huge2M),
        })
    }

    fn ports(&self, raw: &[RawPort], mempools: &[Mempool]) -> Result<Vec<Port>> {
        if raw.is_empty() {
            return Err(self.err("ports", "no [[ports]]: a config needs at least one port"));
        }
        for (i, p) in raw.iter().enumerate() {
            self.name(format_args!("ports[{i}].name"), &p.name)?;
            if let Some(j) = raw[..i].iter().position(|e| e.name == p.name) {
                return Err(self.err(
                    format_args!("ports[{i}].name"),
                    format!("{:?} is already the name of ports[{j}]", p.name),
                ));
            }
        }
        let ports = raw
            .iter()
            .enumerate()
            .map(|(i, p)| self.port(i, p, raw, mempools))
            .collect::<Result<Vec<_>>>()?;
        // Cross-port rules, now that every port is typed.
        for (i, port) in ports.iter().enumerate() {
            match &port.driver {
                PortDriver::Ring { peer } => {
                    let other = &ports[peer.0];
                    match other.driver {
                        PortDriver::Ring { peer: back } if back.0 == i => {}
                        PortDriver::Ring { peer: back } => {
                            return Err(self.err(
                                format_args!("ports[{i}].peer"),
                                format!(
                                    "{}'s peer is {}, not {}: ring peers must name each other",
                                    other.name, ports[back.0].name, port.name
                                ),
                            ));
                        }
                        _ => {
                            return Err(self.err(
                                format_args!("ports[{i}].peer"),
                                format!(
                                    "{} is not a ring port: a ring port's peer must be one",
                                    other.name
                                ),
                            ));
                        }
                    }
                    if other.queues != port.queues {
                        return Err(self.err(
                            format_args!("ports[{i}].queues"),
                            format!(
                                "{} differs from peer {}'s {}: ring peers pair queue i with \
                                 queue i, so their counts must match",
                                port.queues, other.name, other.queues
                            ),
                        ));
                    }
                }
                PortDriver::AfXdp { interface, .. } => {
                    let dup = ports[..i].iter().position(|e| {
                        matches!(&e.driver, PortDriver::AfXdp { interface: x, .. } if x == interface)
                    });
                    if let Some(j) = dup {
                        return Err(self.err(
                            format_args!("ports[{i}].interface"),
                            format!("{interface:?} is already used by {}", ports[j].name),
                        ));
                    }
                }
                PortDriver::Virtio { pci } => {
                    let dup = ports[..i].iter().position(
                        |e| matches!(&e.driver, PortDriver::Virtio { pci: x } if x == pci),
                    );
                    if let Some(j) = dup {
                        return Err(self.err(
                            format_args!("ports[{i}].pci"),
                            format!("{pci} is already used by {}", ports[j].name),
                        ));
                    }
                }
            }
        }
        Ok(ports)
    }

    fn port(&self, i: usize, p: &RawPort, all: &[RawPort], mempools: &[Mempool]) -> Result<Port> {
        let key = format!("ports[{i}]");
        let driver_name = match p.driver {
            RawDriver::Ring => "ring",
            RawDriver::AfXdp => "af_xdp",
            RawDriver::Virtio => "virtio",
        };
        let not_for = |field: &str, present: bool| {
            if present {
                Err(self.err(
                    format_args!("{key}.{field}"),
                    format!("not a setting of {driver_name} ports"),
                ))
            } else {
                Ok(())
            }
        };
        let missing = |field: &str, example: &str| {
            self.err(
                format_args!("{key}.{field}"),
                format!("missing: {driver_name} ports need {field}, e.g. {field} = {example}"),
            )
        };
        let driver = match p.driver {
            RawDriver::Ring => {
                not_for("interface", p.interface.is_some())?;
                not_for("xdp_mode", p.xdp_mode.is_some())?;
                not_for("pci", p.pci.is_some())?;
                let peer = p
                    .peer
                    .as_deref()
                    .ok_or_else(|| missing("peer", "\"port1\""))?;
                let j = all.iter().position(|e| e.name == peer).ok_or_else(|| {
                    self.err(
                        format_args!("{key}.peer"),
                        format!("{peer:?} is not a port (ports: {})", raw_names(all)),
                    )
                })?;
                if j == i {
                    return Err(self.err(
                        format_args!("{key}.peer"),
                        format!("{peer} cannot be its own peer"),
                    ));
                }
                PortDriver::Ring { peer: PortId(j) }
            }
            RawDriver::AfXdp => {
                not_for("peer", p.peer.is_some())?;
                not_for("pci", p.pci.is_some())?;
                let interface = p
                    .interface
                    .clone()
                    .ok_or_else(|| missing("interface", "\"veth-a\""))?;
                let ok = !interface.is_empty()
                    && interface.len() <= MAX_IFNAME
                    && !interface
                        .chars()
                        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(self.err(
                        format_args!("{key}.interface"),
                        format!(
                            "{interface:?} is not a Linux interface name (1 to {MAX_IFNAME} \
                             bytes, no '/', ':' or whitespace)"
                        ),
                    ));
                }
                PortDriver::AfXdp {
                    interface,
                    mode: p.xdp_mode.unwrap_or(XdpMode::Auto),
                }
            }
            RawDriver::Virtio => {
                not_for("peer", p.peer.is_some())?;
                not_for("interface", p.interface.is_some())?;
                not_for("xdp_mode", p.xdp_mode.is_some())?;
                let pci = p
                    .pci
                    .as_deref()
                    .ok_or_else(|| missing("pci", "\"0000:00:10.0\""))?;
                let pci: PciAddr = pci
                    .parse()
                    .map_err(|e| self.at(format_args!("{key}.pci"), e))?;
                PortDriver::Virtio { pci }
            }
        };
        let limit = driver_max_queues(&driver);
        let queues = p.queues.unwrap_or(1);
        if queues == 0 {
            return Err(self.err(
                format_args!("{key}.queues"),
                "0 queues: a port needs at least one queue pair",
            ));
        }
        if queues > u64::from(limit) {
            return Err(self.err(
                format_args!("{key}.queues"),
                format!("{queues} is over the {driver_name} driver's limit of {limit} queues"),
            ));
        }
        let descriptors = |field: &str, value: Option<u64>| {
            self.power_of_two(
                format_args!("{key}.{field}"),
                value.unwrap_or(DEFAULT_DESCRIPTORS),
                Port::MIN_DESCRIPTORS.into(),
                Port::MAX_DESCRIPTORS.into(),
            )
            .map(|v| v as u16)
        };
        let rx_descriptors = descriptors("rx_descriptors", p.rx_descriptors)?;
        let tx_descriptors = descriptors("tx_descriptors", p.tx_descriptors)?;
        let mempool = match &p.mempool {
            Some(name) => mempools
                .iter()
                .position(|m| &m.name == name)
                .map(MempoolId)
                .ok_or_else(|| {
                    let known: Vec<&str> = mempools.iter().map(|m| m.name.as_str()).collect();
                    self.err(
                        format_args!("{key}.mempool"),
                        format!("{name:?} is not a mempool (mempools: {})", known.join(", ")),
                    )
                })?,
            None if mempools.len() == 1 => MempoolId(0),
            None => {
                return Err(self.err(
                    format_args!("{key}.mempool"),
                    format!(
                        "missing: the file has {} mempools, so each port must name one",
                        mempools.len()
                    ),
                ));
            }
        };
        let mac = p
            .mac
            .as_deref()
            .map(|m| self.unicast_mac(format_args!("{key}.mac"), m))
            .transpose()?;
        Ok(Port {
            name: p.name.clone(),
            driver,
            queues: queues as u16,
            rx_descriptors,
            tx_descriptors,
            mempool,
            mac,
        })
    }

    fn unicast_mac(&self, key: impl Display + Copy, text: &str) -> Result<MacAddr> {
        let mac: MacAddr = text.parse().map_err(|e| self.at(key, e))?;
        if mac.is_multicast() || mac.is_zero() {
            return Err(self.err(
                key,
                format!("{mac} is not a unicast address (multicast bit set, or all zero)"),
            ));
        }
        Ok(mac)
    }

    /// A pool must be able to fill the rx rings that drivers post buffers to ahead of
    /// reception (AF_XDP fill ring, virtio rx virtqueue); ring ports only hold what their peer
    /// sent, so they do not count.
    fn pool_sizes(&self, mempools: &[Mempool], ports: &[Port]) -> Result<()> {
        for (i, pool) in mempools.iter().enumerate() {
            let users: Vec<&Port> = ports
                .iter()
                .filter(|p| p.mempool.0 == i && !matches!(p.driver, PortDriver::Ring { .. }))
                .collect();
            let need: u64 = users
                .iter()
                .map(|p| u64::from(p.queues) * u64::from(p.rx_descriptors))
                .sum();
            if need > u64::from(pool.buffers) {
                let parts: Vec<String> = users
                    .iter()
                    .map(|p| format!("{} {}x{}", p.name, p.queues, p.rx_descriptors))
                    .collect();
                return Err(self.err(
                    format_args!("mempools[{i}].buffers"),
                    format!(
                        "{} buffers cannot fill the rx rings of the ports using the pool ({} = {need})",
                        pool.buffers,
                        parts.join(" + ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn port_ref(&self, key: impl Display, name: &str, names: &Names<'_>) -> Result<PortId> {
        names.find(name).ok_or_else(|| {
            self.err(
                key,
                format!("{name:?} is not a port (ports: {})", names.list()),
            )
        })
    }

    fn generator(
        &self,
        g: &RawGenerator,
        names: &Names<'_>,
        mempools: &[Mempool],
    ) -> Result<Generator> {
        let port = self.port_ref("generator.port", &g.port, names)?;
        let buffer = mempools[names.port(port).mempool.0].buffer_size;
        let max_frame = u64::from(buffer) + FCS;
        let frame_size = g.frame_size.unwrap_or(MIN_FRAME);
        if !(MIN_FRAME..=max_frame).contains(&frame_size) {
            return Err(self.err(
                "generator.frame_size",
                format!(
                    "{frame_size} is out of range {MIN_FRAME}..={max_frame} (64 is the minimum \
                     Ethernet frame; the maximum is {}'s buffer_size {buffer} + 4 FCS bytes)",
                    names.name(port)
                ),
            ));
        }
        Ok(Generator {
            port,
            core: self.core("generator.core", g.core)?,
            frame_size: frame_size as u16,
            rate_pps: NonZeroU64::new(g.rate_pps.unwrap_or(0)),
            flows: self.range("generator.flows", g.flows.unwrap_or(1), 1, MAX_FLOWS)? as u32,
        })
    }

    fn sink(&self, s: &RawSink, names: &Names<'_>) -> Result<Sink> {
        Ok(Sink {
            port: self.port_ref("sink.port", &s.port, names)?,
            core: self.core("sink.core", s.core)?,
        })
    }

    fn forward(
        &self,
        raw: &[RawForward],
        names: &Names<'_>,
        owned: &Owned,
    ) -> Result<Vec<ForwardRule>> {
        let mut rules: Vec<ForwardRule> = Vec::with_capacity(raw.len());
        for (i, f) in raw.iter().enumerate() {
            let key = format!("forward[{i}]");
            let from = self.port_ref(format_args!("{key}.from"), &f.from, names)?;
            let to = self.port_ref(format_args!("{key}.to"), &f.to, names)?;
            for (field, port) in [("from", from), ("to", to)] {
                if let Some(owner) = owned.owner_of(port) {
                    return Err(self.err(
                        format_args!("{key}.{field}"),
                        format!("{} belongs to {owner}", names.name(port)),
                    ));
                }
            }
            if let Some(j) = rules.iter().position(|r| r.from == from) {
                return Err(self.err(
                    format_args!("{key}.from"),
                    format!(
                        "{} already has a rule (forward[{j}]): one rule per ingress port",
                        f.from
                    ),
                ));
            }
            let l2_only = |field: &str, present: bool| {
                if present {
                    Err(self.err(
                        format_args!("{key}.{field}"),
                        "only a setting of mode = \"l2\"",
                    ))
                } else {
                    Ok(())
                }
            };
            let mode = match f.mode {
                RawMode::Io => ForwardMode::Io,
                RawMode::MacSwap => ForwardMode::MacSwap,
                RawMode::L2 => {
                    let dst = f.dst_mac.as_deref().ok_or_else(|| {
                        self.err(
                            format_args!("{key}.dst_mac"),
                            "missing: mode = \"l2\" needs dst_mac, e.g. dst_mac = \"02:00:00:00:00:02\"",
                        )
                    })?;
                    let dst: MacAddr = dst
                        .parse()
                        .map_err(|e| self.at(format_args!("{key}.dst_mac"), e))?;
                    let src = f
                        .src_mac
                        .as_deref()
                        .map(|m| self.unicast_mac(format_args!("{key}.src_mac"), m))
                        .transpose()?;
                    ForwardMode::L2 { dst, src }
                }
            };
            if f.mode != RawMode::L2 {
                l2_only("dst_mac", f.dst_mac.is_some())?;
                l2_only("src_mac", f.src_mac.is_some())?;
            }
            if from == to && mode == ForwardMode::Io {
                return Err(self.err(
                    format_args!("{key}.to"),
                    format!(
                        "{} -> {} in io mode would echo frames unchanged to their sender; \
                         use mode = \"mac-swap\" or \"l2\" to reflect traffic",
                        f.from, f.to
                    ),
                ));
            }
            rules.push(ForwardRule { from, to, mode });
        }
        Ok(rules)
    }

    fn queue_ref(
        &self,
        key: &str,
        text: &str,
        names: &Names<'_>,
        owned: &Owned,
    ) -> Result<QueueRef> {
        let syntax = || {
            self.err(
                key,
                format!("{text:?} is not a queue reference: expected \"<port>/q<index>\" like \"port0/q0\""),
            )
        };
        let (port, queue) = text.rsplit_once('/').ok_or_else(syntax)?;
        let digits = queue.strip_prefix('q').ok_or_else(syntax)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let port_id = names.find(port).ok_or_else(|| {
            self.err(
                key,
                format!("{text}: {port:?} is not a port (ports: {})", names.list()),
            )
        })?;
        let queues = names.port(port_id).queues;
        let index = digits
            .parse::<u16>()
            .ok()
            .filter(|q| *q < queues)
            .ok_or_else(|| {
                self.err(
                    key,
                    format!(
                        "{port} has {queues} queue{}; q{digits} does not exist",
                        plural(queues)
                    ),
                )
            })?;
        if let Some(owner) = owned.owner_of(port_id) {
            return Err(self.err(key, format!("{text}: port {port} belongs to {owner}")));
        }
        Ok(QueueRef {
            port: port_id,
            queue: index,
        })
    }

    fn lcores(
        &self,
        raw: &[RawLcore],
        names: &Names<'_>,
        forward: &[ForwardRule],
        owned: &Owned,
    ) -> Result<Vec<Lcore>> {
        let mut lcores: Vec<Lcore> = Vec::with_capacity(raw.len());
        // Queue → core of the lcore that owns it, one map per direction.
        let mut rx_owner: HashMap<QueueRef, u32> = HashMap::new();
        let mut tx_owner: HashMap<QueueRef, u32> = HashMap::new();
        for (i, l) in raw.iter().enumerate() {
            let key = format!("lcores[{i}]");
            let core = self.core(format_args!("{key}.core"), l.core)?;
            if let Some(j) = lcores.iter().position(|e| e.core == core) {
                return Err(self.err(
                    format_args!("{key}.core"),
                    format!("core {core} is already used by lcores[{j}]: one lcore per core"),
                ));
            }
            let rx_key = format!("{key}.rx");
            let tx_key = format!("{key}.tx");
            let mut rx = Vec::with_capacity(l.rx.len());
            for text in &l.rx {
                let q = self.queue_ref(&rx_key, text, names, owned)?;
                if rx.contains(&q) {
                    return Err(self.err(&rx_key, format!("{text} is listed twice")));
                }
                if let Some(other) = rx_owner.get(&q) {
                    return Err(self.err(
                        &rx_key,
                        format!("{} is already polled by lcore {other}", names.queue(q)),
                    ));
                }
                rx.push(q);
            }
            let mut tx = Vec::new();
            for text in l.tx.iter().flatten() {
                let q = self.queue_ref(&tx_key, text, names, owned)?;
                if tx.contains(&q) {
                    return Err(self.err(&tx_key, format!("{text} is listed twice")));
                }
                tx.push(q);
            }
            let role_name = match l.role {
                LcoreRole::RunToCompletion => "rtc",
                LcoreRole::Rx => "rx",
                LcoreRole::Worker => "worker",
                LcoreRole::Tx => "tx",
            };
            let wants_rx = matches!(l.role, LcoreRole::RunToCompletion | LcoreRole::Rx);
            let wants_tx = matches!(l.role, LcoreRole::RunToCompletion | LcoreRole::Tx);
            if wants_rx && rx.is_empty() {
                return Err(self.err(
                    &rx_key,
                    format!("missing or empty: {role_name} lcores poll at least one rx queue"),
                ));
            }
            if !wants_rx && !l.rx.is_empty() {
                return Err(self.err(
                    &rx_key,
                    format!("{role_name} lcores poll no rx queues; remove rx"),
                ));
            }
            if !wants_tx && l.tx.is_some() {
                return Err(self.err(
                    &tx_key,
                    format!("{role_name} lcores send on no tx queues; remove tx"),
                ));
            }
            if l.role == LcoreRole::Tx && tx.is_empty() {
                return Err(self.err(
                    &tx_key,
                    "missing or empty: tx lcores send on at least one tx queue",
                ));
            }
            if wants_rx {
                for q in &rx {
                    if !forward.iter().any(|r| r.from == q.port) {
                        return Err(self.err(
                            &rx_key,
                            format!(
                                "{}: no [[forward]] rule has from = {:?}, so frames received \
                                 there would have nowhere to go",
                                names.queue(*q),
                                names.name(q.port)
                            ),
                        ));
                    }
                }
            }
            if l.role == LcoreRole::RunToCompletion {
                tx = self.rtc_tx(&tx_key, &rx, tx, l.tx.is_some(), names, forward)?;
            }
            for q in &tx {
                if let Some(other) = tx_owner.get(q) {
                    return Err(self.err(
                        &tx_key,
                        format!(
                            "{} is already used for tx by lcore {other}",
                            names.queue(*q)
                        ),
                    ));
                }
            }
            rx_owner.extend(rx.iter().map(|q| (*q, core)));
            tx_owner.extend(tx.iter().map(|q| (*q, core)));
            lcores.push(Lcore {
                core,
                role: l.role,
                rx,
                tx,
            });
        }
        Ok(lcores)
    }

    /// A run-to-completion lcore's tx queues: as listed, which must cover every port its rx
    /// ports forward to and nothing else; or, when `tx` is absent, the rx queue's index on
    /// each rx port's destination.
    fn rtc_tx(
        &self,
        key: &str,
        rx: &[QueueRef],
        listed: Vec<QueueRef>,
        explicit: bool,
        names: &Names<'_>,
        forward: &[ForwardRule],
    ) -> Result<Vec<QueueRef>> {
        let dest = |q: &QueueRef| {
            forward
                .iter()
                .find(|r| r.from == q.port)
                .map(|r| r.to)
                .expect("checked above: every rx port of an rtc lcore has a forwarding rule")
        };
        if explicit {
            for q in rx {
                let to = dest(q);
                if !listed.iter().any(|t| t.port == to) {
                    return Err(self.err(
                        key,
                        format!(
                            "no queue on {}, where rx {} forwards to",
                            names.name(to),
                            names.queue(*q)
                        ),
                    ));
                }
            }
            if let Some(t) = listed
                .iter()
                .find(|t| !rx.iter().any(|q| dest(q) == t.port))
            {
                return Err(self.err(
                    key,
                    format!(
                        "{}: {} is not where any of this lcore's rx queues forward to",
                        names.queue(*t),
                        names.name(t.port)
                    ),
                ));
            }
            return Ok(listed);
        }
        let mut tx = Vec::with_capacity(rx.len());
        for q in rx {
            let to = dest(q);
            let queues = names.port(to).queues;
            if q.queue >= queues {
                return Err(self.err(
                    key,
                    format!(
                        "default tx queue {}/q{} for rx {} does not exist ({} has {queues} \
                         queue{}); list tx explicitly",
                        names.name(to),
                        q.queue,
                        names.queue(*q),
                        names.name(to),
                        plural(queues)
                    ),
                ));
            }
            let t = QueueRef {
                port: to,
                queue: q.queue,
            };
            if !tx.contains(&t) {
                tx.push(t);
            }
        }
        Ok(tx)
    }

    /// The generator and sink may share a core with each other, not with an lcore.
    fn helper_cores(&self, owned: &Owned, lcores: &[Lcore]) -> Result<()> {
        let helpers = [
            ("generator.core", owned.generator.map(|g| g.core)),
            ("sink.core", owned.sink.map(|s| s.core)),
        ];
        for (key, core) in helpers {
            let used = core.and_then(|c| lcores.iter().position(|l| l.core == c).map(|j| (c, j)));
            if let Some((core, j)) = used {
                return Err(self.err(
                    key,
                    format!(
                        "core {core} is already used by lcore {core} (lcores[{j}]); the \
                         generator and sink may share a core only with each other"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn pipeline(
        &self,
        raw: &RawConfig,
        lcores: &[Lcore],
        names: &Names<'_>,
        forward: &[ForwardRule],
    ) -> Result<Option<Pipeline>> {
        let first = |role: LcoreRole| lcores.iter().position(|l| l.role == role);
        let stages = [
            ("rx", first(LcoreRole::Rx)),
            ("worker", first(LcoreRole::Worker)),
            ("tx", first(LcoreRole::Tx)),
        ];
        let Some(used) = stages.iter().find_map(|(_, at)| *at) else {
            if raw.pipeline.is_some() {
                return Err(self.err(
                    "pipeline",
                    "no lcore has role \"rx\", \"worker\" or \"tx\", so [pipeline] has nothing \
                     to configure; remove it",
                ));
            }
            return Ok(None);
        };
        if let Some((name, _)) = stages.iter().find(|(_, at)| at.is_none()) {
            return Err(self.err(
                "lcores",
                format!(
                    "lcores[{used}] is a pipeline stage, but no lcore has role \"{name}\": a \
                     pipeline needs rx, worker and tx lcores"
                ),
            ));
        }
        let Some(p) = &raw.pipeline else {
            return Err(self.err(
                "pipeline",
                format!(
                    "missing: lcores[{used}] is a pipeline stage, which needs a [pipeline] section"
                ),
            ));
        };
        let ring_size = self.power_of_two(
            "pipeline.ring_size",
            p.ring_size.unwrap_or(DEFAULT_PIPELINE_RING),
            MIN_PIPELINE_RING,
            MAX_PIPELINE_RING,
        )?;
        let burst = self.range(
            "pipeline.burst",
            p.burst.unwrap_or(DEFAULT_BURST),
            1,
            MAX_BURST,
        )?;
        if burst > ring_size {
            return Err(self.err(
                "pipeline.burst",
                format!("{burst} is larger than pipeline.ring_size {ring_size}"),
            ));
        }
        // Every destination of a pipeline rx port needs a tx lcore queue on it.
        for (i, l) in lcores
            .iter()
            .enumerate()
            .filter(|(_, l)| l.role == LcoreRole::Rx)
        {
            for q in &l.rx {
                let Some(rule) = forward.iter().find(|r| r.from == q.port) else {
                    continue; // reported by `lcores` already
                };
                let covered = lcores
                    .iter()
                    .filter(|t| t.role == LcoreRole::Tx)
                    .any(|t| t.tx.iter().any(|tq| tq.port == rule.to));
                if !covered {
                    return Err(self.err(
                        format_args!("lcores[{i}].rx"),
                        format!(
                            "{} forwards to {}, but no tx lcore has a queue on {}",
                            names.queue(*q),
                            names.name(rule.to),
                            names.name(rule.to)
                        ),
                    ));
                }
            }
        }
        Ok(Some(Pipeline {
            ring_size: ring_size as u32,
            burst: burst as u16,
        }))
    }

    /// A rule whose ingress port no lcore polls would never apply: most likely a typo.
    fn forward_sources_polled(
        &self,
        forward: &[ForwardRule],
        lcores: &[Lcore],
        names: &Names<'_>,
    ) -> Result<()> {
        for (i, rule) in forward.iter().enumerate() {
            let polled = lcores
                .iter()
                .any(|l| l.rx.iter().any(|q| q.port == rule.from));
            if !polled {
                return Err(self.err(
                    format_args!("forward[{i}].from"),
                    format!(
                        "no lcore polls {}, so this rule would never apply",
                        names.name(rule.from)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn raw_names(ports: &[RawPort]) -> String {
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    names.join(", ")
}

fn plural(n: u16) -> &'static str {
    if n == 1 { "" } else { "s" }
}
