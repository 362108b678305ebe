//! AF_XDP ports from a configuration.
//!
//! An AF_XDP port's buffers are UMEM chunks, so its receive pool is a [`Umem`] made from the
//! port's `mempool` entry rather than the plain pool [`open_pools`](super::open_pools)
//! builds. Ports that name the same mempool share one UMEM (`XDP_SHARED_UMEM`): forwarding
//! between them moves chunks and copies nothing in user space. The UMEM has at least the
//! chunks its ports' rings need ([`AfXdpConfig::min_chunks`], summed), more if the mempool
//! asks for more; its chunk is 2048 bytes when `buffer_size` fits in 2048 − 256 (the
//! kernel's headroom), else 4096.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_config::{Config, PageSize, Port, PortDriver, XdpMode};
use sluice_mempool::{HugePagePolicy, PktPoolConfig};
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

impl Umems {
    /// The UMEM of `port`'s mempool, made on first use.
    fn for_port(&mut self, config: &Config, port: &Port) -> Result<Arc<Umem>, AppError> {
        let id = port.mempool.index();
        if let Some(u) = self.0.get(&id) {
            return Ok(u.clone());
        }
        let m = config.mempool(port.mempool);
        let err = |source| AppError::Port {
            port: port.name.clone(),
            source,
        };
        let chunk = if usize::from(m.buffer_size) + XDP_PACKET_HEADROOM <= 2048 {
            2048
        } else if usize::from(m.buffer_size) + XDP_PACKET_HEADROOM <= 4096 {
            4096
        } else {
            return Err(err(sluice_pmd::Error::InvalidConfig {
                port: port.name.clone(),
                what: "buffer_size of an af_xdp port's mempool (at most 4096 - 256)",
                value: m.buffer_size.to_string(),
            }));
        };
        // Every AF_XDP port on this mempool posts its rings' worth of chunks.
        let need: u32 = config
            .ports()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.mempool.index() == id)
            .filter_map(|(i, p)| match &p.driver {
                PortDriver::AfXdp { interface, mode } => {
                    Some(port_config(i, p, interface, *mode).min_chunks())
                }
                _ => None,
            })
            .sum();
        let mut cfg = PktPoolConfig::new(m.name.clone(), m.buffers.max(need));
        cfg.cache_size = u32::from(m.cache_size);
        (cfg.page_size, cfg.huge_pages) = match m.hugepages {
            PageSize::Huge2M => (sluice_mempool::PageSize::Size2M, HugePagePolicy::Require),
            PageSize::Huge1G => (sluice_mempool::PageSize::Size1G, HugePagePolicy::Require),
            PageSize::Small4K => (sluice_mempool::PageSize::Size4K, HugePagePolicy::Never),
        };
        let umem = Umem::new(&cfg, chunk).map_err(err)?;
        self.0.insert(id, umem.clone());
        Ok(umem)
    }
}

/// Opens AF_XDP port `index` of the configuration on `interface`.
pub(super) fn open(
    config: &Config,
    umems: &mut Umems,
    index: usize,
    port: &Port,
    interface: &str,
    mode: XdpMode,
) -> Result<AnyPort, AppError> {
    let umem = umems.for_port(config, port)?;
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
