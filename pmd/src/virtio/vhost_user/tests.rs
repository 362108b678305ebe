//! The frontend against the in-process backend over a real unix socket (rootless, 4 KiB
//! pages): bring-up, frames through raw virtqueues in memfd memory, teardown, and the
//! faults: no socket, refused features, a backend that goes away or lies.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_mempool::{DmaRegion, HugePagePolicy, Iova, PageSize, PktBuf, PktPool, PktPoolConfig};
use vhost::vhost_user::VhostUserProtocolFeatures;
use vmm_sys_util::tempdir::TempDir;

use super::backend::{BackendStats, Forward, Lie, NetBackendConfig, TestNetBackend};
use super::{Doorbell, MEM_TABLE_REGIONS, RingFault, VhostUserDevice, VhostUserError, VringSetup};
use crate::SharedMemory;
use crate::virtio::ring::packed::PackedLayout;
use crate::virtio::ring::split::RingLayout;
use crate::virtio::ring::{Segment, Used};
use crate::virtio::{NET_HDR_LEN, PackedQueue, RingKind, SplitQueue, Virtqueue, feature};
use sluice_mempool::FdRegion;

/// A safety net for waits on the backend thread, never reached when things work.
const LIMIT: Duration = Duration::from_secs(30);
const RING: u16 = 64;

fn temp_dir() -> TempDir {
    TempDir::new_with_prefix(std::env::temp_dir().join("sluice-vhost-")).expect("temp dir")
}

fn shareable_pool() -> PktPool {
    let mut cfg = PktPoolConfig::new("vhost-test", 512);
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    cfg.cache_size = 0;
    PktPool::new_shareable(&cfg).expect("shareable pool")
}

/// A memory-table entry that owns a duplicate of its fd: the region itself moves into the
/// ring's `SharedMemory`, which keeps it mapped.
struct Shared {
    fd: OwnedFd,
    va: u64,
    len: u64,
    iova: Iova,
}

impl Shared {
    fn of(r: &DmaRegion) -> Self {
        let f = r.fd_region().expect("shareable region");
        Shared {
            fd: f.fd.try_clone_to_owned().unwrap(),
            va: f.va,
            len: f.len,
            iova: f.iova,
        }
    }

    fn entry(&self) -> FdRegion<'_> {
        FdRegion {
            fd: self.fd.as_fd(),
            offset: 0,
            len: self.len,
            va: self.va,
            iova: self.iova,
        }
    }
}

/// A ring in shareable memory, as a driver would lay it out.
fn new_ring(kind: RingKind, event_idx: bool) -> (Virtqueue<PktBuf>, VringSetup, Shared) {
    let len = match kind {
        RingKind::Split => RingLayout::new(RING).unwrap().len,
        RingKind::Packed => PackedLayout::new(RING).unwrap().len,
    };
    let region = DmaRegion::shareable(len, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    let shared = Shared::of(&region);
    let mem = Arc::new(SharedMemory::new(region));
    let vq = match kind {
        RingKind::Split => Virtqueue::Split(SplitQueue::new(
            0,
            mem,
            RingLayout::new(RING).unwrap(),
            event_idx,
        )),
        RingKind::Packed => Virtqueue::Packed(PackedQueue::new(
            0,
            mem,
            PackedLayout::new(RING).unwrap(),
            event_idx,
        )),
    };
    let (desc, driver, device) = vq.iovas();
    let setup = VringSetup {
        kind,
        size: RING,
        desc: desc.as_u64(),
        driver: driver.as_u64(),
        device: device.as_u64(),
    };
    (vq, setup, shared)
}

struct Queue {
    vq: Virtqueue<PktBuf>,
    bell: Doorbell,
}

impl Queue {
    fn publish(&mut self) {
        if self.vq.publish() {
            self.bell.kick().unwrap();
        }
    }

    /// Posts `n` receive buffers, as the driver's receive path does.
    fn post_rx(&mut self, pool: &PktPool, n: usize) {
        for _ in 0..n {
            let pkt = pool.alloc().unwrap();
            let head = pkt.headroom();
            let seg = Segment {
                iova: pkt.buf_iova().add((head - NET_HDR_LEN) as u64),
                len: (pkt.buf_len() - head + NET_HDR_LEN) as u32,
                writable: true,
            };
            assert!(self.vq.add(&[seg], pkt).is_ok());
        }
        self.publish();
    }

    /// Sends `frame` behind a zeroed virtio-net header.
    fn send(&mut self, pool: &PktPool, frame: &[u8]) {
        let mut pkt = pool.alloc().unwrap();
        pkt.extend_from_slice(frame).unwrap();
        pkt.prepend(NET_HDR_LEN).unwrap().fill(0);
        let seg = Segment {
            iova: pkt.data_iova(),
            len: pkt.len() as u32,
            writable: false,
        };
        assert!(self.vq.add(&[seg], pkt).is_ok());
        self.publish();
    }

    /// Every used entry the ring holds now.
    fn reap(&mut self) -> Vec<Used<PktBuf>> {
        self.vq.used_ready().expect("no index jump");
        std::iter::from_fn(|| self.vq.pop_used()).collect()
    }

    /// The received frames (header and frame) the ring holds now.
    fn received(&mut self) -> Vec<Vec<u8>> {
        self.reap()
            .into_iter()
            .map(|u| match u {
                Used::Done(mut pkt, len) => {
                    pkt.prepend(NET_HDR_LEN).unwrap();
                    pkt.append(len as usize - NET_HDR_LEN).unwrap();
                    pkt.data().to_vec()
                }
                other => panic!("a faulty used entry: {other:?}"),
            })
            .collect()
    }
}

/// A brought-up device with its queues, as a driver's bring-up leaves it.
struct Rig {
    _dir: TempDir,
    backend: TestNetBackend,
    dev: VhostUserDevice,
    pool: PktPool,
    /// Ring `r` at index `r`: receive rings even, transmit rings odd.
    queues: Vec<Queue>,
}

fn required(kind: RingKind) -> u64 {
    feature::VERSION_1
        | match kind {
            RingKind::Split => 0,
            RingKind::Packed => feature::RING_PACKED,
        }
}

const OPTIONAL: u64 = feature::MRG_RXBUF | feature::EVENT_IDX | feature::MQ;

impl Rig {
    fn up(kind: RingKind, pairs: u16, cfg: NetBackendConfig) -> Rig {
        let dir = temp_dir();
        let path = dir.as_path().join("net0.sock");
        let backend = TestNetBackend::listen(&path, cfg).unwrap();
        let mut dev = VhostUserDevice::connect(&path).unwrap();
        let features = dev.negotiate(required(kind), OPTIONAL).unwrap();
        assert_eq!(
            features & feature::RING_PACKED != 0,
            kind == RingKind::Packed
        );
        let event_idx = features & feature::EVENT_IDX != 0;
        let pool = shareable_pool();
        let rings: Vec<_> = (0..2 * pairs).map(|_| new_ring(kind, event_idx)).collect();
        let mut table = vec![pool.region().fd_region().unwrap()];
        table.extend(rings.iter().map(|(_, _, s)| s.entry()));
        dev.set_mem_table(&table).unwrap();
        drop(table);
        let queues = rings
            .into_iter()
            .enumerate()
            .map(|(r, (vq, setup, _))| Queue {
                vq,
                bell: dev.setup_vring(r as u16, &setup).unwrap(),
            })
            .collect();
        Rig {
            _dir: dir,
            backend,
            dev,
            pool,
            queues,
        }
    }

    fn wait(&self, done: impl Fn(&BackendStats) -> bool) -> BackendStats {
        let stats = self.backend.wait_for(LIMIT, done);
        assert_eq!(self.backend.error(), None);
        stats
    }
}

/// A 60-byte frame that says where it was sent.
fn frame(pair: u8, n: u8) -> Vec<u8> {
    let mut f = vec![
        0x02, 0, 0, 0, pair, n, 0x02, 0, 0, 0, 0xff, pair, 0x88, 0xb5,
    ];
    f.extend((0..46).map(|i| i ^ n ^ (pair << 4)));
    f
}

/// The virtio-net header the backend writes: no offloads, one buffer.
fn rx_header() -> Vec<u8> {
    let mut h = vec![0u8; NET_HDR_LEN];
    h[10] = 1;
    h
}

fn echo_two_pairs(kind: RingKind) {
    let mut rig = Rig::up(kind, 2, NetBackendConfig::default());
    assert_eq!(
        rig.backend.acked_features() & !(1 << 30),
        required(kind) | OPTIONAL,
        "the frontend took every optional feature offered"
    );
    let pool = rig.pool.clone();
    for p in 0..2 {
        rig.queues[2 * p].post_rx(&pool, 8);
    }
    for p in 0..2u8 {
        rig.queues[2 * usize::from(p) + 1].send(&pool, &frame(p, 1));
    }
    let stats = rig.wait(|s| s.rx_frames == 2);
    assert_eq!((stats.tx_frames, stats.rx_frames, stats.dropped), (2, 2, 0));
    for p in 0..2u8 {
        let got = rig.queues[2 * usize::from(p)].received();
        assert_eq!(got, [[rx_header(), frame(p, 1)].concat()], "pair {p}");
        let sent = rig.queues[2 * usize::from(p) + 1].reap();
        assert!(matches!(&sent[..], [Used::Done(_, 0)]), "{sent:?}");
    }
    // Teardown: each ring's base is how far the backend got (one chain each; a packed
    // ring's wrap counter, still 1, in bit 15).
    let lap = if kind == RingKind::Packed { 1 << 15 } else { 0 };
    let bases = rig.dev.stop_all().unwrap();
    assert_eq!(
        bases,
        [(0, 1 | lap), (1, 1 | lap), (2, 1 | lap), (3, 1 | lap)]
    );
    drop(rig.dev);
    assert_eq!(rig.backend.join(), Ok(()));
    // Every buffer comes back: the posted receive buffers the backend never used.
    for q in &mut rig.queues {
        drop(q.vq.take_all());
    }
    assert_eq!(rig.pool.available(), rig.pool.capacity());
}

#[test]
fn frames_come_back_byte_identical_on_split_rings() {
    echo_two_pairs(RingKind::Split);
}

#[test]
fn frames_come_back_byte_identical_on_packed_rings() {
    echo_two_pairs(RingKind::Packed);
}

#[test]
fn frames_forwarded_between_queue_pairs() {
    for kind in [RingKind::Split, RingKind::Packed] {
        let cfg = NetBackendConfig {
            forward: Forward::NextPair,
            ..NetBackendConfig::default()
        };
        let mut rig = Rig::up(kind, 2, cfg);
        let pool = rig.pool.clone();
        rig.queues[0].post_rx(&pool, 4);
        rig.queues[2].post_rx(&pool, 4);
        // Many frames from pair 0, through a ring that wraps (64 entries, 100 frames).
        for n in 0..100u8 {
            rig.queues[1].send(&pool, &frame(0, n));
            if n % 4 == 3 {
                // Four at a time: as many as pair 1 has receive buffers for.
                rig.wait(|s| s.rx_frames == u64::from(n) + 1);
                let got = rig.queues[2].received();
                let want: Vec<_> = (n - 3..=n)
                    .map(|i| [rx_header(), frame(0, i)].concat())
                    .collect();
                assert_eq!(got, want, "{kind} frames {}..={n}", n - 3);
                rig.queues[2].post_rx(&pool, 4);
                assert_eq!(rig.queues[1].reap().len(), 4);
            }
        }
        assert!(
            rig.queues[0].received().is_empty(),
            "{kind}: nothing echoed"
        );
        let stats = rig.backend.stats();
        assert_eq!(
            (stats.tx_frames, stats.rx_frames, stats.dropped),
            (100, 100, 0)
        );
        rig.dev.stop_all().unwrap();
    }
}

#[test]
fn no_socket_is_an_error_naming_the_path() {
    let dir = temp_dir();
    let path = dir.as_path().join("absent.sock");
    let e = VhostUserDevice::connect(&path).unwrap_err();
    assert!(
        matches!(&e, VhostUserError::NoBackend { path: p, .. } if *p == path),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(msg.contains("start the backend first"), "{msg}");

    // A socket file whose backend has gone: nobody accepts.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let e = VhostUserDevice::connect(&path).unwrap_err();
    assert!(matches!(e, VhostUserError::NoBackend { .. }), "{e:?}");
}

fn backend_at(cfg: NetBackendConfig) -> (TempDir, PathBuf, TestNetBackend) {
    let dir = temp_dir();
    let path = dir.as_path().join("net0.sock");
    let backend = TestNetBackend::listen(&path, cfg).unwrap();
    (dir, path, backend)
}

#[test]
fn refused_features_are_named() {
    let (_dir, path, _backend) = backend_at(NetBackendConfig {
        features: feature::VERSION_1 | feature::MRG_RXBUF,
        ..NetBackendConfig::default()
    });
    let mut dev = VhostUserDevice::connect(&path).unwrap();
    assert_eq!(
        dev.device_features(),
        feature::VERSION_1 | feature::MRG_RXBUF
    );
    let e = dev
        .negotiate(feature::VERSION_1 | feature::RING_PACKED | feature::MQ, 0)
        .unwrap_err();
    match &e {
        VhostUserError::FeaturesRefused {
            missing, offered, ..
        } => {
            assert_eq!(*missing, feature::RING_PACKED | feature::MQ);
            assert_eq!(*offered, feature::VERSION_1 | feature::MRG_RXBUF);
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("required features MQ|RING_PACKED"), "{msg}");
    assert!(msg.contains("it offers MRG_RXBUF|VERSION_1"), "{msg}");
    assert_eq!(dev.features(), 0, "nothing was set");
}

#[test]
fn protocol_features_and_queue_count() {
    let (_dir, path, _backend) = backend_at(NetBackendConfig::default());
    let dev = VhostUserDevice::connect(&path).unwrap();
    let want = VhostUserProtocolFeatures::REPLY_ACK
        | VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS;
    assert_eq!(dev.protocol_features(), want);
    assert_eq!(dev.device_protocol_features(), want);
    // rust-vmm's backend counts rings.
    assert_eq!(dev.queue_num(), Some(4));
}

#[test]
fn ring_indices_and_states_are_checked() {
    let mut rig = Rig::up(RingKind::Split, 1, NetBackendConfig::default());
    let (_, setup, _) = new_ring(RingKind::Split, false);
    let e = rig.dev.setup_vring(0, &setup).unwrap_err();
    assert!(
        matches!(
            e,
            VhostUserError::Ring {
                ring: 0,
                why: RingFault::AlreadySetUp,
                ..
            }
        ),
        "{e:?}"
    );
    let e = rig.dev.setup_vring(8, &setup).unwrap_err();
    assert!(
        matches!(
            e,
            VhostUserError::Ring {
                ring: 8,
                why: RingFault::OutOfRange { queue_num: 4 },
                ..
            }
        ),
        "{e:?}"
    );
    let bad = VringSetup { size: 0, ..setup };
    let e = rig.dev.setup_vring(2, &bad).unwrap_err();
    assert!(
        matches!(
            e,
            VhostUserError::Ring {
                why: RingFault::BadSize { size: 0 },
                ..
            }
        ),
        "{e:?}"
    );
    let e = rig.dev.stop_vring(3).unwrap_err();
    assert!(
        matches!(
            e,
            VhostUserError::Ring {
                ring: 3,
                why: RingFault::NotSetUp,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(rig.dev.doorbell(1).is_some() && rig.dev.doorbell(2).is_none());
    // Queue pairs are switched off and on by ring enables.
    rig.dev.enable_vring(0, false).unwrap();
    rig.dev.enable_vring(0, true).unwrap();
    assert_eq!(rig.dev.stop_vring(1).unwrap(), 0);
    assert!(!rig.dev.is_set_up(1));
    assert_eq!(rig.dev.stop_all().unwrap(), [(0, 0)]);
}

#[test]
fn a_backend_that_goes_away_is_reported_as_gone() {
    for kind in [RingKind::Split, RingKind::Packed] {
        let mut rig = Rig::up(kind, 2, NetBackendConfig::default());
        let pool = rig.pool.clone();
        rig.queues[0].post_rx(&pool, 2);
        rig.backend.disconnect();
        // The datapath does not notice: a kick is an eventfd write.
        rig.queues[1].send(&pool, &frame(0, 0));
        let e = rig.dev.stop_all().unwrap_err();
        assert!(e.is_disconnect(), "{kind}: {e:?}");
        assert!(
            e.to_string().contains("has gone away (SET_VRING_ENABLE)"),
            "{kind}: {e}"
        );
        assert!(
            (0..4).all(|r| !rig.dev.is_set_up(r)),
            "{kind}: all rings stopped here"
        );
        assert_eq!(rig.backend.join(), Ok(()));
        for q in &mut rig.queues {
            drop(q.vq.take_all());
        }
        assert_eq!(pool.available(), pool.capacity());
    }
}

#[test]
fn a_lying_backend_is_caught_by_the_ring() {
    for kind in [RingKind::Split, RingKind::Packed] {
        let mut rig = Rig::up(kind, 1, NetBackendConfig::default());
        let pool = rig.pool.clone();
        rig.queues[0].post_rx(&pool, 1);
        rig.backend.lie(Lie::BadId);
        rig.queues[1].send(&pool, &frame(0, 0));
        rig.wait(|s| s.lies == 1);
        let used = rig.queues[0].reap();
        assert!(
            matches!(&used[..], [Used::BadId(id)] if *id == u32::from(RING) + 3),
            "{kind}: {used:?}"
        );

        rig.queues[0].post_rx(&pool, 1);
        rig.backend.lie(Lie::BadLen);
        rig.queues[1].send(&pool, &frame(0, 1));
        rig.wait(|s| s.lies == 2);
        let used = rig.queues[0].reap();
        let posted = (pool.buf_len() - pool.headroom() + NET_HDR_LEN) as u32;
        assert!(
            matches!(&used[..], [Used::BadLen(_, len)] if *len == posted + 1000),
            "{kind}: {used:?}"
        );
        let stats = rig.backend.stats();
        assert_eq!(
            (stats.tx_frames, stats.rx_frames, stats.lies),
            (2, 2, 2),
            "{kind}"
        );
        rig.dev.stop_all().unwrap();
    }
}

#[test]
fn memory_tables_beyond_eight_regions() {
    let regions: Vec<DmaRegion> = (0..MEM_TABLE_REGIONS + 1)
        .map(|_| DmaRegion::shareable(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap())
        .collect();
    let all: Vec<&DmaRegion> = regions.iter().collect();

    // With CONFIGURE_MEM_SLOTS: one ADD_MEM_REG each.
    let (_dir, path, backend) = backend_at(NetBackendConfig::default());
    let mut dev = VhostUserDevice::connect(&path).unwrap();
    dev.negotiate(feature::VERSION_1, 0).unwrap();
    dev.set_memory(&all).unwrap();
    assert_eq!(backend.stats().mem_updates, 9);

    // Without it: refused here, before anything is sent.
    let (_dir, path, backend) = backend_at(NetBackendConfig {
        protocol: VhostUserProtocolFeatures::REPLY_ACK | VhostUserProtocolFeatures::MQ,
        ..NetBackendConfig::default()
    });
    let mut dev = VhostUserDevice::connect(&path).unwrap();
    dev.negotiate(feature::VERSION_1, 0).unwrap();
    let e = dev.set_memory(&all).unwrap_err();
    assert!(
        matches!(
            e,
            VhostUserError::TooManyRegions {
                count: 9,
                max: 8,
                ..
            }
        ),
        "{e:?}"
    );
    dev.set_memory(&all[..8]).unwrap();
    assert_eq!(backend.stats().mem_updates, 1, "one SET_MEM_TABLE");

    // Anonymous memory cannot be in the table.
    let anon = DmaRegion::identity(4096, PageSize::Size4K, HugePagePolicy::Never).unwrap();
    let e = dev.set_memory(&[all[0], &anon]).unwrap_err();
    assert!(
        matches!(e, VhostUserError::NotShareable { index: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("MemfdMapper"), "{e}");
}

/// Against an external backend that forwards the port to itself (DPDK's vhost PMD under
/// testpmd, io forwarding, one port; `bench/vhost/interop-testpmd.sh` runs it so in CI):
/// `SLUICE_VHOST_PEER=/tmp/x.sock SLUICE_VHOST_RING=packed cargo test -p sluice-pmd --lib
/// external_peer -- --nocapture`.
#[test]
fn external_peer() {
    let Ok(path) = std::env::var("SLUICE_VHOST_PEER") else {
        println!("skipped: SLUICE_VHOST_PEER names no socket");
        return;
    };
    let kind = match std::env::var("SLUICE_VHOST_RING").as_deref() {
        Ok("packed") => RingKind::Packed,
        Ok("split") | Err(_) => RingKind::Split,
        Ok(other) => panic!("SLUICE_VHOST_RING={other}: give split or packed"),
    };
    let mut dev = VhostUserDevice::connect(&path).unwrap();
    println!(
        "offered {:#x} {}",
        dev.device_features(),
        feature::names(dev.device_features())
    );
    println!(
        "protocol offered {:?}, in use {:?}, GET_QUEUE_NUM {:?}",
        dev.device_protocol_features(),
        dev.protocol_features(),
        dev.queue_num()
    );
    let features = dev.negotiate(required(kind), OPTIONAL).unwrap();
    println!("accepted {features:#x} {}", feature::names(features));
    let event_idx = features & feature::EVENT_IDX != 0;
    let pool = shareable_pool();
    let rings: Vec<_> = (0..2).map(|_| new_ring(kind, event_idx)).collect();
    let mut table = vec![pool.region().fd_region().unwrap()];
    table.extend(rings.iter().map(|(_, _, s)| s.entry()));
    dev.set_mem_table(&table).unwrap();
    drop(table);
    let mut queues: Vec<Queue> = rings
        .into_iter()
        .enumerate()
        .map(|(r, (vq, setup, _))| Queue {
            vq,
            bell: dev.setup_vring(r as u16, &setup).unwrap(),
        })
        .collect();
    queues[0].post_rx(&pool, 32);
    let sent: Vec<Vec<u8>> = (0..8).map(|n| frame(0, n)).collect();
    for f in &sent {
        queues[1].send(&pool, f);
    }
    let mut got = Vec::new();
    // Bounded, not timed: the peer forwards as soon as it polls, LIMIT only ends a hang.
    let deadline = std::time::Instant::now() + LIMIT;
    while got.len() < sent.len() && std::time::Instant::now() < deadline {
        got.extend(queues[0].received());
        std::thread::yield_now();
    }
    assert_eq!(
        got.len(),
        sent.len(),
        "{path}: the peer returned {} of {} frames within {LIMIT:?} (is it forwarding the \
         port to itself, e.g. testpmd io forwarding with one port, started?)",
        got.len(),
        sent.len()
    );
    let frames: Vec<&[u8]> = got.iter().map(|g| &g[NET_HDR_LEN..]).collect();
    assert_eq!(frames, sent.iter().map(Vec::as_slice).collect::<Vec<_>>());
    println!("header of the first: {:?}", &got[0][..NET_HDR_LEN]);
    println!("{kind}: {} frames back byte-identical", got.len());
    println!("bases {:?}", dev.stop_all().unwrap());
}
