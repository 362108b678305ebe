//! `--tx-first N`: before the forwarding lcores start, each of their tx queues is handed N
//! bursts of 64-byte frames, as testpmd's `start tx_first N` does, so that a loop with no
//! generator (a port forwarding to itself against a reflecting peer) has traffic to carry.

use sluice_pmd::net::TxQueue;
use sluice_pmd::net::any::AnyTxQueue;
use sluice_pmd::{Batch, PktBuf, PktPool};

use crate::traffic::frame;

/// Frames per seeding burst (testpmd's default burst).
pub const SEED_BURST: usize = 32;

/// What seeding one tx queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Frames the queue accepted.
    pub sent: u64,
    /// Frames built but refused by a full queue (freed, as testpmd frees them).
    pub refused: u64,
    /// Frames not built because the pool ran dry.
    pub no_buffers: u64,
}

/// Sends `bursts` bursts of [`SEED_BURST`] sequence-stamped 64-byte frames from `mac` to
/// `mac` on `tx`, each burst offered once.
pub fn seed(tx: &mut AnyTxQueue, pool: &PktPool, bursts: u32, mac: [u8; 6]) -> Seeded {
    let template = frame::template(frame::MIN_FRAME, mac, mac);
    let mut out = Seeded::default();
    let mut batch: Batch<PktBuf, SEED_BURST> = Batch::new();
    let mut seq = 0u64;
    for _ in 0..bursts {
        let got = pool.alloc_burst(&mut batch, SEED_BURST);
        out.no_buffers += (SEED_BURST - got) as u64;
        for p in batch.iter_mut() {
            if let Some(buf) = p.append(template.len()) {
                buf.copy_from_slice(&template);
                frame::stamp(buf, seq, 0, 0);
            }
            seq += 1;
        }
        out.sent += tx.tx_burst(&mut batch) as u64;
        out.refused += batch.len() as u64;
        PktBuf::free_bulk(&mut batch);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_mempool::{HugePagePolicy, IdentityMapper, PageSize, PktPoolConfig};
    use sluice_pmd::net::any::AnyPort;
    use sluice_pmd::net::{NetPort, RxQueue};
    use sluice_pmd::soft::ring_port::{RingPairConfig, ring_pair};

    use super::*;

    fn pool(count: u32) -> PktPool {
        let mut cfg = PktPoolConfig::new("seed", count);
        (cfg.page_size, cfg.huge_pages) = (PageSize::Size4K, HugePagePolicy::Never);
        cfg.cache_size = 0;
        PktPool::new(&cfg, Arc::new(IdentityMapper)).unwrap()
    }

    #[test]
    fn seeds_whole_bursts_of_parseable_frames_and_frees_what_does_not_fit() {
        let rings = RingPairConfig {
            ring_size: 64,
            ..RingPairConfig::default()
        };
        let (a, b) = ring_pair("a", "b", &rings).unwrap();
        let (mut a, mut b) = (AnyPort::Ring(a), AnyPort::Ring(b));
        let mut tx = a.take_queues().unwrap().tx.remove(0);
        let mut rx = b.take_queues().unwrap().rx.remove(0);
        let pool = pool(1023);
        let mac = [2, 0, 0, 0, 0, 1];

        // Three bursts into a ring of 64: two fit, the third is refused and freed.
        let s = seed(&mut tx, &pool, 3, mac);
        assert_eq!((s.sent, s.refused, s.no_buffers), (64, 32, 0));
        assert_eq!(pool.available(), 1023 - 64);

        let mut got: Batch<PktBuf, 64> = Batch::new();
        assert_eq!(rx.rx_burst(&mut got), 64);
        for (i, p) in got.iter().enumerate() {
            let f = frame::parse(p.data()).expect("an intact frame");
            assert_eq!(f.seq, i as u64);
            assert_eq!(p.len(), frame::MIN_FRAME - frame::FCS);
            assert_eq!((&p.data()[..6], &p.data()[6..12]), (&mac[..], &mac[..]));
        }
        PktBuf::free_bulk(&mut got);
        assert_eq!(pool.available(), 1023);
    }
}
