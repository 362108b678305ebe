//! DESIGN.md §5 targets, checked against figures from the same run. A comparison printed
//! next to the figures, not an assertion: the bench never fails because a target is missed.

use crate::table::{Table, ns};

/// Figures from this run that the targets refer to (ns per object; `None`: not measured).
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Sluice ring, slice API, burst 32, two cores.
    pub sluice_ring32: Option<f64>,
    /// Sluice ring, in-place API, burst 32, two cores.
    pub sluice_in_place32: Option<f64>,
    /// `rtrb` chunk API, burst 32.
    pub rtrb32: Option<f64>,
    /// `ringbuf` slice API, burst 32.
    pub ringbuf32: Option<f64>,
    /// `ArrayQueue`, 32 single pushes/pops.
    pub array_queue32: Option<f64>,
    /// DPDK `rte_ring` SP/SC bulk 32 (the peer program).
    pub rte_ring_bulk32: Option<f64>,
    /// Sluice `Mempool` bulk-32 get+put with the lcore cache.
    pub sluice_mempool32: Option<f64>,
    /// DPDK `rte_mempool` bulk-32 get+put with cache.
    pub rte_mempool32: Option<f64>,
    /// Sluice `PktPool` bulk-32 alloc+free with the lcore cache.
    pub sluice_pool32: Option<f64>,
    /// DPDK `rte_pktmbuf` bulk-32 alloc+free with cache.
    pub rte_pktmbuf32: Option<f64>,
    /// One `PktPool::alloc` + drop with the lcore cache.
    pub pktbuf_alloc_drop: Option<f64>,
}

/// One row of the targets table.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What is compared.
    pub what: &'static str,
    /// Sluice's figure.
    pub ours: Option<f64>,
    /// The bar it is held to, in words with its figure.
    pub bar: String,
    /// `None` when either side is missing.
    pub met: Option<bool>,
}

fn faster_than(what: &'static str, ours: Option<f64>, name: &str, peer: Option<f64>) -> Verdict {
    Verdict {
        what,
        ours,
        bar: format!("< {name} {}", ns(peer)),
        met: ours.zip(peer).map(|(a, b)| a < b),
    }
}

fn within_2x(what: &'static str, ours: Option<f64>, name: &str, peer: Option<f64>) -> Verdict {
    Verdict {
        what,
        ours,
        bar: format!("<= 2x {name} {} = {}", ns(peer), ns(peer.map(|v| 2.0 * v))),
        met: ours.zip(peer).map(|(a, b)| a <= 2.0 * b),
    }
}

/// Every target of DESIGN.md §5 this bench can check.
pub fn evaluate(f: &Figures) -> Vec<Verdict> {
    // Like for like: in place against rtrb's in-place chunks, slices against the others
    // (ringbuf's slices, DPDK's bulk copies from a pointer array).
    let ring = "ring burst 32, slice";
    let in_place = "ring burst 32, in place";
    vec![
        faster_than(in_place, f.sluice_in_place32, "rtrb", f.rtrb32),
        faster_than(ring, f.sluice_ring32, "ringbuf", f.ringbuf32),
        faster_than(ring, f.sluice_ring32, "ArrayQueue", f.array_queue32),
        faster_than(
            ring,
            f.sluice_ring32,
            "rte_ring SP/SC bulk",
            f.rte_ring_bulk32,
        ),
        Verdict {
            what: ring,
            ours: f.sluice_ring32,
            bar: "< 2.50 (aim)".into(),
            met: f.sluice_ring32.map(|v| v < 2.5),
        },
        Verdict {
            what: in_place,
            ours: f.sluice_in_place32,
            bar: format!(
                ">= 1.3x rtrb (is {})",
                f.rtrb32
                    .zip(f.sluice_in_place32)
                    .map_or("n/a".into(), |(r, s)| format!("{:.2}x", r / s))
            ),
            met: f.rtrb32.zip(f.sluice_in_place32).map(|(r, s)| r / s >= 1.3),
        },
        within_2x(
            "Mempool bulk 32, cache",
            f.sluice_mempool32,
            "rte_mempool",
            f.rte_mempool32,
        ),
        within_2x(
            "PktPool bulk 32, cache",
            f.sluice_pool32,
            "rte_pktmbuf",
            f.rte_pktmbuf32,
        ),
        Verdict {
            what: "PktBuf alloc + drop, cache",
            ours: f.pktbuf_alloc_drop,
            bar: "< 10.00".into(),
            met: f.pktbuf_alloc_drop.map(|v| v < 10.0),
        },
    ]
}

/// The targets as a table.
pub fn render(verdicts: &[Verdict]) -> String {
    let mut t = Table::new(["target (ns/obj)", "sluice", "bar", "met?"]);
    for v in verdicts {
        let met = match v.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "n/a",
        };
        t.row([
            v.what.to_string(),
            ns(v.ours),
            v.bar.clone(),
            met.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_peers_give_no_verdict_and_present_ones_compare() {
        let f = Figures {
            sluice_ring32: Some(2.0),
            sluice_in_place32: Some(2.0),
            rtrb32: Some(3.4),
            ..Figures::default()
        };
        let v = evaluate(&f);
        assert_eq!(v[0].met, Some(true));
        assert_eq!(v[1].met, None, "ringbuf not measured");
        assert_eq!(v[4].met, Some(true), "under 2.5");
        assert_eq!(v[5].met, Some(true), "1.7x rtrb");
        assert_eq!(v[7].met, None);
    }
}
