//! Parser tests on output captured from this machine (DPDK 22.11.11).

use super::*;

const PEER_SAMPLE: &str = "\
EAL: some banner the parser must skip
SLUICE_PEER tsc_hz=2450000000 dpdk=DPDK 22.11.11
SLUICE_PEER ring mode=burst burst=32 rep=0 items=4194304 ns_per_obj=55.6861 ok=1
SLUICE_PEER ring mode=burst burst=32 rep=1 items=4194304 ns_per_obj=22.4199 ok=1
SLUICE_PEER ring mode=burst burst=32 rep=2 items=4194304 ns_per_obj=34.5715 ok=1
SLUICE_PEER ring mode=bulk burst=8 rep=0 items=4194304 ns_per_obj=20.1957 ok=0
SLUICE_PEER mempool cache=512 bulk=32 rep=0 objs=4000000 ns_per_obj=0.6592 ok=1
SLUICE_PEER mempool cache=512 bulk=32 rep=1 objs=4000000 ns_per_obj=1.6626 ok=1
SLUICE_PEER mempool cache=0 bulk=1 rep=0 objs=4000000 ns_per_obj=19.1108 ok=1
SLUICE_PEER mempool cache=0 bulk=1 rep=1 objs=garbage ns_per_obj=oops ok=1
SLUICE_PEER pktmbuf cache=512 bulk=32 rep=0 objs=4000000 ns_per_obj=1.2500 ok=1
SLUICE_PEER pktmbuf cache=512 bulk=1 rep=0 objs=4000000 ns_per_obj=9.0000 ok=0
";

#[test]
fn peer_lines_parse_into_medians() {
    let r = parse_peer_output(PEER_SAMPLE);
    assert_eq!(r.tsc_hz, Some(2_450_000_000));
    assert_eq!(r.version.as_deref(), Some("DPDK 22.11.11"));
    assert_eq!(r.ring.len(), 4);
    assert_eq!(r.ring_ns("burst", 32), Some(34.5715));
    assert_eq!(r.pool_ns(512, 32), Some((0.6592 + 1.6626) / 2.0));
    // The malformed line is skipped, not read as zero.
    assert_eq!(r.pool_ns(0, 1), Some(19.1108));
    // pktmbuf lines are their own series, not mixed into the mempool medians.
    assert_eq!(r.pktmbuf_ns(512, 32), Some(1.25));
    assert_eq!(
        r.pktmbuf_ns(512, 1),
        None,
        "a run with a failed alloc is void"
    );
    assert_eq!(r.pool.len(), 5);
}

#[test]
fn a_run_that_lost_data_voids_its_figure() {
    let r = parse_peer_output(PEER_SAMPLE);
    assert_eq!(r.ring_ns("bulk", 8), None);
    assert_eq!(r.ring_ns("bulk", 32), None, "never measured");
}

const RING_PERF_SAMPLE: &str = "\
RTE>>ring_perf_autotest

### Testing single element enq/deq ###
legacy APIs: SP/SC: single: 26.08

### Testing empty bulk deq ###
legacy APIs: SP/SC: bulk (size: 8): 11.54
legacy APIs: MP/MC: bulk (size: 8): 11.90

### Testing using two physical cores ###
legacy APIs: SP/SC: bulk (size: 8): 283.72
legacy APIs: MP/MC: bulk (size: 8): 870.78
legacy APIs: SP/SC: bulk (size: 32): 759.32
legacy APIs: MP/MC: bulk (size: 32): 84.10

### Testing using all worker nodes ###

### Testing using two physical cores ###
elem APIs: element size 16B: SP/SC: bulk (size: 8): 939.37
elem APIs: element size 16B: SP/SC: bulk (size: 32): 276.03
Test OK
RTE>>";

#[test]
fn ring_perf_reads_the_two_core_legacy_section_only() {
    let r = parse_ring_perf(RING_PERF_SAMPLE);
    assert_eq!(r.bulk8_cycles, Some(283.72));
    assert_eq!(r.bulk32_cycles, Some(759.32));
}

#[test]
fn ring_perf_without_two_cores_yields_nothing() {
    let r = parse_ring_perf("### Testing single element enq/deq ###\nTest OK\n");
    assert_eq!(r, RingPerfReference::default());
}
