#!/usr/bin/env bash
# DPDK's virtio-user as the frontend of Sluice's vhost-user backend ports (issue #12, 4b), on
# the host, rootless and without hugepages:
#
#   dpdk-testpmd net_virtio_user0 -> SOCK0 -> [sluice-fwd vh0 -io-> vh1] -> SOCK1 -> net_virtio_user1
#                net_virtio_user1 -> SOCK1 -> [sluice-fwd vh1 -io-> vh0] -> SOCK0 -> net_virtio_user0
#
# testpmd in rxonly mode sends `start tx_first N` bursts of 32 frames on every queue of both
# ports and counts what comes back through sluice-fwd's switch. For split and packed rings, 1
# and 2 queue pairs, 64 B and 1518 B frames: testpmd must receive exactly what it sent (none
# dropped on either side), and sluice-fwd must end with no drops and every buffer back.
#
# Lossless whatever the load: N bursts fit the 1024-entry rings, so neither side ever finds a
# ring full. Nothing waits for a time to pass: every wait polls for a condition, bounded by a
# safety net that fails with the logs.
#
#   bench/vhost/testpmd-frontend.sh [DIR-WITH-sluice-fwd]   (default target/release)
#
# Needs dpdk-testpmd (Debian: dpdk-dev). Stops what it starts and removes its sockets and
# DPDK runtime files on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release}
bursts=${SLUICE_FRONTEND_BURSTS:-8}
sizes=${SLUICE_FRONTEND_SIZES:-64 1518}
# wait_for from lib.sh; this script's fail and step print its own two logs.
. bench/vhost/lib.sh
cur_log="" sl_log=""
fail() {
    for f in "$cur_log" "$sl_log"; do
        if [ -n "$f" ] && [ -f "$f" ]; then
            echo "--- $(basename "$f") (last 30 lines) ---" >&2
            tail -30 "$f" >&2
        fi
    done
    echo "testpmd-frontend: FAIL: $*" >&2
    exit 1
}
step() { printf '\n== %s\n' "$*"; }

command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd is missing (apt-get install dpdk-dev)"
[ -x "$bin/sluice-fwd" ] || fail "$bin/sluice-fwd is missing (cargo build --release -p sluice-apps)"

work=$(mktemp -d /tmp/sluice-vhost-frontend.XXXXXX)
prefix=sluice-vhost-frontend-$$
tp="" sl=""
stop() {
    local p=$1 i=0
    [ -n "$p" ] || return 0
    kill -INT "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    stop "$tp"
    stop "$sl"
    rm -rf "$work" "/var/run/dpdk/$prefix"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# sluice-fwd's configuration: two vhost-user ports switched to each other.
config() {
    local q=$1 rx="" i
    for i in $(seq 0 $((q - 1))); do rx="$rx\"vh0/q$i\", \"vh1/q$i\", "; done
    cat <<EOT
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"

[[ports]]
name = "vh0"
driver = "vhost-user"
path = "$work/vh0.sock"
queues = $q

[[ports]]
name = "vh1"
driver = "vhost-user"
path = "$work/vh1.sock"
queues = $q

[[lcores]]
core = 1
role = "rtc"
rx = [${rx%, }]

[[forward]]
from = "vh0"
to = "vh1"
mode = "io"

[[forward]]
from = "vh1"
to = "vh0"
mode = "io"

[stats]
interval_ms = 0
EOT
}

# The sum of the last $2 values of "$1:" in testpmd's log.
last_sum() {
    grep -oE "$1: *[0-9]+" "$cur_log" | tail -n "$2" | grep -oE '[0-9]+$' | awk '{ s += $1 } END { print s + 0 }'
}

# One run: ring layout $1, queue pairs $2, frame size $3.
run() {
    local ring=$1 q=$2 size=$3 packed=0 cq=""
    [ "$ring" = packed ] && packed=1
    [ "$q" -gt 1 ] && cq=",cq=1"
    local expect=$((2 * q * bursts * 32))
    cur_log=$work/testpmd-$ring-$q-$size.log
    sl_log=$work/sluice-$ring-$q-$size.log
    step "$ring rings, $q queue pair(s), $size B: $expect frames from testpmd through sluice-fwd"
    config "$q" > "$work/fwd.toml"
    rm -f "$work"/vh*.sock
    "$bin/sluice-fwd" --config "$work/fwd.toml" > "$sl_log" 2>&1 &
    sl=$!
    local i=0
    until [ -S "$work/vh0.sock" ] && [ -S "$work/vh1.sock" ]; do
        i=$((i + 1))
        { [ $i -gt 600 ] || ! kill -0 "$sl" 2>/dev/null; } && fail "sluice-fwd did not listen"
        sleep 0.1
    done
    mkfifo "$work/testpmd.in"
    # --single-file-segments: DPDK 22.11's virtio-user otherwise hands over one region per
    # page; --no-huge memory is a memfd the backend can map.
    stdbuf -oL dpdk-testpmd --lcores '0@0,1@0' --no-pci --no-huge -m 512 \
        --single-file-segments --file-prefix "$prefix" \
        --vdev "net_virtio_user0,path=$work/vh0.sock,queues=$q,queue_size=1024,packed_vq=$packed$cq" \
        --vdev "net_virtio_user1,path=$work/vh1.sock,queues=$q,queue_size=1024,packed_vq=$packed$cq" \
        -- -i --nb-cores=1 --rxq="$q" --txq="$q" --rxd=1024 --txd=1024 \
        --total-num-mbufs 8192 --forward-mode=rxonly < "$work/testpmd.in" > "$cur_log" 2>&1 &
    tp=$!
    exec 3> "$work/testpmd.in"
    if ! wait_for "$cur_log" 'testpmd> ' 1 "$tp"; then
        if grep -qE 'EAL: (Cannot|FATAL|Error)|Cannot init' "$cur_log"; then
            echo "skipped: dpdk-testpmd cannot run on this machine: $(grep -m1 -E 'EAL: (Cannot|FATAL|Error)|Cannot init' "$cur_log")"
            exit 0
        fi
        fail "dpdk-testpmd did not come up"
    fi
    [ "$size" != 64 ] && echo "set txpkts $size" >&3
    echo "start tx_first $bursts" >&3
    # Until everything sent came back (each "show" prints one block per port).
    local n=0 got=0
    while [ "$got" -lt "$expect" ]; do
        n=$((n + 1))
        [ $n -gt 600 ] && fail "testpmd received $got of $expect"
        kill -0 "$tp" 2>/dev/null || fail "testpmd exited"
        echo "show port stats all" >&3
        wait_for "$cur_log" 'Rx-pps:' $((2 * n)) "$tp" || fail "testpmd does not answer"
        got=$(last_sum RX-packets 2)
        [ "$got" -lt "$expect" ] && sleep 0.1
    done
    echo "stop" >&3
    wait_for "$cur_log" 'Accumulated forward statistics' 1 "$tp" || fail "testpmd did not stop"
    echo "quit" >&3
    exec 3>&-
    wait "$tp" || true
    tp=""
    rm -f "$work/testpmd.in"
    stop "$sl"
    sl=""
    local acc
    acc=$(sed -n '/Accumulated forward statistics/,$p' "$cur_log")
    sed -n 2,4p <<< "$acc"
    grep -qE "RX-packets: $expect +RX-dropped: 0 +RX-total: $expect" <<< "$acc" ||
        fail "testpmd did not receive exactly $expect frames"
    grep -qE "TX-packets: $expect +TX-dropped: 0 +TX-total: $expect" <<< "$acc" ||
        fail "testpmd did not send exactly $expect frames"
    echo "ok: testpmd sent $expect, received $expect, dropped 0"
    for want in "drops:     0" "pkt 8191/8191 free"; do
        grep -qF "$want" "$sl_log" || fail "expected '$want' in sluice-fwd's summary"
        echo "ok: sluice-fwd: $want"
    done
}

for ring in split packed; do
    for q in 1 2; do
        for size in $sizes; do
            run "$ring" "$q" "$size"
        done
    done
done
echo
echo "testpmd-frontend: PASS"
