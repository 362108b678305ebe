//! The driver against the software device (`model`): bring-up, datapath, faults. The
//! datapath tests and the queue set-up run on split rings against both of the model's ring
//! engines, its own ring code and rust-vmm's `virtio-queue`, and on packed rings against the
//! own one (virtio-queue has no packed rings); fault injection needs the own engine.

/// A `#[test]` per ring set-up for each function named (each takes a [`Rings`]):
/// `own::name` and `rust_vmm::name` (split rings on either engine) and `packed::name`, in
/// the module where it is invoked. (Defined before the test modules: `macro_rules!` scope
/// is textual.)
macro_rules! on_all_rings {
    ($($name:ident),* $(,)?) => {
        mod own {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Rings::Split(super::RingEngine::Own));
                }
            )*
        }
        mod rust_vmm {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Rings::Split(super::RingEngine::RustVmm));
                }
            )*
        }
        mod packed {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Rings::Packed);
                }
            )*
        }
    };
}

mod bringup;
mod datapath;
mod device_values;
mod faults;
mod vhost_user;

use std::sync::Arc;
use std::time::Duration;

use sluice_mempool::{HugePagePolicy, IdentityMapper, PageSize, PktPool, PktPoolConfig};

use super::model::{ModelConfig, RingEngine, SoftVirtioNet};
use super::{PciTransport, VirtioConfig, VirtioPort, feature};
use crate::error::Error;

type Port = VirtioPort<PciTransport<SoftVirtioNet>>;

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
    PciTransport::new(
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

/// A ring format and the model's engine that walks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rings {
    /// Split rings, walked by this engine.
    Split(RingEngine),
    /// Packed rings (offered by the model, accepted by the driver's default), walked by the
    /// model's own engine.
    Packed,
}

/// The default model with its rings as `engine` says.
fn model(engine: Rings) -> ModelConfig {
    match engine {
        Rings::Split(engine) => ModelConfig {
            engine,
            ..ModelConfig::default()
        },
        Rings::Packed => ModelConfig {
            features: ModelConfig::default().features | feature::RING_PACKED,
            ..ModelConfig::default()
        },
    }
}

fn loopback(engine: Rings) -> ModelConfig {
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
