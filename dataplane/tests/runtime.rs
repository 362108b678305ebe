//! The runtime on its own (no generator): forwarding with each rewrite, the transmit policy's
//! drops, bounded stop with a hung or panicking lcore, core checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_dataplane::{
    Error, LcoreSpec, PipelineLayout, Rewrite, RtcLayout, Runtime, RuntimeConfig, RxPath, Task,
};
use sluice_pmd::mempool::HugePagePolicy;
use sluice_pmd::net::{MacAddr, NetPort, RxQueue, TxQueue};
use sluice_pmd::soft::ring_port::{RingPairConfig, RingPort, ring_pair};
use sluice_pmd::{Batch, IdentityMapper, PktBuf, PktPool, PktPoolConfig};

fn pool(n: u32) -> PktPool {
    let mut cfg = PktPoolConfig::new("rt-test", n);
    cfg.huge_pages = HugePagePolicy::Never;
    PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

fn pair(a: &str, b: &str, ids: (u16, u16), ring_size: usize) -> (RingPort, RingPort) {
    let cfg = RingPairConfig {
        queues: 1,
        ring_size,
        port_ids: ids,
    };
    ring_pair(a, b, &cfg).unwrap()
}

/// Frame `i`: dst 0x0a.., src 0x0b.., then `i` as the payload.
fn frame(pool: &PktPool, i: u32) -> PktBuf {
    let mut p = pool.alloc().unwrap();
    let mut bytes = vec![0x0a; 6];
    bytes.extend([0x0b; 6]);
    bytes.extend([0x08, 0x00]);
    bytes.extend(i.to_be_bytes());
    bytes.resize(60, 0xee);
    p.extend_from_slice(&bytes).unwrap();
    p
}

fn send_all<T: TxQueue>(tx: &mut T, pool: &PktPool, n: u32) {
    let mut i = 0;
    let mut b: Batch<PktBuf> = Batch::new();
    while i < n {
        while i < n && !b.is_full() {
            b.push(frame(pool, i)).unwrap();
            i += 1;
        }
        while !b.is_empty() {
            tx.tx_burst(&mut b);
        }
    }
}

/// How long a count may stand still before a test calls it lost. Not a deadline for the
/// test: a loaded machine slows progress, but under lossless back-pressure a frame that is
/// still on its way moves within this; only a lost frame or a dead lcore stops it for good.
const NO_PROGRESS: Duration = Duration::from_secs(120);

/// Waits until `count()` reaches `n`; fails only when it stands still for [`NO_PROGRESS`].
fn wait_for_count(what: &str, n: u64, mut count: impl FnMut() -> u64) {
    let (mut last, mut since) = (count(), Instant::now());
    while last < n {
        std::thread::sleep(Duration::from_millis(1));
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        assert!(
            since.elapsed() < NO_PROGRESS,
            "{what}: stuck at {last} of {n} for {NO_PROGRESS:?}"
        );
    }
}

/// Receives exactly `n` frames, checking each; the count bounds the wait, not a deadline.
fn receive_all<R: RxQueue>(rx: &mut R, n: usize, check: impl Fn(usize, &[u8])) {
    let mut got = 0;
    let mut b: Batch<PktBuf> = Batch::new();
    wait_for_count("frames received", n as u64, || {
        while rx.rx_burst(&mut b) > 0 {
            for p in b.drain() {
                check(got, p.data());
                got += 1;
            }
        }
        got as u64
    });
}

const SWAPPED: [u8; 12] = [
    0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
];

fn check_frame(i: usize, d: &[u8], macs: &[u8; 12]) {
    assert_eq!(&d[..12], macs, "frame {i}");
    assert_eq!(&d[14..18], &(i as u32).to_be_bytes(), "frame {i} in order");
    assert!(d[18..].iter().all(|&b| b == 0xee));
}

/// Lossless, and a stop that waits as long as a loaded machine needs (a hung lcore still
/// fails the test, see `a_hung_lcore_is_named_after_the_stop_timeout`).
fn lossless() -> RuntimeConfig {
    RuntimeConfig {
        stall_timeout: None,
        stop_timeout: NO_PROGRESS,
        ..RuntimeConfig::default()
    }
}

#[test]
fn rtc_forwards_in_order_with_mac_swap() {
    let pool = pool(4096);
    let (mut src, mut in0) = pair("src", "in0", (0, 1), 256);
    let (mut out0, mut dst) = pair("out0", "dst", (2, 3), 256);
    let mut src_tx = src.take_queues().unwrap().tx.remove(0);
    let mut dst_rx = dst.take_queues().unwrap().rx.remove(0);
    let mut rt = Runtime::new(RuntimeConfig {
        pools: vec![pool.clone()],
        ..lossless()
    });
    rt.spawn_rtc(RtcLayout {
        lcore: LcoreSpec::unpinned("lcore fwd"),
        rx: vec![RxPath {
            queue: in0.take_queues().unwrap().rx.remove(0),
            rewrite: Rewrite::MacSwap,
            tx: 0,
        }],
        tx: vec![out0.take_queues().unwrap().tx.remove(0)],
    })
    .unwrap();
    let n = 20_000;
    let sender = {
        let pool = pool.clone();
        std::thread::spawn(move || send_all(&mut src_tx, &pool, n))
    };
    receive_all(&mut dst_rx, n as usize, |i, d| check_frame(i, d, &SWAPPED));
    sender.join().unwrap();
    rt.shutdown().unwrap();
    assert_eq!(out0.counters().tx_total().packets, u64::from(n));
    assert_eq!(out0.counters().tx_total().drops, 0);
    drop((in0, out0, dst_rx));
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn pipeline_forwards_in_order_with_l2_rewrite() {
    let pool = pool(4096);
    let (mut src, mut in0) = pair("src", "in0", (0, 1), 256);
    let (mut out0, mut dst) = pair("out0", "dst", (2, 3), 256);
    let mut src_tx = src.take_queues().unwrap().tx.remove(0);
    let mut dst_rx = dst.take_queues().unwrap().rx.remove(0);
    let (d, s) = (MacAddr([0xd; 6]), MacAddr([0x5; 6]));
    let mut rt = Runtime::new(lossless());
    rt.spawn_pipeline(PipelineLayout {
        rx: vec![(
            LcoreSpec::unpinned("rx"),
            vec![(in0.take_queues().unwrap().rx.remove(0), 1)],
        )],
        workers: vec![LcoreSpec::unpinned("worker")],
        tx: vec![(
            LcoreSpec::unpinned("tx"),
            vec![(out0.take_queues().unwrap().tx.remove(0), 2)],
        )],
        rules: vec![(1, 2, Rewrite::L2 { dst: d, src: s })],
        ring_size: 128,
        burst: 16,
    })
    .unwrap();
    assert_eq!(rt.rings().len(), 2);
    let n = 20_000;
    let sender = {
        let pool = pool.clone();
        std::thread::spawn(move || send_all(&mut src_tx, &pool, n))
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&d.0);
    macs[6..].copy_from_slice(&s.0);
    receive_all(&mut dst_rx, n as usize, |i, f| check_frame(i, f, &macs));
    sender.join().unwrap();
    let rings: Vec<_> = rt.rings().iter().map(|r| r.1.snapshot().packets).collect();
    rt.shutdown().unwrap();
    assert_eq!(rings, [u64::from(n), u64::from(n)]);
    drop((in0, out0, dst_rx));
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn a_stalled_outlet_drops_and_counts_and_frees() {
    // Nobody reads `dst`: once its 64-slot ring is full, the forwarder holds one burst, then
    // drops after the stall timeout; every drop is counted and every buffer freed.
    let pool = pool(4096);
    let (mut src, mut in0) = pair("src", "in0", (0, 1), 4096);
    let (mut out0, dst) = pair("out0", "dst", (2, 3), 64);
    let mut src_tx = src.take_queues().unwrap().tx.remove(0);
    let mut rt = Runtime::new(RuntimeConfig {
        stall_timeout: Some(Duration::from_micros(50)),
        stop_timeout: NO_PROGRESS,
        ..RuntimeConfig::default()
    });
    rt.spawn_rtc(RtcLayout {
        lcore: LcoreSpec::unpinned("lcore fwd"),
        rx: vec![RxPath {
            queue: in0.take_queues().unwrap().rx.remove(0),
            rewrite: Rewrite::Io,
            tx: 0,
        }],
        tx: vec![out0.take_queues().unwrap().tx.remove(0)],
    })
    .unwrap();
    let n = 1000;
    send_all(&mut src_tx, &pool, n);
    wait_for_count("frames taken by the forwarder", u64::from(n), || {
        in0.counters().rx_total().packets
    });
    rt.shutdown().unwrap();
    let tx = out0.counters().tx_total();
    assert_eq!(tx.packets, 64, "the ring took 64");
    assert_eq!(
        tx.drops,
        u64::from(n) - 64,
        "the rest were dropped and counted"
    );
    assert!(tx.full > 0);
    drop((in0, out0, dst, src, src_tx));
    assert_eq!(pool.available(), pool.capacity());
}

#[test]
fn a_lossless_lcore_holds_instead_of_dropping() {
    // The runtime drops after 1 µs without progress, but this lcore is lossless: a consumer
    // that reads its 64-slot ring slowly (and stops for a while) costs time, not frames.
    let pool = pool(4096);
    let (mut src, mut in0) = pair("src", "in0", (0, 1), 4096);
    let (mut out0, mut dst) = pair("out0", "dst", (2, 3), 64);
    let mut src_tx = src.take_queues().unwrap().tx.remove(0);
    let mut dst_rx = dst.take_queues().unwrap().rx.remove(0);
    let mut rt = Runtime::new(RuntimeConfig {
        stall_timeout: Some(Duration::from_micros(1)),
        stop_timeout: NO_PROGRESS,
        pools: vec![pool.clone()],
        ..RuntimeConfig::default()
    });
    rt.spawn_rtc(RtcLayout {
        lcore: LcoreSpec::unpinned("lcore fwd").lossless(true),
        rx: vec![RxPath {
            queue: in0.take_queues().unwrap().rx.remove(0),
            rewrite: Rewrite::Io,
            tx: 0,
        }],
        tx: vec![out0.take_queues().unwrap().tx.remove(0)],
    })
    .unwrap();
    let n = 2000;
    send_all(&mut src_tx, &pool, n);
    // The forwarder fills the ring and holds a burst; the consumer is away meanwhile.
    wait_for_count("frames on the full ring", 64, || {
        out0.counters().tx_total().packets
    });
    std::thread::sleep(Duration::from_millis(20));
    let ident = [
        0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
    ];
    let mut got = 0;
    let mut b: Batch<PktBuf, 8> = Batch::new();
    wait_for_count("frames received", u64::from(n), || {
        dst_rx.rx_burst(&mut b);
        for p in b.drain() {
            check_frame(got, p.data(), &ident);
            got += 1;
        }
        got as u64
    });
    rt.shutdown().unwrap();
    let tx = out0.counters().tx_total();
    assert_eq!((tx.packets, tx.drops), (u64::from(n), 0));
    assert!(tx.full > 0, "the ring did push back");
    drop((in0, out0, dst_rx, src, src_tx));
    assert_eq!(pool.available(), pool.capacity());
}

/// Stands for a driver call that does not return: `entered` says it is stuck, `release`
/// lets it go.
struct Stuck {
    entered: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}
impl Task for Stuck {
    fn poll(&mut self) -> usize {
        self.entered.store(true, Ordering::Release);
        while !self.release.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    }
}

#[test]
fn a_hung_lcore_is_named_after_the_stop_timeout() {
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let mut rt = Runtime::new(RuntimeConfig {
        stop_timeout: Duration::from_millis(100),
        ..RuntimeConfig::default()
    });
    let task = Stuck {
        entered: entered.clone(),
        release: release.clone(),
    };
    rt.spawn(LcoreSpec::unpinned("lcore stuck"), task).unwrap();
    // Stop only once the lcore is inside the call that never returns; stopping earlier
    // would let it exit cleanly before its first poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !entered.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "the lcore never started polling");
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let e = rt.shutdown().unwrap_err();
    // Bounded: 100 ms plus whatever a loaded test machine adds to the waiting thread.
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(
        e.to_string(),
        "lcore stuck did not stop within 100ms of the stop signal"
    );
    release.store(true, Ordering::Relaxed);
}

struct Panics;
impl Task for Panics {
    fn poll(&mut self) -> usize {
        panic!("driver bug")
    }
}

#[test]
fn a_panicking_lcore_is_reported() {
    let mut rt = Runtime::new(RuntimeConfig::default());
    rt.spawn(LcoreSpec::unpinned("lcore p"), Panics).unwrap();
    while !rt.lcores()[0].is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    match rt.shutdown() {
        Err(Error::Panicked { lcore, message }) => {
            assert_eq!(
                (lcore.as_str(), message.as_str()),
                ("lcore p", "driver bug")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_core_fails_before_any_thread_starts() {
    let mut rt = Runtime::new(RuntimeConfig::default());
    let e = rt
        .spawn(LcoreSpec::pinned("lcore 9", 9999), Panics)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("lcore 9: core 9999 does not exist on this machine (cores here: "),
        "{e}"
    );
    assert!(rt.lcores().is_empty());
}

#[test]
fn pinned_lcores_run_on_cores_0_and_1() {
    let mut rt = Runtime::new(RuntimeConfig::default());
    let release = Arc::new(AtomicBool::new(true));
    let stuck = || Stuck {
        entered: Arc::default(),
        release: release.clone(),
    };
    rt.spawn(LcoreSpec::pinned("a", 0), stuck()).unwrap();
    rt.spawn(LcoreSpec::pinned("b", 1), stuck()).unwrap();
    let cores: Vec<_> = rt.lcores().iter().map(|l| l.core()).collect();
    assert_eq!(cores, [Some(0), Some(1)]);
    rt.shutdown().unwrap();
}
