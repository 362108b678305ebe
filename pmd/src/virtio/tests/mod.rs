//! The driver against the software device (`model`): bring-up, datapath, faults. The
//! datapath tests and the queue set-up run against both of the model's ring engines, its own
//! ring code and rust-vmm's `virtio-queue`; fault injection needs the own one.

/// A `#[test]` per ring engine of the model for each function named (each takes the
/// engine): `own::name` and `rust_vmm::name`, in the module where it is invoked.
/// (Defined before the test modules: `macro_rules!` scope is textual.)
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod own {
            $(
                #[test]
                fn $name() {
                    super::$name(super::RingEngine::Own);
                }
            )*
        }
        mod rust_vmm {
            $(
                #[test]
                fn $name() {
                    super::$name(super::RingEngine::RustVmm);
                }
            )*
        }
    };
}

mod bringup;
mod datapath;
mod faults;

use std::sync::Arc;
use std::time::Duration;

use sluice_mempool::{HugePagePolicy, IdentityMapper, PageSize, PktPool, PktPoolConfig};

use super::model::{ModelConfig, RingEngine, SoftVirtioNet};
use super::{Transport, VirtioConfig, VirtioPort};
use crate::error::Error;

type Port = VirtioPort<SoftVirtioNet>;

fn pool(n: u32) -> PktPool {
    let mut c = PktPoolConfig::new("virtio-test", n);
    c.page_size = PageSize::Size4K;
    c.huge_pages = HugePagePolicy::Never;
    c.cache_size = 0;
    PktPool::new(&c, Arc::new(IdentityMapper)).unwrap()
}

fn cfg(size: u16) -> VirtioConfig {
    VirtioConfig {
        name: "vt".into(),
        port_id: 7,
        rx_descriptors: size,
        tx_descriptors: size,
        timeout: Duration::from_millis(100),
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        ..VirtioConfig::default()
    }
}

fn try_open(
    mc: ModelConfig,
    c: &VirtioConfig,
    pool: &PktPool,
) -> (Arc<SoftVirtioNet>, Result<Port, Error>) {
    let dev = SoftVirtioNet::new(mc);
    // The rust-vmm engine reaches only the rings and the mapped pools.
    dev.map_pool(pool);
    let port = attach(&dev, c, pool);
    (dev, port)
}

/// Brings the driver up on `dev` with receive buffers from `pool`.
fn attach(dev: &Arc<SoftVirtioNet>, c: &VirtioConfig, pool: &PktPool) -> Result<Port, Error> {
    let d = dev.clone();
    Transport::new(
        "model".into(),
        &dev.caps(),
        move |_| Ok(d.clone()),
        c.timeout,
    )
    .and_then(|t| VirtioPort::with_transport(t, c, pool, Arc::new(IdentityMapper)))
}

fn open(mc: ModelConfig, c: &VirtioConfig, pool: &PktPool) -> (Arc<SoftVirtioNet>, Port) {
    let (dev, port) = try_open(mc, c, pool);
    (dev, port.unwrap())
}

/// The default model with its rings walked by `engine`.
fn model(engine: RingEngine) -> ModelConfig {
    ModelConfig {
        engine,
        ..ModelConfig::default()
    }
}

fn loopback(engine: RingEngine) -> ModelConfig {
    ModelConfig {
        loopback: true,
        ..model(engine)
    }
}

/// A frame of `len` bytes that carries `seq` and a pattern derived from it.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
    f[..4].copy_from_slice(&seq.to_be_bytes());
    f
}
