//! Forwarding rules as the data path applies them: the egress port and the frame rewrite,
//! with MAC addresses resolved against the opened ports.

use sluice_config::{Config, ForwardMode, PortId};
use sluice_dataplane::Rewrite;
use sluice_pmd::net::any::AnyPort;
use sluice_pmd::net::{MacAddr, NetPort};

/// The MAC of port `id`: the configuration's override, else the one the port reports.
pub(super) fn mac_of(config: &Config, ports: &[AnyPort], id: PortId) -> MacAddr {
    config
        .port(id)
        .mac
        .map_or(ports[id.index()].info().mac, |m| MacAddr(m.0))
}

/// Where frames received on `from` go and how they are rewritten; `None` without a rule.
pub(super) fn rewrite(
    config: &Config,
    ports: &[AnyPort],
    from: PortId,
) -> Option<(PortId, Rewrite)> {
    let rule = config.forward_from(from)?;
    let rw = match rule.mode {
        ForwardMode::Io => Rewrite::Io,
        ForwardMode::MacSwap => Rewrite::MacSwap,
        ForwardMode::L2 { dst, src } => Rewrite::L2 {
            dst: MacAddr(dst.0),
            src: src.map_or_else(|| mac_of(config, ports, rule.to), |m| MacAddr(m.0)),
        },
    };
    Some((rule.to, rw))
}
