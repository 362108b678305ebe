//! Which cores the benchmark threads run on.

use core_affinity::CoreId;

/// The two cores of a producer/consumer pair (lcore A and lcore B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorePair {
    /// Where the producer (or lcore A, the allocating side) runs.
    pub producer: usize,
    /// Where the consumer (or lcore B, the freeing side) runs.
    pub consumer: usize,
}

impl CorePair {
    /// The first two cores this process may run on; both the same core if it has only one.
    pub fn detect() -> Self {
        let ids: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let producer = ids.first().copied().unwrap_or(0);
        let consumer = ids.get(1).copied().unwrap_or(producer);
        Self { producer, consumer }
    }

    /// Whether the two sides really own a core each.
    pub fn distinct(&self) -> bool {
        self.producer != self.consumer
    }

    /// One line for the report header.
    pub fn describe(&self) -> String {
        if self.distinct() {
            format!(
                "producer / lcore A pinned to core {}, consumer / lcore B pinned to core {}",
                self.producer, self.consumer
            )
        } else {
            format!(
                "only one core available: producer and consumer both pinned to core {} \
                 (two-core figures are not meaningful)",
                self.producer
            )
        }
    }
}

/// Pins the calling thread to `core`. A failure (no such core, restricted affinity) is
/// reported once on stderr and the run goes on unpinned rather than aborting.
pub fn pin_current(core: usize) {
    if !core_affinity::set_for_current(CoreId { id: core }) {
        eprintln!("warning: could not pin a thread to core {core}; running unpinned");
    }
}
