//! Connections coming and going: a frontend that goes away takes its port down and its
//! mappings with it, a new one on the same socket brings it back, other ports keep moving
//! packets meanwhile; stale, live and foreign files at the socket path.

use std::os::unix::net::UnixListener;

use super::*;
use crate::net::LinkStatus;
use crate::virtio::backend::BackendError;

/// Mappings of this process of file `name` (the frontend's memory as the backend maps it).
fn maps_of(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// `n` frames each way through the user queues `u` and the backend queues `b`.
fn exchange(
    u: &mut UserQueues,
    b: &mut BackendQueues,
    pools: (&PktPool, &PktPool),
    first: u32,
    n: usize,
) {
    let mut out = batch(pools.0, first, n, 100);
    send_all(&mut u.tx[0], &mut out, || {});
    assert_frames(&recv_n(&mut b.rx[0], n, || {}), first, 100);
    let mut back = batch(pools.1, first, n, 100);
    send_all(&mut b.tx[0], &mut back, || {});
    assert_frames(&recv_n(&mut u.rx[0], n, || {}), first, 100);
}

#[test]
fn reconnect_on_the_same_socket_while_another_port_forwards() {
    let dir = temp_dir();
    let (upool, bpool) = (pool("u", 1024, true), pool("b", 1024, false));
    let mut a = backend(&dir, "a", 1, &bpool);
    let mut b = backend(&dir, "b", 1, &bpool);
    let (mut aq, mut bq) = (a.take_queues().unwrap(), b.take_queues().unwrap());
    let mut fb = frontend(&b, &user_cfg(true, 1, 64), &upool);
    let mut fbq = fb.take_queues().unwrap();
    let mut total_b = 0u64;
    for round in 0..3u32 {
        let packed = round % 2 == 1;
        let mut fa = frontend(&a, &user_cfg(packed, 1, 64), &upool);
        assert_eq!(a.link(), LinkStatus::Up { speed_mbps: None });
        let mut faq = fa.take_queues().unwrap();
        exchange(&mut faq, &mut aq, (&upool, &bpool), round * 100, 20);
        exchange(&mut fbq, &mut bq, (&upool, &bpool), round * 100, 20);
        total_b += 20;
        // The frontend goes away (a VM powered off): the port goes down, its rings are
        // forgotten, what is sent to it is dropped, and port b goes on.
        drop((faq, fa));
        until("port a down", || !a.connected());
        assert_eq!(a.link(), LinkStatus::Down);
        assert_eq!(a.live_rings(), 0);
        let mut lost = batch(&bpool, 0, 4, 60);
        assert_eq!(aq.tx[0].tx_burst(&mut lost), 4, "dropped while down");
        exchange(&mut fbq, &mut bq, (&upool, &bpool), round * 100 + 50, 20);
        total_b += 20;
    }
    assert_eq!(aq.tx[0].counters().snapshot().drops, 12);
    assert_eq!(aq.rx[0].counters().snapshot().packets, 60);
    assert_eq!(bq.rx[0].counters().snapshot().packets, total_b);
    assert_eq!(fbq.rx[0].counters().snapshot().packets, total_b);
    let st = a.control_stats();
    assert_eq!((st.connections, st.disconnects, st.bad_messages), (3, 3, 0));
    drop((fbq, fb, aq, bq, a, b));
    assert_eq!(upool.available(), 1024);
    assert_eq!(bpool.available(), 1024);
}

#[test]
fn a_disconnect_unmaps_the_frontends_memory() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let port = backend(&dir, "unmap", 1, &bpool);
    let path = dir.as_path().join("guest-ram");
    let needle = path.display().to_string();
    {
        // A frontend whose memory is a file of its own, mapped once by the frontend's side
        // of this test and once by the backend.
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(1 << 16).unwrap();
        let mut dev = crate::virtio::vhost_user::VhostUserDevice::connect(port.path()).unwrap();
        dev.negotiate(feature::VERSION_1, 0).unwrap();
        let region = sluice_mempool::FdRegion {
            fd: std::os::fd::AsFd::as_fd(&file),
            offset: 0,
            len: 1 << 16,
            va: 0x4000_0000,
            iova: sluice_mempool::Iova(0x4000_0000),
        };
        dev.set_mem_table(&[region]).unwrap();
        assert_eq!(maps_of(&needle), 1, "the backend maps the table");
        // A second table replaces the first mapping.
        dev.set_mem_table(&[region]).unwrap();
        assert_eq!(maps_of(&needle), 1);
    }
    until("disconnect", || !port.connected());
    assert_eq!(maps_of(&needle), 0, "unmapped on disconnect");
}

#[test]
fn stale_live_and_foreign_files_at_the_path() {
    let dir = temp_dir();
    let bpool = pool("b", 64, false);
    let cfg = BackendConfig::default();
    // Stale: a socket file nobody accepts on (its process died).
    let stale = dir.as_path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let port = VhostUserBackendPort::open(&stale, &cfg, &bpool).unwrap();
    let upool = pool("u", 256, true);
    let mut user = frontend(&port, &user_cfg(false, 1, 64), &upool);
    assert!(user.take_queues().is_some());
    // Live: another backend (here: the port above) accepts on it.
    let e = VhostUserBackendPort::open(&stale, &cfg, &bpool).unwrap_err();
    assert!(
        matches!(e, crate::Error::VhostBackend(BackendError::InUse { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("another vhost-user backend listens at"),
        "{e}"
    );
    drop(user);
    drop(port);
    assert!(!stale.exists(), "the port removes its socket");
    // Foreign: not a socket; left alone.
    let file = dir.as_path().join("notes.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let e = VhostUserBackendPort::open(&file, &cfg, &bpool).unwrap_err();
    assert!(
        matches!(
            e,
            crate::Error::VhostBackend(BackendError::NotASocket { .. })
        ),
        "{e}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    // No directory.
    let e =
        VhostUserBackendPort::open(dir.as_path().join("no/such.sock"), &cfg, &bpool).unwrap_err();
    assert!(e.to_string().contains("no/such.sock"), "{e}");
}
