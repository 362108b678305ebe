//! Sluice's virtio-user port ⇄ the backend port: exact counts and intact frames both ways,
//! split and packed rings, two queue pairs, full-size frames, every buffer back.

use super::*;
use crate::net::LinkStatus;

/// `rounds` bursts of `n` frames of `len` bytes each way, on queue pair `q`.
fn both_ways(
    u: &mut UserQueues,
    b: &mut BackendQueues,
    pools: (&PktPool, &PktPool),
    q: usize,
    rounds: u32,
    len: usize,
) -> u64 {
    let (upool, bpool) = pools;
    let mut seq = 0u32;
    for r in 0..rounds {
        let n = 1 + (r as usize * 5) % 32;
        // Frontend transmits, the backend receives.
        let mut out = batch(upool, seq, n, len);
        send_all(&mut u.tx[q], &mut out, || {});
        let got = recv_n(&mut b.rx[q], n, || {});
        assert_eq!(got.len(), n);
        assert_frames(&got, seq, len);
        // The backend transmits, the frontend receives.
        let mut back = batch(bpool, seq, n, len);
        send_all(&mut b.tx[q], &mut back, || {});
        let got = recv_n(&mut u.rx[q], n, || {});
        assert_eq!(got.len(), n);
        assert_frames(&got, seq, len);
        seq += n as u32;
    }
    u64::from(seq)
}

fn exact(packed: bool, queues: u16, len: usize) {
    let dir = temp_dir();
    let (upool, bpool) = (pool("u", 2048, true), pool("b", 2048, false));
    let mut port = backend(&dir, "vb", queues, &bpool);
    assert_eq!(port.link(), LinkStatus::Down, "no frontend yet");
    let mut user = frontend(&port, &user_cfg(packed, queues, 256), &upool);
    assert_eq!(user.ring_kind() == crate::virtio::RingKind::Packed, packed);
    assert!(port.connected());
    assert_eq!(port.live_rings(), 2 * usize::from(queues));
    assert_eq!(port.link(), LinkStatus::Up { speed_mbps: None });
    let (mut u, mut b) = (user.take_queues().unwrap(), port.take_queues().unwrap());
    let mut total = Vec::new();
    for q in 0..usize::from(queues) {
        total.push(both_ways(&mut u, &mut b, (&upool, &bpool), q, 40, len));
    }
    for (q, &n) in total.iter().enumerate() {
        assert!(n > 2 * 256, "the rings wrapped");
        let (brx, btx) = (b.rx[q].counters().snapshot(), b.tx[q].counters().snapshot());
        let (urx, utx) = (u.rx[q].counters().snapshot(), u.tx[q].counters().snapshot());
        assert_eq!(
            (brx.packets, btx.packets, urx.packets, utx.packets),
            (n, n, n, n)
        );
        assert_eq!(brx.bytes, n * len as u64);
        assert_eq!(
            brx.errors + btx.errors + urx.errors + utx.errors + btx.drops + brx.rx_nombuf,
            0
        );
    }
    let stats = port.control_stats();
    assert_eq!(
        (stats.connections, stats.bad_messages, stats.refused),
        (1, 0, 0)
    );
    drop((u, user));
    drop((b, port));
    assert_eq!(upool.available(), 2048, "every frontend buffer back");
    assert_eq!(bpool.available(), 2048, "every backend buffer back");
}

#[test]
fn split_ring_exact_counts_both_ways() {
    exact(false, 1, 60);
}

#[test]
fn packed_ring_exact_counts_both_ways() {
    exact(true, 1, 60);
}

#[test]
fn two_queue_pairs_split_and_packed() {
    exact(false, 2, 60);
    exact(true, 2, 60);
}

#[test]
fn full_size_frames_split_and_packed() {
    exact(false, 1, 1514);
    exact(true, 1, 1514);
}
