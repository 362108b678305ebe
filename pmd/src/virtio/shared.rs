//! [`Shared`]: what the device may still touch, kept together until the device is reset;
//! and the registration of a packet pool with a VFIO container.
//!
//! The port and every queue handle hold an `Arc<Shared>`. A queue handle that is dropped
//! parks its ring memory and posted buffers here; when the last holder goes, `Shared` resets
//! the device (bounded wait for status 0) and only then frees them, unregisters the pool
//! from the IOMMU and closes the device. If the reset does not complete, the memory is
//! leaked rather than handed back while the device might still write it.

use std::sync::{Arc, Mutex};

use sluice_mempool::{IdentityMapper, IovaMap, IovaMapper, PktBuf, PktPool};

use super::pci_transport::{Transport, VirtioRegs};
use super::ring::Virtqueue;
use crate::dma::SharedMemory;
use crate::error::Error;
use crate::pci::PciAddr;
use crate::vfio::{Container, Device, IommuMode};

/// A pool's memory registered with a type1 container (IOVA = VA, what the identity mapper
/// gave the pool's buffers), unregistered when dropped.
pub(super) struct PoolMapping {
    container: Arc<Container>,
    pool: PktPool,
    map: IovaMap,
}

impl Drop for PoolMapping {
    fn drop(&mut self) {
        self.container.unmap(self.pool.region().mem(), &self.map);
    }
}

/// What the device may still touch, kept until it is reset.
#[derive(Default)]
pub(super) struct Parked {
    pub(super) rings: Vec<Arc<SharedMemory>>,
    bufs: Vec<PktBuf>,
}

/// What a queue carries per chain: a packet buffer, or nothing (control commands).
pub(super) trait Token {
    fn into_buf(self) -> Option<PktBuf>;
}

impl Token for PktBuf {
    fn into_buf(self) -> Option<PktBuf> {
        Some(self)
    }
}

impl Token for () {
    fn into_buf(self) -> Option<PktBuf> {
        None
    }
}

/// The device, its transport and what it may touch; resets the device when dropped.
pub struct Shared<R: VirtioRegs> {
    pub(super) transport: Transport<R>,
    pub(super) parked: Mutex<Parked>,
    // Dropped after `parked`: the pool is unregistered from the IOMMU once no buffer is
    // posted any more; the device closes last.
    pub(super) pool_map: Option<PoolMapping>,
    pub(super) _device: Option<Device>,
}

impl<R: VirtioRegs> Shared<R> {
    /// Takes a queue's posted buffers and keeps them and its ring until the reset.
    pub(super) fn park<T: Token>(&self, vq: &mut Virtqueue<T>) {
        let mut p = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        p.rings.push(vq.memory());
        let bufs: Vec<PktBuf> = vq
            .take_all()
            .into_iter()
            .filter_map(Token::into_buf)
            .collect();
        p.bufs.extend(bufs);
    }

    /// The transport (control path).
    pub fn transport(&self) -> &Transport<R> {
        &self.transport
    }
}

impl<R: VirtioRegs> Drop for Shared<R> {
    fn drop(&mut self) {
        if let Err(e) = self.transport.reset() {
            // The device may still DMA into what it was given: leak it rather than reuse it.
            eprintln!("sluice: warning: {e}; leaking its ring memory and buffers");
            let p = std::mem::take(self.parked.get_mut().unwrap_or_else(|e| e.into_inner()));
            std::mem::forget(p);
            std::mem::forget(self.pool_map.take());
        }
        // Fields drop now, in order: the transport's BAR mappings, the parked memory and
        // buffers, the pool's IOMMU registration, the device.
    }
}

/// Registers `pool` with `container` at IOVA = VA unless the container maps it already (or
/// made it); `None` when nothing was registered here.
pub(super) fn map_pool(
    container: &Arc<Container>,
    pool: &PktPool,
    addr: PciAddr,
) -> Result<Option<PoolMapping>, Error> {
    let region = pool.region();
    if region.mapper_name() == container.name() {
        return Ok(None);
    }
    if container.mode() != IommuMode::Type1v2 || region.mapper_name() != IdentityMapper.name() {
        return Err(Error::VirtioPool {
            device: addr.to_string(),
            why: format!(
                "pool {}'s memory is mapped by '{}'; make it with the identity mapper or with \
                 this container as its mapper (required in no-IOMMU mode)",
                pool.name(),
                region.mapper_name()
            ),
        });
    }
    let va = region.as_ptr().as_ptr() as u64;
    let len = region.len() as u64;
    if container
        .mappings()
        .iter()
        .any(|&(v, l)| v <= va && va + len <= v + l)
    {
        // Another port of this container registered it already. Known limit: that port
        // unregisters it when it closes, so a port sharing the pool that is still running
        // then has its DMA into the pool refused by the IOMMU (QEMU marks the device
        // NEEDS_RESET; no memory is touched). Ports of one run close together; a refcount
        // in the container would lift this.
        return Ok(None);
    }
    let map = container
        .map(region.mem())
        .map_err(|source| Error::VirtioDma {
            what: format!("{addr} pool {}", pool.name()),
            len: region.len(),
            source: Box::new(source),
        })?;
    Ok(Some(PoolMapping {
        container: container.clone(),
        pool: pool.clone(),
        map,
    }))
}
