//! The burst paths against a test that plays the kernel on the other view of the same ring
//! memory (`RingMap::pair`): well-behaved and misbehaving "kernels", no socket needed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_mempool::{Batch, HugePagePolicy, IdentityMapper, PageSize, PktBuf, PktPool};

use super::ring::{ConsRing, ProdRing};
use super::rx::AfXdpRxQueue;
use super::sys::{RingEntry, RingMap, XdpDesc};
use super::tx::AfXdpTxQueue;
use super::umem::{ChunkTable, Umem, XDP_PACKET_HEADROOM};
use super::xsk::Xsk;
use crate::PktPoolConfig;
use crate::net::{QueueCounters, RxQueue, TxQueue};

fn small_pages(name: &str, count: u32) -> PktPoolConfig {
    let mut cfg = PktPoolConfig::new(name, count);
    cfg.page_size = PageSize::Size4K;
    cfg.huge_pages = HugePagePolicy::Never;
    cfg.cache_size = 0;
    cfg
}

fn fake_socket(umem: &Arc<Umem>) -> Arc<Xsk> {
    let devnull = std::fs::File::open("/dev/null").unwrap();
    Arc::new(Xsk::fake(devnull.into(), umem.clone()))
}

/// The kernel consuming up to `n` entries of a ring user space produces.
fn kernel_take<E: RingEntry>(ring: &RingMap<E>, n: u32) -> Vec<E> {
    let cons = ring.consumer().load(Ordering::Relaxed);
    let prod = ring.producer().load(Ordering::Acquire);
    let n = n.min(prod.wrapping_sub(cons));
    let v = (0..n).map(|i| ring.read(cons.wrapping_add(i))).collect();
    ring.consumer()
        .store(cons.wrapping_add(n), Ordering::Release);
    v
}

/// The kernel producing `entries` on a ring user space consumes.
fn kernel_put<E: RingEntry>(ring: &mut RingMap<E>, entries: &[E]) {
    let prod = ring.producer().load(Ordering::Relaxed);
    for (i, e) in entries.iter().enumerate() {
        ring.write(prod.wrapping_add(i as u32), *e);
    }
    ring.producer()
        .store(prod.wrapping_add(entries.len() as u32), Ordering::Release);
}

fn desc(addr: u64, len: u32) -> XdpDesc {
    XdpDesc {
        addr,
        len,
        options: 0,
    }
}

#[test]
fn rx_takes_good_frames_and_counts_bad_descriptors_without_following_them() {
    let umem = Umem::new(&small_pages("rx", 64), 2048).unwrap();
    let (fill_user, fill_k) = RingMap::<u64>::pair(16).unwrap();
    let (rx_user, mut rx_k) = RingMap::<XdpDesc>::pair(16).unwrap();
    let counters = Arc::new(QueueCounters::default());
    let mut fill = ProdRing::new(fill_user);
    let mut table = ChunkTable::new(umem.geometry());
    AfXdpRxQueue::prime(&mut fill, &mut table, umem.pool(), &counters);
    let mut q = AfXdpRxQueue::new(
        fake_socket(&umem),
        fill,
        ConsRing::new(rx_user),
        table,
        counters.clone(),
        3,
        0,
    );

    let posted = kernel_take(&fill_k, 64);
    assert_eq!(posted.len(), 16, "FILL primed to its size");
    assert!(posted.iter().all(|a| a % 2048 == 0));
    let unposted = (0..64u64)
        .map(|c| c * 2048)
        .find(|a| !posted.contains(a))
        .unwrap();
    let h = XDP_PACKET_HEADROOM as u64;
    kernel_put(
        &mut rx_k,
        &[
            desc(posted[0] + h, 60),
            desc(u64::MAX - 5, 60), // beyond the UMEM
            desc(posted[1] + h, 1000),
            desc(unposted + h, 60),    // a chunk we never posted
            desc(posted[2] + h, 1793), // runs past the chunk
            desc(posted[3] + h, 64),
        ],
    );
    let mut out: Batch<PktBuf> = Batch::new();
    assert_eq!(q.rx_burst(&mut out), 3);
    let lens: Vec<_> = out.as_slice().iter().map(|p| p.len()).collect();
    assert_eq!(lens, [60, 1000, 64]);
    assert!(
        out.as_slice()
            .iter()
            .all(|p| p.meta().port == 3 && p.headroom() == 256)
    );
    let s = counters.snapshot();
    assert_eq!((s.packets, s.bytes, s.errors), (3, 1124, 3));
    // The RX ring was released in full.
    assert_eq!(rx_k.consumer().load(Ordering::Acquire), 6);

    // A wild producer index: at most a burst is read, each entry checked; nothing panics.
    let cons = rx_k.consumer().load(Ordering::Relaxed);
    rx_k.producer()
        .store(cons.wrapping_add(1_000_000), Ordering::Release);
    let mut more: Batch<PktBuf> = Batch::new();
    q.rx_burst(&mut more);
    assert!(counters.snapshot().errors > 3);

    drop((out, more, q));
    assert_eq!(
        umem.pool().available(),
        64,
        "every buffer back once the socket is gone"
    );
}

#[test]
fn tx_sends_in_place_copies_foreign_buffers_and_checks_completions() {
    let umem = Umem::new(&small_pages("tx", 64), 2048).unwrap();
    let foreign = PktPool::new(&small_pages("foreign", 8), Arc::new(IdentityMapper)).unwrap();
    let (tx_user, tx_k) = RingMap::<XdpDesc>::pair(8).unwrap();
    let (comp_user, mut comp_k) = RingMap::<u64>::pair(8).unwrap();
    let counters = Arc::new(QueueCounters::default());
    let mut q = AfXdpTxQueue::new(
        fake_socket(&umem),
        ProdRing::new(tx_user),
        ConsRing::new(comp_user),
        ChunkTable::new(umem.geometry()),
        counters.clone(),
        0,
    );

    let mut batch: Batch<PktBuf> = Batch::new();
    for i in 0..10u8 {
        let pool = if i == 2 { &foreign } else { umem.pool() };
        let mut p = pool.alloc().unwrap();
        p.extend_from_slice(&[i; 60]).unwrap();
        batch.push(p).unwrap();
    }
    let region = umem.pool().region().as_ptr().as_ptr() as usize;
    let in_place = batch.as_slice()[0].buf_ptr() as usize - region;
    assert_eq!(q.tx_burst(&mut batch), 8, "the TX ring holds 8");
    assert_eq!(batch.len(), 2);
    assert_eq!(
        foreign.available(),
        8,
        "the foreign buffer was copied and dropped"
    );
    let sent = kernel_take(&tx_k, 8);
    assert_eq!(sent.len(), 8);
    assert_eq!(sent[0], desc(in_place as u64 + 256, 60));
    assert!(sent.iter().all(|d| d.len == 60 && d.addr % 2048 == 256));
    let s = counters.snapshot();
    assert_eq!((s.packets, s.bytes, s.full, s.errors), (8, 480, 1, 0));

    // The kernel completes five, plus an address it never got.
    let mut done: Vec<u64> = sent[..5].iter().map(|d| d.addr).collect();
    done.push(u64::MAX);
    kernel_put(&mut comp_k, &done);
    assert_eq!(q.tx_burst(&mut batch), 2);
    assert_eq!(q.in_flight(), 8 - 5 + 2);
    assert_eq!(counters.snapshot().errors, 1);

    let rest: Vec<u64> = sent[5..]
        .iter()
        .chain(kernel_take(&tx_k, 8).iter())
        .map(|d| d.addr)
        .collect();
    kernel_put(&mut comp_k, &rest);
    q.flush();
    assert_eq!(q.in_flight(), 0);
    drop(q);
    assert_eq!(umem.pool().available(), 64);
}
