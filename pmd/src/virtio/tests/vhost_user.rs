//! The whole driver over the vhost-user transport ([`VirtioPort::open_vhost_user`]) against
//! the in-process backend (`TestNetBackend`), over a real unix socket, rootless with 4 KiB
//! pages: exact counts on split and packed rings, two queue pairs, a backend that goes
//! away, one that lies, and the bring-up errors.

use std::time::Duration;

use sluice_mempool::{Batch, PktBuf};
use vmm_sys_util::tempdir::TempDir;

use super::*;
use crate::net::{LinkStatus, MacAddr, NetPort, RxQueue, TxQueue};
use crate::virtio::vhost_user::backend::{Forward, Lie, NetBackendConfig, TestNetBackend};
use crate::virtio::{RingKind, UsedFault, VhostUserTransport, VirtioError};

type UserPort = VirtioPort<VhostUserTransport>;

/// A safety net for waits on the backend thread, never reached when things work.
const LIMIT: Duration = Duration::from_secs(30);

fn temp_dir() -> TempDir {
    TempDir::new_with_prefix(std::env::temp_dir().join("sluice-vu-")).expect("temp dir")
}

fn shareable_pool(n: u32) -> PktPool {
    let mut c = PktPoolConfig::new("vu-pool", n);
    c.page_size = PageSize::Size4K;
    c.huge_pages = HugePagePolicy::Never;
    c.cache_size = 0;
    PktPool::new_shareable(&c).unwrap()
}

fn user_cfg(kind: RingKind, queues: u16) -> VirtioConfig {
    let mut c = cfg(64);
    c.queues = queues;
    if kind == RingKind::Split {
        c.features &= !feature::RING_PACKED;
    }
    c
}

/// A backend listening in `dir`, and a port opened on it.
fn open_user(
    dir: &TempDir,
    bcfg: NetBackendConfig,
    c: &VirtioConfig,
    pool: &PktPool,
) -> (TestNetBackend, UserPort) {
    let backend = TestNetBackend::listen(dir.as_path().join("vhost.sock"), bcfg).unwrap();
    let port = VirtioPort::open_vhost_user(backend.path(), c, pool).unwrap();
    (backend, port)
}

fn send(q: &mut impl TxQueue, pool: &PktPool, first: u32, n: usize) {
    let mut out: Batch<PktBuf> = Batch::new();
    for i in 0..n {
        let mut p = pool.alloc().unwrap();
        p.extend_from_slice(&frame(first + i as u32, 60)).unwrap();
        out.push(p).unwrap();
    }
    assert_eq!(q.tx_burst(&mut out), n);
}

/// Waits until the backend wrote `n` frames to receive rings in all, then takes what `q`
/// has (every frame the backend wrote is in memory by then).
fn receive(backend: &TestNetBackend, n: u64, q: &mut impl RxQueue) -> Vec<Vec<u8>> {
    let st = backend.wait_for(LIMIT, |s| s.rx_frames >= n);
    assert_eq!(backend.error(), None);
    assert!(st.rx_frames >= n, "backend wrote {} of {n}", st.rx_frames);
    let mut frames = Vec::new();
    let mut got: Batch<PktBuf> = Batch::new();
    while q.rx_burst(&mut got) > 0 {
        frames.extend(got.iter().map(|p| p.data().to_vec()));
        got.clear();
    }
    frames
}

fn echo_counts_exactly(kind: RingKind) {
    let dir = temp_dir();
    let pool = shareable_pool(1024);
    // DPDK's vhost offers CTRL_RX for a control queue it would serve; not used here.
    let bcfg = NetBackendConfig {
        features: NetBackendConfig::default().features | feature::CTRL_RX,
        ..NetBackendConfig::default()
    };
    let (backend, mut port) = open_user(&dir, bcfg, &user_cfg(kind, 1), &pool);
    assert_eq!(port.ring_kind(), kind);
    assert_eq!(port.features() & feature::CTRL_RX, 0);
    assert_eq!(port.info().mac, MacAddr::local(7));
    assert_eq!(port.link(), LinkStatus::Up { speed_mbps: None });
    let acked = backend.acked_features();
    let local = feature::MAC | feature::STATUS | feature::CTRL_VQ | feature::CTRL_RX;
    assert_eq!(acked & local, 0);
    assert_ne!(acked & feature::VERSION_1, 0);
    let mut q = port.take_queues().unwrap();
    let mut seq = 0u32;
    for round in 0..20u32 {
        let n = 1 + (round as usize * 7) % 32;
        send(&mut q.tx[0], &pool, seq, n);
        let got = receive(&backend, u64::from(seq) + n as u64, &mut q.rx[0]);
        assert_eq!(got.len(), n);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f, &frame(seq + i as u32, 60));
        }
        seq += n as u32;
    }
    assert!(seq > 4 * 64, "wrapped the rings");
    let (rx, tx) = (q.rx[0].counters().snapshot(), q.tx[0].counters().snapshot());
    assert_eq!((rx.packets, tx.packets), (u64::from(seq), u64::from(seq)));
    assert_eq!(rx.errors + tx.errors + rx.drops, 0);
    let st = backend.stats();
    assert_eq!(
        (st.tx_frames, st.rx_frames, st.dropped),
        (u64::from(seq), u64::from(seq), 0)
    );
    assert_eq!(st.mem_updates, 1, "one memory table");
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 1024, "every buffer back");
    backend.join().unwrap();
}

#[test]
fn split_rings_echo_exact_counts() {
    echo_counts_exactly(RingKind::Split);
}

#[test]
fn packed_rings_echo_exact_counts() {
    echo_counts_exactly(RingKind::Packed);
}

fn two_pairs_forward(kind: RingKind) {
    let dir = temp_dir();
    let pool = shareable_pool(1024);
    let bcfg = NetBackendConfig {
        forward: Forward::NextPair,
        ..NetBackendConfig::default()
    };
    let (backend, mut port) = open_user(&dir, bcfg, &user_cfg(kind, 2), &pool);
    let mut q = port.take_queues().unwrap();
    send(&mut q.tx[0], &pool, 0, 10);
    send(&mut q.tx[1], &pool, 100, 5);
    backend.wait_for(LIMIT, |s| s.rx_frames >= 15);
    let on1 = receive(&backend, 15, &mut q.rx[1]);
    let on0 = receive(&backend, 15, &mut q.rx[0]);
    assert_eq!(on1, (0..10).map(|s| frame(s, 60)).collect::<Vec<_>>());
    assert_eq!(on0, (100..105).map(|s| frame(s, 60)).collect::<Vec<_>>());
    drop(q);
    drop(port);
    assert_eq!(pool.available(), 1024);
    backend.join().unwrap();
}

#[test]
fn split_rings_two_queue_pairs() {
    two_pairs_forward(RingKind::Split);
}

#[test]
fn packed_rings_two_queue_pairs() {
    two_pairs_forward(RingKind::Packed);
}

fn a_backend_that_goes_away(kind: RingKind) {
    let dir = temp_dir();
    let pool = shareable_pool(1024);
    let (backend, mut port) =
        open_user(&dir, NetBackendConfig::default(), &user_cfg(kind, 1), &pool);
    let mut q = port.take_queues().unwrap();
    send(&mut q.tx[0], &pool, 0, 8);
    assert_eq!(receive(&backend, 8, &mut q.rx[0]).len(), 8);
    backend.disconnect();
    backend.join().unwrap();
    assert_eq!(port.link(), LinkStatus::Down);
    assert_eq!(port.link(), LinkStatus::Down);
    assert_eq!(port.link_downs(), 1, "counted once");
    // The lcore goes on: frames sit on the ring, nothing comes back, nothing fails.
    send(&mut q.tx[0], &pool, 8, 8);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx[0].rx_burst(&mut got), 0);
    assert_eq!(q.tx[0].counters().snapshot().errors, 0);
    drop(q);
    drop(port); // the reset finds the backend gone: stopped, every buffer back
    assert_eq!(pool.available(), 1024);
}

#[test]
fn split_rings_backend_gone_mid_run() {
    a_backend_that_goes_away(RingKind::Split);
}

#[test]
fn packed_rings_backend_gone_mid_run() {
    a_backend_that_goes_away(RingKind::Packed);
}

fn a_backend_that_lies(kind: RingKind) {
    let dir = temp_dir();
    let pool = shareable_pool(1024);
    let (backend, mut port) =
        open_user(&dir, NetBackendConfig::default(), &user_cfg(kind, 1), &pool);
    let mut q = port.take_queues().unwrap();
    backend.lie(Lie::BadLen);
    send(&mut q.tx[0], &pool, 0, 1);
    assert!(receive(&backend, 1, &mut q.rx[0]).is_empty());
    assert_eq!(q.rx[0].counters().snapshot().errors, 1);
    assert!(matches!(
        q.rx[0].take_fault(),
        Some(UsedFault::BadLen { .. })
    ));
    // Still working.
    send(&mut q.tx[0], &pool, 1, 3);
    assert_eq!(receive(&backend, 4, &mut q.rx[0]).len(), 3);
    backend.lie(Lie::BadId);
    send(&mut q.tx[0], &pool, 4, 1);
    let _ = receive(&backend, 5, &mut q.rx[0]);
    assert!(q.rx[0].counters().snapshot().errors >= 2);
    assert!(q.rx[0].take_fault().is_some());
    drop(q);
    drop(port);
    backend.join().unwrap();
}

#[test]
fn split_rings_backend_lies() {
    a_backend_that_lies(RingKind::Split);
}

#[test]
fn packed_rings_backend_lies() {
    a_backend_that_lies(RingKind::Packed);
}

#[test]
fn no_backend_names_the_path_and_says_to_start_it() {
    let dir = temp_dir();
    let path = dir.as_path().join("nobody.sock");
    let pool = shareable_pool(64);
    let err = VirtioPort::open_vhost_user(&path, &cfg(64), &pool).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("start the backend first"), "{msg}");
}

#[test]
fn a_pool_that_is_not_shareable_is_named() {
    let dir = temp_dir();
    let backend = TestNetBackend::listen(
        dir.as_path().join("vhost.sock"),
        NetBackendConfig::default(),
    )
    .unwrap();
    let err = VirtioPort::open_vhost_user(backend.path(), &cfg(64), &pool(64)).unwrap_err();
    assert!(
        matches!(&err, Error::Virtio(VirtioError::PoolNotShareable { pool, .. }) if pool == "virtio-test"),
        "{err}"
    );
    assert!(err.to_string().contains("virtio-test"));
}

#[test]
fn a_backend_without_version_1_is_refused_naming_it() {
    let dir = temp_dir();
    let bcfg = NetBackendConfig {
        features: NetBackendConfig::default().features & !feature::VERSION_1,
        ..NetBackendConfig::default()
    };
    let backend = TestNetBackend::listen(dir.as_path().join("vhost.sock"), bcfg).unwrap();
    let pool = shareable_pool(64);
    let err = VirtioPort::open_vhost_user(backend.path(), &cfg(64), &pool).unwrap_err();
    assert!(
        matches!(&err, Error::Virtio(VirtioError::FeatureMissing { missing, .. }) if *missing == feature::VERSION_1),
        "{err}"
    );
    assert!(err.to_string().contains("VERSION_1"), "{err}");
}
