//! Mempools and ports: names, drivers and their addresses, queue counts, ring sizes, and
//! whether each pool can fill the rx rings that draw from it.

use super::*;

impl Validator<'_> {
    pub(super) fn mempool(
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
        // u32::MAX is the pools' end-of-list marker: one less is the most a pool holds.
        let max_buffers = u64::from(u32::MAX - 1);
        let buffers = self.range(format_args!("{key}.buffers"), m.buffers, 1, max_buffers)?;
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

    pub(super) fn ports(&self, raw: &[RawPort], mempools: &[Mempool]) -> Result<Vec<Port>> {
        if raw.is_empty() {
            return Err(self.err("ports", "no [[ports]]: a config needs at least one port"));
        }
        for (i, p) in raw.iter().enumerate() {
            let name = p.common().name;
            self.name(format_args!("ports[{i}].name"), name)?;
            if let Some(j) = raw[..i].iter().position(|e| e.common().name == name) {
                return Err(self.err(
                    format_args!("ports[{i}].name"),
                    format!("{name:?} is already the name of ports[{j}]"),
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
                PortDriver::VirtioUser { path, .. } => {
                    // A vhost-user socket serves one frontend.
                    let dup = ports[..i].iter().position(
                        |e| matches!(&e.driver, PortDriver::VirtioUser { path: x, .. } if x == path),
                    );
                    if let Some(j) = dup {
                        return Err(self.err(
                            format_args!("ports[{i}].path"),
                            format!("{} is already used by {}", path.display(), ports[j].name),
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

    pub(super) fn port(
        &self,
        i: usize,
        p: &RawPort,
        all: &[RawPort],
        mempools: &[Mempool],
    ) -> Result<Port> {
        let key = format!("ports[{i}]");
        let driver = match p {
            RawPort::Ring(ring) => self.ring(&key, i, ring, all)?,
            RawPort::AfXdp(xdp) => self.af_xdp(&key, xdp)?,
            RawPort::Virtio(virtio) => self.virtio(&key, virtio)?,
            RawPort::VirtioUser(user) => self.virtio_user(&key, user)?,
        };
        let c = p.common();
        let limit = driver_max_queues(&driver);
        let queues = c.queues.unwrap_or(1);
        if queues == 0 {
            return Err(self.err(
                format_args!("{key}.queues"),
                "0 queues: a port needs at least one queue pair",
            ));
        }
        if queues > u64::from(limit) {
            return Err(self.err(
                format_args!("{key}.queues"),
                format!(
                    "{queues} is over the {} driver's limit of {limit} queues",
                    p.driver().name()
                ),
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
        let rx_descriptors = descriptors("rx_descriptors", c.rx_descriptors)?;
        let tx_descriptors = descriptors("tx_descriptors", c.tx_descriptors)?;
        let mempool = self.port_mempool(&key, c.mempool, mempools)?;
        let mac = c
            .mac
            .map(|m| self.unicast_mac(format_args!("{key}.mac"), m))
            .transpose()?;
        Ok(Port {
            name: c.name.to_owned(),
            driver,
            queues: queues as u16,
            rx_descriptors,
            tx_descriptors,
            mempool,
            mac,
        })
    }

    /// A missing key that its driver requires (the struct has it as an `Option` so that this
    /// message can give an example).
    fn missing(&self, key: &str, driver: Driver, field: &str, example: &str) -> ConfigError {
        let driver = driver.name();
        self.err(
            format_args!("{key}.{field}"),
            format!("missing: {driver} ports need {field}, e.g. {field} = {example}"),
        )
    }

    fn ring(&self, key: &str, i: usize, p: &RingPort, all: &[RawPort]) -> Result<PortDriver> {
        let peer = p
            .peer
            .as_deref()
            .ok_or_else(|| self.missing(key, Driver::Ring, "peer", "\"port1\""))?;
        let j = all
            .iter()
            .position(|e| e.common().name == peer)
            .ok_or_else(|| {
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
        Ok(PortDriver::Ring { peer: PortId(j) })
    }

    fn af_xdp(&self, key: &str, p: &AfXdpPort) -> Result<PortDriver> {
        let interface = p
            .interface
            .clone()
            .ok_or_else(|| self.missing(key, Driver::AfXdp, "interface", "\"veth-a\""))?;
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
        Ok(PortDriver::AfXdp {
            interface,
            mode: p.xdp_mode.unwrap_or(XdpMode::Auto),
        })
    }

    fn virtio(&self, key: &str, p: &VirtioPort) -> Result<PortDriver> {
        let pci = p
            .pci
            .as_deref()
            .ok_or_else(|| self.missing(key, Driver::Virtio, "pci", "\"0000:00:10.0\""))?;
        let pci: PciAddr = pci
            .parse()
            .map_err(|e| self.err(format_args!("{key}.pci"), e))?;
        Ok(PortDriver::Virtio { pci })
    }

    fn virtio_user(&self, key: &str, p: &VirtioUserPort) -> Result<PortDriver> {
        let path = p.path.as_deref().ok_or_else(|| {
            self.missing(
                key,
                Driver::VirtioUser,
                "path",
                "\"/run/sluice/vhost-net0.sock\"",
            )
        })?;
        // A unix socket address holds at most 107 path bytes (`sun_path`, unix(7)).
        if path.is_empty() || path.len() > MAX_SOCKET_PATH || path.contains('\0') {
            return Err(self.err(
                format_args!("{key}.path"),
                format!(
                    "{path:?} is not a unix socket path (1 to {MAX_SOCKET_PATH} bytes, no NUL)"
                ),
            ));
        }
        Ok(PortDriver::VirtioUser {
            path: path.into(),
            packed: p.packed.unwrap_or(true),
        })
    }

    fn port_mempool(
        &self,
        key: &str,
        name: Option<&str>,
        mempools: &[Mempool],
    ) -> Result<MempoolId> {
        match name {
            Some(name) => mempools
                .iter()
                .position(|m| m.name == name)
                .map(MempoolId)
                .ok_or_else(|| {
                    let known: Vec<&str> = mempools.iter().map(|m| m.name.as_str()).collect();
                    self.err(
                        format_args!("{key}.mempool"),
                        format!("{name:?} is not a mempool (mempools: {})", known.join(", ")),
                    )
                }),
            None if mempools.len() == 1 => Ok(MempoolId(0)),
            None => Err(self.err(
                format_args!("{key}.mempool"),
                format!(
                    "missing: the file has {} mempools, so each port must name one",
                    mempools.len()
                ),
            )),
        }
    }

    pub(super) fn unicast_mac(&self, key: impl Display + Copy, text: &str) -> Result<MacAddr> {
        let mac: MacAddr = text.parse().map_err(|e| self.err(key, e))?;
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
    pub(super) fn pool_sizes(&self, mempools: &[Mempool], ports: &[Port]) -> Result<()> {
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
}
