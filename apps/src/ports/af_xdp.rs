//! AF_XDP ports from a configuration.
//!
//! An AF_XDP port's buffers are UMEM chunks, so a mempool that an `af_xdp` port names is
//! made by [`open_pools`](super::open_pools) as a UMEM pool ([`Umem::new_pool`]: every
//! buffer exactly one chunk) and the ports wrap it with [`Umem::from_pool`]. Ports that name
//! the same mempool share one UMEM (`XDP_SHARED_UMEM`): forwarding between them moves chunks
//! and copies nothing in user space, and the app's pool accounting (every pool full again
//! at the end) covers the AF_XDP buffers. The pool has at least the chunks its ports' rings
//! need ([`AfXdpConfig::min_chunks`], summed), more if the mempool asks for more; its chunk
//! is 2048 bytes when `buffer_size` fits in 2048 − 256 (the kernel's headroom), else 4096.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_config::{Config, Port, PortDriver, XdpMode};
use sluice_mempool::{PktPool, PktPoolConfig};
use sluice_pmd::net::any::AnyPort;
use sluice_pmd::soft::af_xdp::{self, AfXdpConfig, AfXdpPort, Umem, XDP_PACKET_HEADROOM};

use crate::error::AppError;

/// The UMEMs made so far, by mempool index.
#[derive(Default)]
pub(super) struct Umems(HashMap<usize, Arc<Umem>>);

fn port_config(index: usize, port: &Port, interface: &str, mode: XdpMode) -> AfXdpConfig {
    AfXdpConfig {
        interface: interface.to_string(),
        queues: port.queues,
        rx_descs: u32::from(port.rx_descriptors),
        tx_descs: u32::from(port.tx_descriptors),
        mode: match mode {
            XdpMode::Copy => af_xdp::XdpMode::Copy,
            XdpMode::ZeroCopy => af_xdp::XdpMode::ZeroCopy,
            XdpMode::Auto => af_xdp::XdpMode::Auto,
        },
        chunk: 2048,
        port_id: index as u16,
    }
}

/// The UMEM shape of mempool `id` — chunk size and the chunks its `af_xdp` ports need —
/// or `None` when no `af_xdp` port uses it.
fn umem_shape(config: &Config, id: usize) -> Option<Result<(u32, u32), AppError>> {
    let users: Vec<(usize, &Port, u32)> = config
        .ports()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.mempool.index() == id)
        .filter_map(|(i, p)| match &p.driver {
            PortDriver::AfXdp { interface, mode } => {
                Some((i, p, port_config(i, p, interface, *mode).min_chunks()))
            }
            _ => None,
        })
        .collect();
    let (_, first, _) = users.first()?;
    let m = &config.mempools()[id];
    let room = usize::from(m.buffer_size) + XDP_PACKET_HEADROOM;
    let chunk = match room {
        ..=2048 => 2048,
        2049..=4096 => 4096,
        _ => {
            return Some(Err(AppError::Port {
                port: first.name.clone(),
                source: sluice_pmd::Error::InvalidConfig {
                    port: first.name.clone(),
                    what: "buffer_size of an af_xdp port's mempool (at most 4096 - 256)",
                    value: m.buffer_size.to_string(),
                },
            }));
        }
    };
    Some(Ok((chunk, users.iter().map(|u| u.2).sum())))
}

/// Mempool `id` as a UMEM pool when `af_xdp` ports use it (`cfg` as the configuration
/// says, its count raised to what the ports' rings need), `None` otherwise.
pub(super) fn umem_pool(
    config: &Config,
    id: usize,
    cfg: &PktPoolConfig,
) -> Option<Result<PktPool, AppError>> {
    let (chunk, need) = match umem_shape(config, id)? {
        Ok(shape) => shape,
        Err(e) => return Some(Err(e)),
    };
    let cfg = PktPoolConfig {
        count: cfg.count.max(need),
        ..cfg.clone()
    };
    Some(Umem::new_pool(&cfg, chunk).map_err(|e| match e {
        sluice_pmd::Error::Mempool(source) => AppError::Mempool {
            pool: cfg.name.clone(),
            source,
        },
        source => AppError::Port {
            port: cfg.name.clone(),
            source,
        },
    }))
}

impl Umems {
    /// The UMEM over `port`'s mempool, made on first use.
    fn for_port(
        &mut self,
        config: &Config,
        pools: &[PktPool],
        port: &Port,
    ) -> Result<Arc<Umem>, AppError> {
        let id = port.mempool.index();
        if let Some(u) = self.0.get(&id) {
            return Ok(u.clone());
        }
        let err = |source| AppError::Port {
            port: port.name.clone(),
            source,
        };
        let (chunk, _) = umem_shape(config, id).unwrap_or(Ok((2048, 0)))?;
        let pool = pools.get(id).cloned().ok_or_else(|| {
            AppError::Usage(format!("port {}: its mempool was not opened", port.name))
        })?;
        let umem = Umem::from_pool(pool, chunk).map_err(err)?;
        self.0.insert(id, umem.clone());
        Ok(umem)
    }
}

/// Opens AF_XDP port `index` of the configuration on `interface`.
pub(super) fn open(
    config: &Config,
    pools: &[PktPool],
    umems: &mut Umems,
    index: usize,
    port: &Port,
    interface: &str,
    mode: XdpMode,
) -> Result<AnyPort, AppError> {
    let umem = umems.for_port(config, pools, port)?;
    let cfg = AfXdpConfig {
        chunk: umem.chunk(),
        ..port_config(index, port, interface, mode)
    };
    AfXdpPort::open(&port.name, &cfg, &umem)
        .map(AnyPort::from)
        .map_err(|source| AppError::Port {
            port: port.name.clone(),
            source,
        })
}
