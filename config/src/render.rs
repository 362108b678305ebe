//! [`Config`] → TOML text, every default spelled out. Reading the text back yields an equal
//! `Config` (the property tests check this), so an app can print the configuration it runs.

use crate::model::{Config, ForwardMode, Port, PortDriver};
use crate::raw::RawTelemetry;
use crate::raw::{
    AfXdpPort, RawConfig, RawForward, RawGenerator, RawLcore, RawMempool, RawMode, RawPipeline,
    RawPort, RawSink, RawStats, RingPort, VhostUserPort, VirtioPort, VirtioUserPort,
};

impl Config {
    /// The configuration as TOML, with every default written out and every run-to-completion
    /// lcore's `tx` list explicit. [`Config::from_str_named`] reads it back into an equal
    /// `Config`.
    pub fn to_toml(&self) -> String {
        let raw = self.to_raw();
        toml::to_string(&raw)
            .expect("the raw structs hold only strings, integers, enums and lists, all of which TOML can represent")
    }

    fn to_raw(&self) -> RawConfig {
        let port_name = |id: crate::PortId| self.port(id).name.clone();
        let queue = |q: &crate::QueueRef| self.queue_name(*q);
        RawConfig {
            burst: Some(self.burst.into()),
            mempools: self
                .mempools
                .iter()
                .map(|m| RawMempool {
                    name: m.name.clone(),
                    buffers: m.buffers.into(),
                    buffer_size: m.buffer_size.into(),
                    cache_size: Some(m.cache_size.into()),
                    hugepages: Some(m.hugepages),
                })
                .collect(),
            ports: self.ports.iter().map(|p| self.raw_port(p)).collect(),
            lcores: self
                .lcores
                .iter()
                .map(|l| RawLcore {
                    core: l.core.into(),
                    role: l.role,
                    rx: l.rx.iter().map(queue).collect(),
                    tx: (!l.tx.is_empty()).then(|| l.tx.iter().map(queue).collect()),
                    tx_policy: Some(l.tx_policy),
                })
                .collect(),
            forward: self
                .forward
                .iter()
                .map(|r| {
                    let (mode, dst_mac, src_mac) = match r.mode {
                        ForwardMode::Io => (RawMode::Io, None, None),
                        ForwardMode::MacSwap => (RawMode::MacSwap, None, None),
                        ForwardMode::L2 { dst, src } => (
                            RawMode::L2,
                            Some(dst.to_string()),
                            src.map(|s| s.to_string()),
                        ),
                    };
                    RawForward {
                        from: port_name(r.from),
                        to: port_name(r.to),
                        mode,
                        dst_mac,
                        src_mac,
                    }
                })
                .collect(),
            pipeline: self.pipeline.map(|p| RawPipeline {
                ring_size: Some(p.ring_size.into()),
                burst: Some(p.burst.into()),
            }),
            stats: Some(RawStats {
                interval_ms: Some(self.stats_interval.map_or(0, |d| d.as_millis() as u64)),
            }),
            generator: self.generator.map(|g| RawGenerator {
                port: port_name(g.port),
                core: g.core.into(),
                frame_size: Some(g.frame_size.into()),
                rate_pps: Some(g.rate_pps.map_or(0, |r| r.get())),
                flows: Some(g.flows.into()),
            }),
            sink: self.sink.map(|s| RawSink {
                port: port_name(s.port),
                core: s.core.into(),
            }),
            telemetry: self.prometheus.map(|a| RawTelemetry {
                prometheus: Some(a.to_string()),
            }),
        }
    }
    fn raw_port(&self, p: &Port) -> RawPort {
        let name = p.name.clone();
        let queues = Some(p.queues.into());
        let rx_descriptors = Some(p.rx_descriptors.into());
        let tx_descriptors = Some(p.tx_descriptors.into());
        let mempool = Some(self.mempool(p.mempool).name.clone());
        let mac = p.mac.map(|m| m.to_string());
        match &p.driver {
            PortDriver::Ring { peer } => RawPort::Ring(RingPort {
                name,
                peer: Some(self.port(*peer).name.clone()),
                queues,
                rx_descriptors,
                tx_descriptors,
                mempool,
                mac,
            }),
            PortDriver::AfXdp { interface, mode } => RawPort::AfXdp(AfXdpPort {
                name,
                interface: Some(interface.clone()),
                xdp_mode: Some(*mode),
                queues,
                rx_descriptors,
                tx_descriptors,
                mempool,
                mac,
            }),
            PortDriver::Virtio { pci } => RawPort::Virtio(VirtioPort {
                name,
                pci: Some(pci.to_string()),
                queues,
                rx_descriptors,
                tx_descriptors,
                mempool,
                mac,
            }),
            PortDriver::VirtioUser { path, packed } => RawPort::VirtioUser(VirtioUserPort {
                name,
                path: Some(path.display().to_string()),
                packed: (!packed).then_some(false),
                queues,
                rx_descriptors,
                tx_descriptors,
                mempool,
                mac,
            }),
            PortDriver::VhostUser { path } => RawPort::VhostUser(VhostUserPort {
                name,
                path: Some(path.display().to_string()),
                queues,
                mempool,
                mac,
            }),
        }
    }
}
