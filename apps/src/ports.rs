//! Mempools and ports from a configuration: the one place where drivers are chosen.

use std::sync::Arc;

use sluice_config::{Config, PageSize, PortDriver};
use sluice_mempool::{HugePagePolicy, IdentityMapper, PktPool, PktPoolConfig};
use sluice_pmd::net::any::AnyPort;
use sluice_pmd::soft::ring_port::{RingPairConfig, ring_pair};

use crate::error::AppError;

mod af_xdp;
mod vhost;
mod virtio;

/// Creates the configuration's mempools, in file order. A pool that asks for hugepages
/// requires them (a clear error names the sysfs knob when there are too few); `"none"` uses
/// 4 KiB pages. A pool that `af_xdp` ports use is cut in UMEM chunks and holds at least
/// what their rings need (`ports/af_xdp.rs`); one that `virtio-user` ports use is in a memfd
/// that their vhost-user backends can map (`ports/virtio.rs`).
pub fn open_pools(config: &Config) -> Result<Vec<PktPool>, AppError> {
    let iommu = virtio::iommu_mode(config)?;
    config
        .mempools()
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let mut cfg = PktPoolConfig::new(m.name.clone(), m.buffers);
            cfg.data_room = usize::from(m.buffer_size);
            cfg.cache_size = u32::from(m.cache_size);
            (cfg.page_size, cfg.huge_pages) = match m.hugepages {
                PageSize::Huge2M => (sluice_mempool::PageSize::Size2M, HugePagePolicy::Require),
                PageSize::Huge1G => (sluice_mempool::PageSize::Size1G, HugePagePolicy::Require),
                PageSize::Small4K => (sluice_mempool::PageSize::Size4K, HugePagePolicy::Never),
            };
            if let Some(umem_pool) = af_xdp::umem_pool(config, id, &cfg) {
                return umem_pool;
            }
            let pool = if virtio::shared_with_a_backend(config, id) {
                PktPool::new_shareable(&cfg)
            } else if virtio::needs_physical_iovas(config, id, iommu) {
                // No IOMMU: the device sees physical addresses (hugepages required).
                PktPool::new(&cfg, Arc::new(sluice_mempool::PagemapMapper))
            } else {
                PktPool::new(&cfg, Arc::new(IdentityMapper))
            };
            pool.map_err(|source| AppError::Mempool {
                pool: m.name.clone(),
                source,
            })
        })
        .collect()
}

/// Opens every port of the configuration, indexed like [`Config::ports`]. Ring ports are
/// built in pairs from `peer`; their port ids (`PktMeta::port`) are their config indices.
/// Drivers not in this build are an error naming the port. `pools` are the configuration's
/// mempools from [`open_pools`]: ring ports need none (they move the sender's buffers),
/// virtio ports take their receive buffers from their `mempool`, and AF_XDP ports from a
/// UMEM made from their `mempool`'s entry (`ports/af_xdp.rs`).
pub fn open_ports(config: &Config, pools: &[PktPool]) -> Result<Vec<AnyPort>, AppError> {
    let ports = config.ports();
    let mut umems = af_xdp::Umems::default();
    let mut vfio = virtio::Vfio::for_config(config)?;
    let mut opened: Vec<Option<AnyPort>> = ports.iter().map(|_| None).collect();
    for (i, port) in ports.iter().enumerate() {
        match &port.driver {
            PortDriver::Ring { peer } => {
                let j = peer.index();
                if j < i {
                    continue; // opened with its peer
                }
                let other = config.port(*peer);
                let ring_size = [
                    port.rx_descriptors,
                    port.tx_descriptors,
                    other.rx_descriptors,
                    other.tx_descriptors,
                ]
                .into_iter()
                .max()
                .map_or(1024, usize::from);
                let cfg = RingPairConfig {
                    queues: port.queues,
                    ring_size,
                    port_ids: (i as u16, j as u16),
                };
                let (a, b) =
                    ring_pair(&port.name, &other.name, &cfg).map_err(|source| AppError::Port {
                        port: port.name.clone(),
                        source,
                    })?;
                opened[i] = Some(a.into());
                opened[j] = Some(b.into());
            }
            PortDriver::AfXdp { interface, mode } => {
                opened[i] = Some(af_xdp::open(
                    config, pools, &mut umems, i, port, interface, *mode,
                )?);
            }
            PortDriver::Virtio { pci } => {
                opened[i] = Some(virtio::open(&mut vfio, pools, i, port, pci)?);
            }
            PortDriver::VirtioUser { path, packed } => {
                opened[i] = Some(virtio::open_user(pools, i, port, path, *packed)?);
            }
            PortDriver::VhostUser { path } => {
                opened[i] = Some(vhost::open(pools, i, port, path)?);
            }
        }
    }
    opened
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.ok_or_else(|| AppError::Usage(format!("port {} has no peer", ports[i].name)))
        })
        .collect()
}
