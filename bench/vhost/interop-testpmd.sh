#!/usr/bin/env bash
# Interop with DPDK's vhost PMD, on the host, rootless and without hugepages (issue #11, 6b):
#
#   sluice-pktgen gen0 (virtio-user) -> SOCK0 -> [dpdk-testpmd net_vhost0 -io-> net_vhost1]
#                                     -> SOCK1 -> sink0 (virtio-user) sluice-pktgen
#
# Sluice's virtio-user frontend drives both ends of DPDK's vhost backend; testpmd io-forwards
# between them. For split and packed rings (64 B frames; SLUICE_INTEROP_SIZES for more), every frame must
# arrive exactly once, in order, with its payload intact (the sink checks sequence numbers,
# checksums and the fill pattern).
#
# Lossless whatever the load: sluice-pktgen keeps at most --max-in-flight frames between its
# generator and its sink, below the sink port's rx ring, so testpmd always finds a free rx
# descriptor for what it forwards and never drops. The sink's port is attached first, and
# testpmd starts forwarding once both vhost ports are up, with --no-flush-rx: frames the
# generator sent before that wait in the ring (testpmd's `start` would otherwise free them;
# lib.sh). Nothing here waits for a time to pass; every wait is bounded and fails with the
# logs. First, the frontend alone: pmd's `vhost_user::tests::external_peer` (built with cargo)
# against one vhost port forwarded to itself, split and packed.
#
#   bench/vhost/interop-testpmd.sh [DIR-WITH-sluice-pktgen]   (default target/release)
#
# Needs dpdk-testpmd (Debian: dpdk-dev). Stops what it starts and removes its sockets and
# DPDK runtime files on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release}
frames=${SLUICE_INTEROP_FRAMES:-100000}
queues=${SLUICE_INTEROP_QUEUES:-2}
sizes=${SLUICE_INTEROP_SIZES:-64}

command -v dpdk-testpmd >/dev/null ||
    { echo "interop-testpmd: dpdk-testpmd is missing (apt-get install dpdk-dev)" >&2; exit 1; }
[ -x "$bin/sluice-pktgen" ] ||
    { echo "interop-testpmd: $bin/sluice-pktgen is missing (cargo build --release -p sluice-apps)" >&2; exit 1; }

work=$(mktemp -d /tmp/sluice-vhost-interop.XXXXXX)
prefix=sluice-vhost-interop-$$
. bench/vhost/lib.sh
trap vhost_cleanup EXIT
trap 'exit 130' INT TERM

# One run: ring layout $1, frame size $2.
run() {
    local ring=$1 size=$2 log=$work/testpmd-$1-$2.log out=$work/pktgen-$1-$2.log
    step "$ring rings, $size B frames: $frames frames through testpmd io forwarding"
    start_testpmd_pair "$log"
    pktgen_config "$ring" > "$work/interop.toml"
    # In flight at most 512 frames: half the sink's rx ring.
    "$bin/sluice-pktgen" --config "$work/interop.toml" --tx-port gen0 --rx-port sink0 \
        --count "$frames" --frame-size "$size" --max-in-flight 512 --duration 300 \
        --core 0 > "$out" 2>&1 &
    gen=$!
    wait_for "$log" 'Port 0: link state change event' 1 "$tp" ||
        { cat "$out"; fail "net_vhost0 never came up"; }
    wait_for "$log" 'Port 1: link state change event' 1 "$tp" ||
        { cat "$out"; fail "net_vhost1 never came up"; }
    echo start >&3
    local rc=0
    wait "$gen" || rc=$?
    gen=""
    stop_testpmd
    sed -n '/Accumulated forward statistics/,/+++++*$/p' "$log" | sed -n 2,4p
    cat "$out"
    [ $rc -eq 0 ] || fail "sluice-pktgen exited $rc"
    for want in "sink:      $frames received" "lost 0, reordered 0, corrupted 0, duplicates 0" \
        "drops:     0" "pkt 8191/8191 free"; do
        grep -qF "$want" "$out" || fail "expected '$want' in sluice-pktgen's summary"
        echo "ok: $want"
    done
    local acc
    acc=$(sed -n '/Accumulated forward statistics/,$p' "$log")
    grep -qE "RX-packets: $frames +RX-dropped: 0 " <<< "$acc" ||
        fail "testpmd did not receive exactly $frames frames"
    grep -qE "TX-packets: $frames +TX-dropped: 0 " <<< "$acc" ||
        fail "testpmd did not forward exactly $frames frames"
    echo "ok: testpmd forwarded $frames, dropped 0"
}

# The frontend alone (pmd's vhost_user::tests::external_peer) against one vhost port that
# testpmd forwards to itself, ring layout $1: 8 frames back byte-identical. testpmd forwards
# from the start; the test posts its receive buffers before it sends.
peer_test() {
    local ring=$1 log=$work/testpmd-peer-$1.log out=$work/peer-$1.log
    step "$ring rings: vhost_user::tests::external_peer against testpmd (one port, io, loop)"
    start_testpmd "$log" --vdev "net_vhost0,iface=$work/peer.sock,queues=1" -- \
        --port-topology=loop
    echo start >&3
    local rc=0
    SLUICE_VHOST_PEER=$work/peer.sock SLUICE_VHOST_RING=$ring "${peer_cmd[@]}" > "$out" 2>&1 ||
        rc=$?
    stop_testpmd
    grep -E "^(offered|accepted|$ring:)" "$out" || true
    [ $rc -eq 0 ] || { cat "$out"; fail "external_peer failed ($ring)"; }
    grep -qF "$ring: 8 frames back byte-identical" "$out" ||
        { cat "$out"; fail "external_peer did not run ($ring)"; }
    echo "ok: external_peer ($ring)"
}

if [ -n "${SLUICE_INTEROP_PEER_TEST-1}" ] && command -v cargo >/dev/null; then
    cargo test -q -p sluice-pmd --lib --no-run
    peer_cmd=(cargo test -q -p sluice-pmd --lib virtio::vhost_user::tests::external_peer --
        --exact --nocapture)
    for ring in split packed; do
        peer_test "$ring"
    done
else
    echo "skipped: external_peer (no cargo, or SLUICE_INTEROP_PEER_TEST is empty)"
fi

for ring in split packed; do
    for size in $sizes; do
        run "$ring" "$size"
    done
done
echo
echo "interop-testpmd: PASS"
