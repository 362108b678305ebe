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
# descriptor for what it forwards and never drops; testpmd starts forwarding only once both
# vhost ports are up. Nothing here waits for a time to pass; every wait is bounded and fails
# with the logs.
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
cur_log=""
fail() {
    if [ -n "$cur_log" ] && [ -f "$cur_log" ]; then
        echo "--- testpmd's log (last 40 lines) ---" >&2
        tail -40 "$cur_log" >&2
    fi
    echo "interop-testpmd: FAIL: $*" >&2
    exit 1
}
step() { printf '\n== %s\n' "$*"; }

command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd is missing (apt-get install dpdk-dev)"
[ -x "$bin/sluice-pktgen" ] || fail "$bin/sluice-pktgen is missing (cargo build --release -p sluice-apps)"

work=$(mktemp -d /tmp/sluice-vhost-interop.XXXXXX)
prefix=sluice-vhost-interop-$$
tp="" gen=""
cleanup() {
    for p in $gen $tp; do
        kill -INT "$p" 2>/dev/null || true
    done
    for p in $gen $tp; do
        local i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work" "/var/run/dpdk/$prefix"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bounded wait until file $1 has at least $3 lines matching $2 while pid $4 lives.
wait_for() {
    local file=$1 re=$2 n=$3 pid=$4 i=0
    until [ "$(grep -cE "$re" "$file" 2>/dev/null)" -ge "$n" ]; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
            tail -40 "$file" >&2
            return 1
        fi
        sleep 0.1
    done
}

# The pktgen configuration: both virtio-user ports, the sink's first so that its vhost port
# is up before the generator's.
config() {
    local ring=$1 size=$2 split=""
    [ "$ring" = split ] && split='packed = false'
    cat <<EOT
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"

[[ports]]
name = "sink0"
driver = "virtio-user"
path = "$work/vhost1.sock"
queues = $queues
rx_descriptors = 1024
tx_descriptors = 1024
$split

[[ports]]
name = "gen0"
driver = "virtio-user"
path = "$work/vhost0.sock"
queues = $queues
rx_descriptors = 1024
tx_descriptors = 1024
$split

[stats]
interval_ms = 0
EOT
}

# One run: ring layout $1, frame size $2.
run() {
    local ring=$1 size=$2 log=$work/testpmd-$1-$2.log out=$work/pktgen-$1-$2.log
    cur_log=$log
    step "$ring rings, $size B frames: $frames frames through testpmd io forwarding"
    rm -f "$work"/vhost*.sock
    mkfifo "$work/testpmd.in"
    # --no-huge: the vhost PMD maps the frontend's memfd memory; its own mbufs sit on 4 KiB
    # pages, hence the small pool (docs/devices.md#dpdk-vhost-pmd).
    stdbuf -oL dpdk-testpmd -l 0,1 --no-pci --no-huge -m 512 --file-prefix "$prefix" \
        --vdev "net_vhost0,iface=$work/vhost0.sock,queues=$queues" \
        --vdev "net_vhost1,iface=$work/vhost1.sock,queues=$queues" -- \
        -i --forward-mode=io --nb-cores=1 --rxq="$queues" --txq="$queues" \
        --total-num-mbufs 8192 < "$work/testpmd.in" > "$log" 2>&1 &
    tp=$!
    exec 3> "$work/testpmd.in"
    if ! wait_for "$log" 'testpmd> ' 1 "$tp"; then
        if grep -qE 'EAL: (Cannot|FATAL|Error)|Cannot init' "$log"; then
            echo "skipped: dpdk-testpmd cannot run on this machine: $(grep -m1 -E 'EAL: (Cannot|FATAL|Error)|Cannot init' "$log")"
            exit 0
        fi
        fail "dpdk-testpmd did not come up"
    fi

    config "$ring" "$size" > "$work/interop.toml"
    # In flight at most 512 frames: half the sink's rx ring.
    "$bin/sluice-pktgen" --config "$work/interop.toml" --tx-port gen0 --rx-port sink0 \
        --count "$frames" --frame-size "$size" --max-in-flight 512 --duration 20 \
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
    echo stop >&3
    wait_for "$log" 'Accumulated forward statistics' 1 "$tp" || fail "testpmd did not stop"
    echo quit >&3
    exec 3>&-
    wait "$tp" || true
    tp=""
    rm -f "$work/testpmd.in"
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

for ring in split packed; do
    for size in $sizes; do
        run "$ring" "$size"
    done
done
echo
echo "interop-testpmd: PASS"
