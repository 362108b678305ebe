//! The sink against a deliberately bad wire: a task between generator and sink drops every
//! 1000th frame, corrupts every 100th and swaps neighbours every 500th; the sink's report must
//! say exactly that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_apps::traffic::{GenConfig, GenTask, SinkTask};
use sluice_dataplane::{LcoreSpec, Runtime, RuntimeConfig, Task};
use sluice_pmd::mempool::HugePagePolicy;
use sluice_pmd::net::{NetPort, RxQueue, TxQueue};
use sluice_pmd::soft::ring_port::{RingPairConfig, RingRxQueue, RingTxQueue, ring_pair};
use sluice_pmd::{Batch, IdentityMapper, PktBuf, PktPool, PktPoolConfig};

/// Receives, mangles by frame number, sends (lossless: retries until the ring takes it).
struct Mangler {
    rx: RingRxQueue,
    tx: RingTxQueue,
    n: u64,
    held: Batch<PktBuf>,
    swap: Option<PktBuf>,
}

impl Task for Mangler {
    fn poll(&mut self) -> usize {
        if !self.held.is_empty() {
            self.tx.tx_burst(&mut self.held);
            return 0;
        }
        let mut b: Batch<PktBuf> = Batch::new();
        let got = self.rx.rx_burst(&mut b);
        for mut p in b.drain() {
            self.n += 1;
            if self.n.is_multiple_of(1000) {
                continue; // lost
            }
            if self.n.is_multiple_of(100) {
                let last = p.len() - 1;
                p.data_mut()[last] ^= 0x01; // one bit in the fill pattern
            }
            if self.n % 500 == 1 {
                self.swap = Some(p); // sent after the next one
                continue;
            }
            let _ = self.held.push(p);
            if let Some(s) = self.swap.take() {
                let _ = self.held.push(s);
            }
        }
        self.tx.tx_burst(&mut self.held);
        got
    }

    fn drain(&mut self) -> bool {
        self.tx.tx_burst(&mut self.held);
        self.held.is_empty()
    }
}

#[test]
fn the_sink_reports_exact_loss_corruption_and_reordering() {
    let mut cfg = PktPoolConfig::new("sink-checks", 4096);
    cfg.huge_pages = HugePagePolicy::Never;
    let pool = PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap();
    let ring = RingPairConfig::default();
    let (mut gen_port, mut m_in) = ring_pair("gen", "m_in", &ring).unwrap();
    let (mut m_out, mut sink_port) = ring_pair("m_out", "sink", &ring).unwrap();

    let n = 100_000u64;
    let (gen_task, generator) = GenTask::<_, 32>::new(
        gen_port.take_queues().unwrap().tx.remove(0),
        pool.clone(),
        GenConfig {
            frame_size: 64,
            rate_pps: None,
            flows: 4,
            count: Some(n),
            dst_mac: [2; 6],
            src_mac: [4; 6],
        },
        1514,
    )
    .unwrap();
    let (sink_task, sink) = SinkTask::<_, 32>::new(sink_port.take_queues().unwrap().rx.remove(0));
    let mangler = Mangler {
        rx: m_in.take_queues().unwrap().rx.remove(0),
        tx: m_out.take_queues().unwrap().tx.remove(0),
        n: 0,
        held: Batch::new(),
        swap: None,
    };
    let mut rt = Runtime::new(RuntimeConfig {
        stall_timeout: None,
        stop_timeout: Duration::from_secs(120),
        pools: vec![pool.clone()],
        ..RuntimeConfig::default()
    });
    rt.spawn(LcoreSpec::unpinned("sink"), sink_task).unwrap();
    rt.spawn(LcoreSpec::unpinned("mangler"), mangler).unwrap();
    rt.spawn(LcoreSpec::unpinned("generator"), gen_task)
        .unwrap();

    let expect_arrived = n - n / 1000;
    // Lossless: every frame not dropped on purpose arrives, however slowly; only a count
    // that stands still for two minutes is a failure.
    let (mut last, mut since) = (0, Instant::now());
    while sink.received() + sink.corrupted() < expect_arrived {
        std::thread::sleep(Duration::from_millis(1));
        let now = sink.received() + sink.corrupted();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        assert!(since.elapsed() < Duration::from_secs(120), "{now} arrived");
    }
    rt.shutdown().unwrap();
    let r = sink.report().expect("the sink ended");
    assert_eq!(generator.sent(), n);
    // Every 100th corrupted, except those that were every 1000th (dropped first).
    let corrupted = n / 100 - n / 1000;
    assert_eq!(r.corrupted, corrupted);
    assert_eq!(r.received, expect_arrived - corrupted);
    // Frames 1, 501, 1001, ... went out after their successor: each arrives late once.
    // (Those also corrupted were not counted by sequence: n % 500 == 1 never hits % 100 == 0.)
    assert_eq!(r.reordered, n / 500);
    assert_eq!(r.duplicates, 0);
    // Sequence gaps: the dropped frames and the corrupted ones (whose sequence the sink
    // cannot trust), as the sink alone sees them, except the very last frame (dropped): a
    // loss at the tail leaves no gap, which is why the apps report loss as sent - received.
    assert_eq!(r.gaps, n / 1000 + corrupted - 1);
    assert_eq!(r.latency.len(), r.received);
    drop((gen_port, m_in, m_out, sink_port));
    assert_eq!(pool.available(), pool.capacity());
}
