use super::*;
use sluice_mempool::{HugePagePolicy, IdentityMapper, PageSize, PktPool, PktPoolConfig};

fn pool(n: u32) -> PktPool {
    let mut cfg = PktPoolConfig::new("ring-port-test", n);
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    cfg.cache_size = 0;
    PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
}

fn filled(pool: &PktPool, n: usize, tag: u8) -> Batch<PktBuf> {
    let mut b = Batch::new();
    assert!(pool.alloc_bulk(&mut b, n));
    for (i, p) in b.iter_mut().enumerate() {
        p.extend_from_slice(&[tag, i as u8, 0, 0]).unwrap();
    }
    b
}

#[test]
fn what_one_side_sends_the_other_receives_zero_copy() {
    let pool = pool(64);
    let (mut a, mut b) = ring_pair(
        "a",
        "b",
        &RingPairConfig {
            queues: 2,
            ring_size: 16,
            port_ids: (4, 5),
        },
    )
    .unwrap();
    let Queues {
        rx: mut a_rx,
        tx: mut a_tx,
    } = a.take_queues().unwrap();
    let Queues {
        rx: mut b_rx,
        tx: mut b_tx,
    } = b.take_queues().unwrap();
    assert!(a.take_queues().is_none(), "queues are handed out once");

    let mut out = filled(&pool, 5, 0xa1);
    let addrs: Vec<_> = out.iter().map(|p| p.buf_ptr()).collect();
    assert_eq!(a_tx[1].tx_burst(&mut out), 5);
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(
        b_rx[0].rx_burst(&mut got),
        0,
        "queue 1 is wired to queue 1 only"
    );
    assert_eq!(b_rx[1].rx_burst(&mut got), 5);
    assert_eq!(
        got.iter().map(|p| p.buf_ptr()).collect::<Vec<_>>(),
        addrs,
        "the same buffers, in order"
    );
    assert!(
        got.iter()
            .all(|p| p.meta().port == 5 && p.meta().queue == 1)
    );

    // And back the other way.
    assert_eq!(b_tx[1].tx_burst(&mut got), 5);
    assert_eq!(a_rx[1].rx_burst(&mut got), 5);
    assert_eq!(got[0].data(), &[0xa1, 0, 0, 0]);

    let s = a.counters();
    assert_eq!(s.tx[1].snapshot().packets, 5);
    assert_eq!(s.tx[1].snapshot().bytes, 20);
    assert_eq!(s.rx_total().packets, 5);
    assert_eq!(b.info().driver, "ring");
    assert_eq!(a.link(), LinkStatus::Up { speed_mbps: None });
}

#[test]
fn a_full_ring_takes_a_prefix_and_leaves_the_rest() {
    let pool = pool(64);
    let (mut a, mut b) = ring_pair(
        "a",
        "b",
        &RingPairConfig {
            queues: 1,
            ring_size: 8,
            port_ids: (0, 1),
        },
    )
    .unwrap();
    let mut tx = a.take_queues().unwrap().tx;
    let mut rx = b.take_queues().unwrap().rx;
    let mut out = filled(&pool, 12, 1);
    assert_eq!(tx[0].tx_burst(&mut out), 8);
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].data()[1], 8, "the unsent suffix, in order");
    let s = tx[0].counters().snapshot();
    assert_eq!((s.packets, s.bytes, s.full), (8, 32, 1));
    let mut got: Batch<PktBuf> = Batch::new();
    assert_eq!(rx[0].rx_burst(&mut got), 8);
    drop((got, out));
    assert_eq!(pool.available(), 64);
}

#[test]
fn buffers_left_in_rings_return_to_the_pool() {
    let pool = pool(16);
    {
        let (mut a, _b) = ring_pair("a", "b", &RingPairConfig::default()).unwrap();
        let mut tx = a.take_queues().unwrap().tx;
        let mut out = filled(&pool, 10, 2);
        tx[0].tx_burst(&mut out);
        assert_eq!(pool.available(), 6);
    }
    assert_eq!(pool.available(), 16);
}

#[test]
fn bad_shapes_are_refused_with_the_port_named() {
    let e = ring_pair(
        "p0",
        "p1",
        &RingPairConfig {
            queues: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "port p0: invalid queues: 0");
    let e = ring_pair(
        "p0",
        "p1",
        &RingPairConfig {
            ring_size: 1000,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("1000"));
}
