//! The forwarding map and the built-in generator and sink, which own their ports.

use super::*;

impl Validator<'_> {
    pub(super) fn port_ref(
        &self,
        key: impl Display,
        name: &str,
        names: &Names<'_>,
    ) -> Result<PortId> {
        names.find(name).ok_or_else(|| {
            self.err(
                key,
                format!("{name:?} is not a port (ports: {})", names.list()),
            )
        })
    }

    pub(super) fn generator(
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

    pub(super) fn sink(&self, s: &RawSink, names: &Names<'_>) -> Result<Sink> {
        Ok(Sink {
            port: self.port_ref("sink.port", &s.port, names)?,
            core: self.core("sink.core", s.core)?,
        })
    }

    pub(super) fn forward(
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
                        .map_err(|e| self.err(format_args!("{key}.dst_mac"), e))?;
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

    /// A rule whose ingress port no lcore polls would never apply: most likely a typo.
    pub(super) fn forward_sources_polled(
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
