//! AF_XDP port over veth pairs in network namespaces these tests create and remove.
//!
//! Needs root (AF_XDP, XDP programs, namespaces); without it, or without `ip`, each test
//! prints `skipped: <reason>` and returns. The far end of each veth is a raw `AF_PACKET`
//! socket. IPv6 is off in the namespaces and no addresses are set, so the only frames on
//! the wires are the tests' own: counts are exact.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Netns, RawSocket, check_frame, frame, mac_of, unavailable, wait_until};
use sluice_pmd::net::any::AnyPort;
use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
use sluice_pmd::soft::af_xdp::{AfXdpConfig, AfXdpError, AfXdpPort, Umem, XdpAttachMode, XdpMode};
use sluice_pmd::{Batch, Error, IdentityMapper, PktBuf, PktPool, PktPoolConfig};

const SIZES: [usize; 6] = [60, 64, 128, 512, 1000, 1514];

fn size_of_seq(seq: u32) -> usize {
    SIZES[seq as usize % SIZES.len()]
}

fn pool_cfg(name: &str) -> PktPoolConfig {
    PktPoolConfig::new(name, 4096)
}

fn cfg(ifname: &str, queues: u16) -> AfXdpConfig {
    AfXdpConfig {
        queues,
        rx_descs: 512,
        tx_descs: 512,
        ..AfXdpConfig::new(ifname)
    }
}

/// A namespace for one test, or `None` (after printing why) when kernel tests cannot run.
fn netns(tag: &str) -> Option<Netns> {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return None;
    }
    match Netns::new(tag) {
        Ok(ns) => Some(ns),
        Err(e) => {
            println!("skipped: cannot create a network namespace: {e}");
            None
        }
    }
}

fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    ns.ip(&["link", "show", "dev", ifname])
        .map(|s| s.contains("xdp"))
        .unwrap_or(false)
}

/// Polls `rx` until `want` frames arrived or 2 s passed; checks each and marks its seq.
fn receive<Q: RxQueue>(rx: &mut [Q], seen: &mut [bool], want: usize) -> usize {
    let mut got = 0;
    let t = Instant::now();
    let mut batch: Batch<PktBuf> = Batch::new();
    while got < want && t.elapsed() < Duration::from_secs(2) {
        for q in rx.iter_mut() {
            q.rx_burst(&mut batch);
            for pkt in batch.drain() {
                let seq = check_frame(pkt.data()).expect("frame arrived intact") as usize;
                assert_eq!(pkt.len(), size_of_seq(seq as u32), "frame {seq} length");
                assert!(!seen[seq], "frame {seq} received twice");
                seen[seq] = true;
                got += 1;
            }
        }
    }
    got
}

#[test]
fn receives_every_frame_from_the_peer() {
    let Some(ns) = netns("rx") else { return };
    ns.veth("sxr0a", "sxr0b", 1).unwrap();
    ns.run(|| {
        let mut port = AfXdpPort::open_with_pool("a", &cfg("sxr0a", 1), &pool_cfg("rx")).unwrap();
        assert!(!port.is_zero_copy(), "veth has no zero-copy mode");
        assert_eq!(port.attach_mode(), XdpAttachMode::Driver);
        assert_eq!(port.info().mac.0, mac_of("sxr0a"));
        let umem = port.umem().clone();
        let mut q = port.take_queues().unwrap();
        let peer = RawSocket::open("sxr0b").unwrap();
        let (dst, src) = (mac_of("sxr0a"), mac_of("sxr0b"));

        const TOTAL: u32 = 3000;
        let mut seen = vec![false; TOTAL as usize];
        let mut bytes = 0u64;
        let mut got = 0;
        for start in (0..TOTAL).step_by(32) {
            let end = (start + 32).min(TOTAL);
            for seq in start..end {
                peer.send(&frame(dst, src, seq, size_of_seq(seq))).unwrap();
                bytes += size_of_seq(seq) as u64;
            }
            got += receive(&mut q.rx, &mut seen, (end - start) as usize);
        }
        assert_eq!(got, TOTAL as usize);
        let s = q.rx[0].counters().snapshot();
        assert_eq!((s.packets, s.bytes, s.errors), (u64::from(TOTAL), bytes, 0));
        let ks = port.kernel_stats();
        assert_eq!(
            (ks.rx_dropped, ks.rx_ring_full, ks.rx_invalid_descs),
            (0, 0, 0),
            "{ks:?}"
        );
        println!("received {got} frames ({bytes} bytes) on veth sxr0a, copy mode; kernel: {ks:?}");
        drop(q);
        drop(port);
        assert_eq!(
            umem.pool().available(),
            umem.pool().capacity(),
            "a buffer leaked"
        );
    });
    // The kernel may finish releasing the link from a work item: allow it a moment.
    assert!(
        wait_until(Duration::from_secs(2), || !xdp_attached(&ns, "sxr0a")),
        "XDP program left attached"
    );
}

#[test]
fn transmits_every_frame_to_the_peer() {
    let Some(ns) = netns("tx") else { return };
    ns.veth("sxt0a", "sxt0b", 1).unwrap();
    ns.run(|| {
        // Copy mode asked for explicitly (the other tests use auto, which falls back to it).
        let copy = AfXdpConfig {
            mode: XdpMode::Copy,
            ..cfg("sxt0a", 1)
        };
        let mut port = AfXdpPort::open_with_pool("a", &copy, &pool_cfg("tx")).unwrap();
        assert!(!port.is_zero_copy());
        let umem = port.umem().clone();
        let mut q = port.take_queues().unwrap();
        // Every fifth frame comes from a pool outside the UMEM and is copied into a chunk.
        let foreign = PktPool::new(
            &PktPoolConfig::new("foreign", 256),
            Arc::new(IdentityMapper),
        )
        .unwrap();
        let peer = RawSocket::open("sxt0b").unwrap();
        let (dst, src) = (mac_of("sxt0b"), mac_of("sxt0a"));

        const TOTAL: u32 = 3000;
        let mut seen = vec![false; TOTAL as usize];
        let mut got = 0;
        for start in (0..TOTAL).step_by(32) {
            let end = (start + 32).min(TOTAL);
            let mut batch: Batch<PktBuf> = Batch::new();
            for seq in start..end {
                let pool = if seq % 5 == 0 { &foreign } else { umem.pool() };
                let mut p = pool.alloc().unwrap();
                p.extend_from_slice(&frame(dst, src, seq, size_of_seq(seq)))
                    .unwrap();
                batch.push(p).unwrap();
            }
            assert!(wait_until(Duration::from_secs(2), || {
                q.tx[0].tx_burst(&mut batch);
                batch.is_empty()
            }));
            for _ in start..end {
                let f = peer.recv().expect("frame reached the peer");
                let seq = check_frame(&f).expect("frame intact") as usize;
                assert_eq!(f.len(), size_of_seq(seq as u32));
                assert!(!seen[seq]);
                seen[seq] = true;
                got += 1;
            }
        }
        assert_eq!(got, TOTAL);
        let s = q.tx[0].counters().snapshot();
        assert_eq!((s.packets, s.errors), (u64::from(TOTAL), 0));
        assert!(wait_until(Duration::from_secs(2), || {
            q.tx[0].flush();
            q.tx[0].in_flight() == 0
        }));
        println!("transmitted {got} frames from veth sxt0a, 1 in 5 copied from a foreign pool");
        drop(q);
        drop(port);
        assert_eq!(
            umem.pool().available(),
            umem.pool().capacity(),
            "a buffer leaked"
        );
        assert_eq!(foreign.available(), foreign.capacity());
    });
}

#[test]
fn two_queues_receive_and_transmit() {
    let Some(ns) = netns("mq") else { return };
    ns.veth("sxm0a", "sxm0b", 2).unwrap();
    ns.run(|| {
        let mut port = AfXdpPort::open_with_pool("a", &cfg("sxm0a", 2), &pool_cfg("mq")).unwrap();
        let umem = port.umem().clone();
        let mut q = port.take_queues().unwrap();
        assert_eq!((q.rx.len(), q.tx.len()), (2, 2));
        let peer = RawSocket::open("sxm0b").unwrap();
        let (dst, src) = (mac_of("sxm0a"), mac_of("sxm0b"));
        const TOTAL: u32 = 1000;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut seen = vec![false; TOTAL as usize];
        let mut got = 0;
        for start in (0..TOTAL).step_by(16) {
            let end = (start + 16).min(TOTAL);
            // Alternate the sending CPU so that both queues see traffic (on 2+ CPUs).
            common::pin_to(((start / 16) % 2) as usize);
            for seq in start..end {
                peer.send(&frame(dst, src, seq, size_of_seq(seq))).unwrap();
            }
            got += receive(&mut q.rx, &mut seen, (end - start) as usize);
        }
        assert_eq!(got, TOTAL as usize);
        let per_queue: Vec<u64> =
            q.rx.iter()
                .map(|r| r.counters().snapshot().packets)
                .collect();
        assert_eq!(per_queue.iter().sum::<u64>(), u64::from(TOTAL));
        println!("two queues received {per_queue:?} (the sender's CPU picks the queue)");
        if cpus >= 2 {
            assert!(per_queue.iter().all(|&n| n > 0), "a queue got nothing");
        }

        // Each TX queue reaches the peer.
        for (i, tx) in q.tx.iter_mut().enumerate() {
            let mut b: Batch<PktBuf> = Batch::new();
            let mut p = umem.pool().alloc().unwrap();
            p.extend_from_slice(&frame(src, dst, i as u32, 60)).unwrap();
            b.push(p).unwrap();
            assert!(wait_until(Duration::from_secs(1), || {
                tx.tx_burst(&mut b);
                b.is_empty()
            }));
            let f = peer.recv().expect("frame from tx queue");
            assert_eq!(check_frame(&f), Some(i as u32));
        }
        drop(q);
        drop(port);
        assert_eq!(umem.pool().available(), umem.pool().capacity());
    });
}

#[test]
fn forwards_between_two_ports_without_leaking() {
    let Some(ns) = netns("fwd") else { return };
    ns.veth("sxf0a", "sxf0b", 1).unwrap();
    ns.veth("sxf1a", "sxf1b", 1).unwrap();
    ns.run(|| {
        // One UMEM for both ports: forwarding moves chunks, it copies nothing.
        let umem = Umem::new(&pool_cfg("fwd"), 2048).unwrap();
        // Port A through the run-time dispatch an app uses when the config picks the driver.
        let mut a = AnyPort::from(AfXdpPort::open("A", &cfg("sxf0a", 1), &umem).unwrap());
        assert_eq!(a.info().driver, "af_xdp");
        let mut b = AfXdpPort::open("B", &cfg("sxf1a", 1), &umem).unwrap();
        let (mut qa, mut qb) = (a.take_queues().unwrap(), b.take_queues().unwrap());
        let (mut a_rx, mut b_tx) = (qa.rx.remove(0), qb.tx.remove(0));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        // The forwarder: io mode, the unsent rest of a burst is retried (veth never drops).
        let fwd = std::thread::spawn(move || {
            let mut batch: Batch<PktBuf> = Batch::new();
            while !stop2.load(Ordering::Relaxed) || !batch.is_empty() {
                if batch.is_empty() {
                    a_rx.rx_burst(&mut batch);
                }
                b_tx.tx_burst(&mut batch);
            }
            b_tx.flush();
            (a_rx, b_tx)
        });

        let gen_ = RawSocket::open("sxf0b").unwrap();
        let sink = RawSocket::open("sxf1b").unwrap();
        let (dst, src) = (mac_of("sxf0a"), mac_of("sxf0b"));
        const TOTAL: u32 = 5000;
        let mut seen = vec![false; TOTAL as usize];
        let mut got = 0;
        for start in (0..TOTAL).step_by(64) {
            let end = (start + 64).min(TOTAL);
            for seq in start..end {
                gen_.send(&frame(dst, src, seq, size_of_seq(seq))).unwrap();
            }
            for _ in start..end {
                let f = sink.recv().expect("forwarded frame reached the sink");
                let seq = check_frame(&f).expect("frame intact") as usize;
                assert!(!seen[seq]);
                seen[seq] = true;
                got += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let (a_rx, mut b_tx) = fwd.join().unwrap();
        assert_eq!(got, TOTAL);
        assert_eq!(a_rx.counters().snapshot().packets, u64::from(TOTAL));
        assert_eq!(b_tx.counters().snapshot().packets, u64::from(TOTAL));
        assert!(wait_until(Duration::from_secs(2), || {
            b_tx.flush();
            b_tx.in_flight() == 0
        }));
        println!("forwarded {got} frames sxf0a -> sxf1a on one shared UMEM");
        drop((a_rx, b_tx, qa, qb, a, b));
        assert_eq!(
            umem.pool().available(),
            umem.pool().capacity(),
            "a buffer leaked"
        );
    });
}

#[test]
fn missing_interface_is_a_clear_error() {
    let e = AfXdpPort::open_with_pool("p", &cfg("sluice-nosuch0", 1), &pool_cfg("missing"))
        .unwrap_err();
    assert!(
        matches!(e, Error::AfXdp(AfXdpError::NoSuchInterface { .. })),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("sluice-nosuch0") && msg.contains("ip link show"),
        "{msg}"
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn queue_out_of_range_and_zero_copy_on_veth_are_clear_errors() {
    let Some(ns) = netns("err") else { return };
    ns.veth("sxe0a", "sxe0b", 2).unwrap();
    ns.run(|| {
        let e = AfXdpPort::open_with_pool("p", &cfg("sxe0a", 3), &pool_cfg("e1")).unwrap_err();
        assert!(
            matches!(
                e,
                Error::AfXdp(AfXdpError::QueueOutOfRange {
                    queue: 2,
                    available: 2,
                    ..
                })
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("sxe0a: queue 2 is out of range"),
            "{e}"
        );

        let zc = AfXdpConfig {
            mode: XdpMode::ZeroCopy,
            ..cfg("sxe0a", 1)
        };
        let e = AfXdpPort::open_with_pool("p", &zc, &pool_cfg("e2")).unwrap_err();
        assert!(
            matches!(e, Error::AfXdp(AfXdpError::ZeroCopyUnsupported { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("use mode \"copy\""), "{e}");

        // The queue is free again, and a second port on it while the first lives is EBUSY.
        let p1 = AfXdpPort::open_with_pool("p", &cfg("sxe0a", 1), &pool_cfg("e3"))
            .unwrap_or_else(|e| panic!("reopen after a failed open: {e}"));
        let e = AfXdpPort::open_with_pool("q", &cfg("sxe0a", 1), &pool_cfg("e4")).unwrap_err();
        println!("second port on a held queue: {e}");
        drop(p1);
    });
    // The kernel may finish releasing the link from a work item: allow it a moment.
    assert!(
        wait_until(Duration::from_secs(2), || !xdp_attached(&ns, "sxe0a")),
        "a failed open left XDP attached"
    );
}

/// Helper for `xdp_is_detached_when_the_process_dies`: run in a child process, it opens a
/// port and waits to be killed. Ignored in normal runs.
#[test]
#[ignore = "helper run by xdp_is_detached_when_the_process_dies"]
fn child_holds_a_port() {
    let (Ok(ns), Ok(ifname)) = (
        std::env::var("SLUICE_CHILD_NETNS"),
        std::env::var("SLUICE_CHILD_IF"),
    ) else {
        return;
    };
    common::enter(&format!("/run/netns/{ns}")).unwrap();
    common::private_sysfs().unwrap();
    let _port = AfXdpPort::open_with_pool("child", &cfg(&ifname, 1), &pool_cfg("child")).unwrap();
    println!("attached");
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn xdp_is_detached_when_the_process_dies() {
    let Some(ns) = netns("sig") else { return };
    ns.veth("sxs0a", "sxs0b", 1).unwrap();
    for signal in ["INT", "KILL"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_holds_a_port", "--ignored", "--nocapture"])
            .env("SLUICE_CHILD_NETNS", &ns.name)
            .env("SLUICE_CHILD_IF", "sxs0a")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("attached") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(n > 0, "child exited before attaching");
        }
        assert!(xdp_attached(&ns, "sxs0a"), "child's program is attached");
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let _ = child.wait().unwrap();
        assert!(
            wait_until(Duration::from_secs(2), || !xdp_attached(&ns, "sxs0a")),
            "XDP program still attached after SIG{signal}"
        );
        println!("SIG{signal}: child killed, nothing left attached");
    }
}

/// Helper for `unprivileged_open_says_which_capability`: run as an unprivileged user, it
/// tries to open a port on `lo` and prints the error. Ignored in normal runs.
#[test]
#[ignore = "helper run by unprivileged_open_says_which_capability"]
fn child_opens_without_privilege() {
    if std::env::var("SLUICE_CHILD_UNPRIV").is_err() {
        return;
    }
    let mut pool = pool_cfg("unpriv");
    pool.page_size = sluice_pmd::mempool::PageSize::Size4K;
    pool.huge_pages = sluice_pmd::mempool::HugePagePolicy::Never;
    pool.count = 1024;
    match AfXdpPort::open_with_pool("p", &cfg("lo", 1), &pool) {
        Ok(_) => println!("error: none"),
        Err(e) => println!("error: {e}"),
    }
}

#[test]
fn unprivileged_open_says_which_capability() {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_opens_without_privilege",
            "--ignored",
            "--nocapture",
        ])
        .env("SLUICE_CHILD_UNPRIV", "1")
        .output();
    let Ok(out) = out else {
        println!("skipped: setpriv (util-linux) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find(|l| l.starts_with("error: ")) else {
        println!("skipped: the unprivileged child could not run: {text}");
        return;
    };
    println!("unprivileged: {line}");
    assert!(
        line.contains("lo: permission denied") && line.contains("CAP_"),
        "{line}"
    );
}
