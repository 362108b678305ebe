//! Lcores: cores, queue ownership (each rx and tx queue has one lcore), run-to-completion tx
//! defaults, and the pipeline stages.

use super::*;

impl Validator<'_> {
    pub(super) fn queue_ref(
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

    pub(super) fn lcores(
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
                tx_policy: l.tx_policy.unwrap_or_default(),
            });
        }
        Ok(lcores)
    }

    /// A run-to-completion lcore's tx queues: as listed, which must cover every port its rx
    /// ports forward to and nothing else; or, when `tx` is absent, the rx queue's index on
    /// each rx port's destination.
    pub(super) fn rtc_tx(
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
    pub(super) fn helper_cores(&self, owned: &Owned, lcores: &[Lcore]) -> Result<()> {
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

    pub(super) fn pipeline(
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
}
