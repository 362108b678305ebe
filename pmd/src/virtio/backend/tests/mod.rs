//! The backend port against Sluice's own virtio-user port in one process (rootless, 4 KiB
//! pages, a real unix socket), and against a frontend that lies (`liar`): rings written by
//! hand in shared memory, raw messages on the socket.

mod batch;
mod datapath;
mod liar;
mod lifecycle;

use sluice_mempool::{Batch, HugePagePolicy, PageSize, PktBuf, PktPool, PktPoolConfig};
use vmm_sys_util::tempdir::TempDir;

use super::{BackendConfig, VhostUserBackendPort};
use crate::net::{NetPort, Queues, RxQueue, TxQueue};
use crate::virtio::{VhostUserTransport, VirtioConfig, VirtioPort, feature};

type UserPort = VirtioPort<VhostUserTransport>;
type UserQueues = Queues<
    crate::virtio::VirtioRxQueue<VhostUserTransport>,
    crate::virtio::VirtioTxQueue<VhostUserTransport>,
>;
type BackendQueues = Queues<super::VhostBackendRxQueue, super::VhostBackendTxQueue>;

fn temp_dir() -> TempDir {
    TempDir::new_with_prefix(std::env::temp_dir().join("sluice-vb-")).expect("temp dir")
}

fn pool(name: &str, n: u32, shareable: bool) -> PktPool {
    let mut c = PktPoolConfig::new(name, n);
    c.page_size = PageSize::Size4K;
    c.huge_pages = HugePagePolicy::Never;
    c.cache_size = 0;
    if shareable {
        PktPool::new_shareable(&c).unwrap()
    } else {
        PktPool::new(&c, std::sync::Arc::new(sluice_mempool::IdentityMapper)).unwrap()
    }
}

fn backend(dir: &TempDir, name: &str, queues: u16, pool: &PktPool) -> VhostUserBackendPort {
    let cfg = BackendConfig {
        name: name.into(),
        port_id: 3,
        queues,
        mac: None,
    };
    VhostUserBackendPort::open(dir.as_path().join(format!("{name}.sock")), &cfg, pool).unwrap()
}

fn user_cfg(packed: bool, queues: u16, ring: u16) -> VirtioConfig {
    let mut c = VirtioConfig {
        name: "vu".into(),
        port_id: 9,
        queues,
        rx_descriptors: ring,
        tx_descriptors: ring,
        dma_page: PageSize::Size4K,
        huge_pages: HugePagePolicy::Never,
        ..VirtioConfig::default()
    };
    if !packed {
        c.features &= !feature::RING_PACKED;
    }
    c
}

/// A virtio-user port on `b`'s socket (the backend's control thread answers it).
fn frontend(b: &VhostUserBackendPort, c: &VirtioConfig, pool: &PktPool) -> UserPort {
    VirtioPort::open_vhost_user(b.path(), c, pool).unwrap()
}

fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u32 ^ seq.wrapping_mul(7)) as u8)
        .collect();
    f[..4].copy_from_slice(&seq.to_be_bytes());
    f
}

fn batch(pool: &PktPool, first: u32, n: usize, len: usize) -> Batch<PktBuf> {
    let mut out = Batch::new();
    for i in 0..n {
        let mut p = pool.alloc().unwrap();
        p.extend_from_slice(&frame(first + i as u32, len)).unwrap();
        out.push(p).unwrap();
    }
    out
}

/// Sends all of `b` on `q`, polling `pump` while the queue pushes back (a ring is full until
/// the other side takes). Lossless: nothing is dropped here.
fn send_all(q: &mut impl TxQueue, b: &mut Batch<PktBuf>, mut pump: impl FnMut()) {
    let mut spins = 0u64;
    while !b.is_empty() {
        if q.tx_burst(b) == 0 {
            pump();
            spins += 1;
            assert!(spins < 10_000_000, "transmit never progressed");
        }
    }
}

/// Receives until `n` frames came from `q` (polling `pump` between tries).
fn recv_n(q: &mut impl RxQueue, n: usize, mut pump: impl FnMut()) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut b: Batch<PktBuf> = Batch::new();
    let mut spins = 0u64;
    while got.len() < n {
        if q.rx_burst(&mut b) == 0 {
            pump();
            spins += 1;
            assert!(spins < 10_000_000, "received {} of {n}", got.len());
        }
        got.extend(b.iter().map(|p| p.data().to_vec()));
        b.clear();
    }
    got
}

fn assert_frames(got: &[Vec<u8>], first: u32, len: usize) {
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &frame(first + i as u32, len), "frame {i}");
    }
}

/// Waits (polling, no deadline but a safety net) until `done`.
fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("never: {what}");
}
