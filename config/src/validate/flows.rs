//! Where frames go, across ports: configs that are valid key by key but cannot work as a
//! whole. A frame sent on a ring port arrives at its peer, so forwarding rules and ring pairs
//! form paths; these checks follow them.
//!
//! - a path from a traffic source (the generator's ring peer, or a device port, which
//!   receives from outside) that comes back to a port it passed: frames would circulate
//!   forever;
//! - a sink on a ring port whose peer nothing transmits on: the sink would count nothing;
//! - a frame sent to the generator's port, which only transmits (unless the sink shares it),
//!   or an lcore polling the peer of the sink's port, which only receives.

use super::*;

/// Where a frame sent on `port` is received: its ring peer, or `None` for a device port (the
/// frame leaves the machine).
fn arrives_at(names: &Names<'_>, port: PortId) -> Option<PortId> {
    match names.port(port).driver {
        PortDriver::Ring { peer } => Some(peer),
        _ => None,
    }
}

impl Validator<'_> {
    /// Follows the rules from every traffic source; a path that returns to a port it passed
    /// is a loop, reported at the rule that closes it.
    pub(super) fn forward_loops(
        &self,
        forward: &[ForwardRule],
        names: &Names<'_>,
        owned: &Owned,
    ) -> Result<()> {
        let generator_peer = owned
            .generator
            .and_then(|g| arrives_at(names, g.port))
            .into_iter();
        let devices = (0..names.0.len())
            .map(PortId)
            .filter(|&p| arrives_at(names, p).is_none());
        for source in generator_peer.chain(devices) {
            let mut path = vec![source];
            let mut at = source;
            while let Some(i) = forward.iter().position(|r| r.from == at) {
                let Some(next) = arrives_at(names, forward[i].to) else {
                    break; // out of a device: no longer ours
                };
                if path.contains(&next) {
                    path.push(next);
                    return Err(self.loop_error(i, forward, &path, names));
                }
                path.push(next);
                at = next;
            }
        }
        Ok(())
    }

    fn loop_error(
        &self,
        i: usize,
        forward: &[ForwardRule],
        path: &[PortId],
        names: &Names<'_>,
    ) -> ConfigError {
        let hops: Vec<String> = path
            .windows(2)
            .map(|w| {
                let rule = forward.iter().find(|r| r.from == w[0]);
                let to = rule.map_or(w[1], |r| r.to);
                format!(
                    "{} -> {} ==ring==> {}",
                    names.name(w[0]),
                    names.name(to),
                    names.name(w[1])
                )
            })
            .collect();
        self.err(
            format_args!("forward[{i}].to"),
            format!(
                "frames would loop forever through ring peers ({}); send them to a port \
                 that leaves the loop",
                hops.join(", ")
            ),
        )
    }

    /// A sink on a ring port receives what its peer transmits: the peer must be the
    /// generator's port or the destination of a rule.
    pub(super) fn sink_reachable(
        &self,
        forward: &[ForwardRule],
        names: &Names<'_>,
        owned: &Owned,
    ) -> Result<()> {
        let Some(sink) = owned.sink else {
            return Ok(());
        };
        let Some(peer) = arrives_at(names, sink.port) else {
            return Ok(()); // a device port: traffic comes from outside
        };
        let fed =
            owned.generator.is_some_and(|g| g.port == peer) || forward.iter().any(|r| r.to == peer);
        if fed {
            return Ok(());
        }
        Err(self.err(
            "sink.port",
            format!(
                "no traffic can reach the sink: {} receives what its ring peer {} transmits, \
                 and neither a forwarding rule nor the generator sends on {}",
                names.name(sink.port),
                names.name(peer),
                names.name(peer)
            ),
        ))
    }

    /// Ports whose roles contradict: a rule sending to the ring peer of the generator's port
    /// (the generator only transmits; the frames would never be received), and an lcore
    /// polling the ring peer of the sink's port (the sink only receives, so nothing arrives).
    pub(super) fn role_conflicts(
        &self,
        forward: &[ForwardRule],
        lcores: &[Lcore],
        names: &Names<'_>,
        owned: &Owned,
    ) -> Result<()> {
        if let Some(g) = owned.generator
            && owned.sink.is_none_or(|s| s.port != g.port)
        {
            let into_generator = forward
                .iter()
                .position(|r| arrives_at(names, r.to) == Some(g.port));
            if let Some(i) = into_generator {
                return Err(self.err(
                    format_args!("forward[{i}].to"),
                    format!(
                        "{} is the ring peer of {}, the generator's port, which only \
                         transmits: frames sent there would never be received",
                        names.name(forward[i].to),
                        names.name(g.port)
                    ),
                ));
            }
        }
        if let Some(s) = owned.sink
            && owned.generator.is_none_or(|g| g.port != s.port)
            && let Some(peer) = arrives_at(names, s.port)
        {
            for (i, l) in lcores.iter().enumerate() {
                if let Some(q) = l.rx.iter().find(|q| q.port == peer) {
                    return Err(self.err(
                        format_args!("lcores[{i}].rx"),
                        format!(
                            "{} can receive nothing: {} is the ring peer of {}, the sink's \
                             port, which only receives",
                            names.queue(*q),
                            names.name(peer),
                            names.name(s.port)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
