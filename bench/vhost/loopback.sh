#!/usr/bin/env bash
# The vhost/virtio-user loopback bench (bench/README.md, "vhost-user loopback"): DPDK DTS's
# "vhost/virtio-user loopback" shape on two cores.
#
#   vhost side, core 1:  dpdk-testpmd --vdev net_vhost0,iface=SOCK   (fwd mac)
#   virtio side, core 0: dpdk-testpmd --vdev net_virtio_user0,path=SOCK  (fwd mac, tx_first 32)
#                   or   sluice-fwd on a virtio-user port to itself  (mac-swap, --tx-first 32)
#
# 1024 frames of 64 B circulate between the two sides. For each ring layout (split, packed)
# and ring size (256, 1024), rounds alternate DPDK / Sluice on the virtio side; each round
# reads the vhost testpmd's port counters over a fixed window ("show port stats", whose
# Rx-pps testpmd computes from its own TSC over the interval) and the virtio process's CPU
# time over the same window (/proc/PID/task/*/schedstat). It prints one line per round and a
# table of medians and ranges. Nothing is asserted.
#
#   bench/vhost/loopback.sh [--rounds N] [--window S] [--warmup S] [--rings "split packed"]
#                           [--sizes "256 1024"] [--sides "dpdk sluice"] [--bin DIR]
#                           [--results FILE]
#
# --bin: the directory holding sluice-fwd (default target/release; built if missing and
# cargo is there). Pages: 4 KiB on both sides (DPDK --no-huge, Sluice hugepages = "none").
# Everything it starts is stopped and its files removed on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3 window=5 warmup=2 rings="split packed" sizes="256 1024" sides="dpdk sluice"
bin=${CARGO_TARGET_DIR:-target}/release results=""
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rings) rings=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --sides) sides=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    *) echo "loopback.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done

command -v dpdk-testpmd >/dev/null ||
    { echo "loopback.sh: dpdk-testpmd is missing: apt-get install dpdk-dev" >&2; exit 1; }
if [[ " $sides " == *" sluice "* ]] && [ ! -x "$bin/sluice-fwd" ]; then
    echo "loopback.sh: $bin/sluice-fwd is missing: cargo build --release -p sluice-apps" >&2
    exit 1
fi
[ "$(nproc)" -ge 2 ] || { echo "loopback.sh: needs 2 cores (has $(nproc))" >&2; exit 1; }

. bench/vhost/lib.sh
work=$(mktemp -d /tmp/sluice-vhost-loopback.XXXXXX)
prefix=sluice-vlb-$$
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -INT "$p" 2>/dev/null || true
    done
    sleep 0.5
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work" "/var/run/dpdk/$prefix-vhost" "/var/run/dpdk/$prefix-virtio"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" with stdin from a fifo (fd in $2's variable), output to $1.log; sets $last_pid.
start_interactive() {
    local name=$1
    shift
    mkfifo "$work/$name.in"
    # Line-buffered: testpmd printf()s its answers, which a file would otherwise hold back.
    stdbuf -oL "$@" < "$work/$name.in" > "$work/$name.log" 2>&1 &
    last_pid=$!
    pids+=("$last_pid")
    exec {fd}> "$work/$name.in"
    eval "${name}_fd=$fd"
}

# Waits (bounded) until $1.log matches the regex $2; fails with the log otherwise.
wait_log() {
    local name=$1 re=$2 pid=$3 i=0
    until grep -qE "$re" "$work/$name.log" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "loopback.sh: $name: no '$re' after $((i / 10)) s; its log:" >&2
            tail -30 "$work/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# Waits (bounded) until $1.log has at least $3 lines matching $2.
wait_count() {
    local name=$1 re=$2 n=$3 pid=$4 i=0
    until [ "$(grep -cE "$re" "$work/$name.log" 2>/dev/null)" -ge "$n" ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "loopback.sh: $name: fewer than $n '$re' after $((i / 10)) s" >&2
            tail -30 "$work/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# Sends a line to an interactive process started by start_interactive.
send() {
    local fd_var="${1}_fd"
    echo "$2" >&"${!fd_var}"
}

# Stops pid $1 (SIGINT, then SIGKILL after 10 s) and forgets it.
stop_pid() {
    local p=$1 i=0
    kill -INT "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local keep=()
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    pids=("${keep[@]}")
}

# Closes an interactive process: "quit", then stop_pid.
quit_interactive() {
    local name=$1 pid=$2 fd_var="${1}_fd" i=0
    echo "quit" >&"${!fd_var}" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    eval "exec ${!fd_var}>&-"
    stop_pid "$pid"
    rm -f "$work/$name.in"
}

# The values of "$2:" in the N-th (1-based, $3) port stats block of $1.log.
stat_field() {
    grep -oE "$2: *[0-9]+" "$work/$1.log" | sed -n "$3p" | grep -oE '[0-9]+$'
}

testpmd_common=(--no-pci --no-huge -m 512)

# One round: the virtio side $1 (dpdk|sluice), ring layout $2, ring size $3. Prints
# "side ring size mpps ns_per_pkt load1" and appends it to $out.
round() {
    local side=$1 ring=$2 size=$3 sock="$work/vhost-net.sock" vpid
    rm -f "$sock" "$work"/*.log
    start_interactive vhost dpdk-testpmd --lcores '0@1,1@1' "${testpmd_common[@]}" \
        --file-prefix "$prefix-vhost" --vdev "net_vhost0,iface=$sock,queues=1" -- \
        -i --nb-cores=1 --total-num-mbufs 8192 --forward-mode=mac
    local hpid=$last_pid
    wait_log vhost 'testpmd> ' "$hpid"
    send vhost "start"
    if [ "$side" = dpdk ]; then
        local packed=0
        [ "$ring" = packed ] && packed=1
        # --single-file-segments: without it DPDK 22.11's vhost refuses the memory table
        # (docs/devices.md#dpdk-vhost-pmd).
        start_interactive virtio dpdk-testpmd --lcores '0@0,1@0' "${testpmd_common[@]}" \
            --single-file-segments --file-prefix "$prefix-virtio" \
            --vdev "net_virtio_user0,path=$sock,queues=1,queue_size=$size,packed_vq=$packed" \
            -- -i --nb-cores=1 --total-num-mbufs 8192 --rxd="$size" --txd="$size"
        vpid=$last_pid
        wait_log virtio 'testpmd> ' "$vpid"
        send virtio "set fwd mac"
        send virtio "start tx_first 32"
    else
        sluice_config "$ring" "$size" "$sock" > "$work/sluice.toml"
        taskset -c 0 "$bin/sluice-fwd" --config "$work/sluice.toml" --tx-first 32 \
            > "$work/virtio.log" 2>&1 &
        vpid=$!
        pids+=("$vpid")
    fi
    wait_log vhost 'link state change event' "$hpid" ||
        { tail -20 "$work/virtio.log" >&2; return 1; }
    sleep "$warmup"
    kill -0 "$vpid" 2>/dev/null || { echo "loopback.sh: the $side side exited:" >&2;
        tail -30 "$work/virtio.log" >&2; return 1; }
    local load c0 c1
    load=$(cut -d' ' -f1 /proc/loadavg)
    send vhost "show port stats all"
    c0=$(cpu_ns "$vpid")
    sleep "$window"
    send vhost "show port stats all"
    c1=$(cpu_ns "$vpid")
    wait_count vhost 'Rx-pps:' 2 "$hpid"
    local p0 p1 pps
    p0=$(stat_field vhost RX-packets 1)
    p1=$(stat_field vhost RX-packets 2)
    pps=$(stat_field vhost Rx-pps 2)
    if [ "$side" = dpdk ]; then
        send virtio "stop"
        quit_interactive virtio "$vpid"
    else
        stop_pid "$vpid"
        cp "$work/virtio.log" "$work/sluice-last.log"
    fi
    quit_interactive vhost "$hpid"
    local pkts=$((p1 - p0))
    if [ "$pkts" -le 0 ]; then
        echo "$side $ring $size VOID moved-nothing $load" | tee -a "$out"
        return 0
    fi
    awk -v s="$side" -v r="$ring" -v z="$size" -v pps="$pps" -v c=$((c1 - c0)) \
        -v n="$pkts" -v l="$load" \
        'BEGIN { printf "%s %s %s %.2f %.1f %s\n", s, r, z, pps / 1e6, c / n, l }' |
        tee -a "$out"
}

# sluice-fwd's configuration: one virtio-user port forwarding to itself with mac-swap.
sluice_config() {
    local ring=$1 size=$2 sock=$3 split_key=""
    # The port takes packed rings when the backend offers them (DPDK's vhost does);
    # `packed = false` keeps split rings.
    [ "$ring" = split ] && split_key="packed = false"
    cat <<EOT
burst = 32

[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"

[[ports]]
name = "vu0"
driver = "virtio-user"
path = "$sock"
queues = 1
rx_descriptors = $size
tx_descriptors = $size
$split_key

[[lcores]]
core = 0
role = "rtc"
rx = ["vu0/q0"]

[[forward]]
from = "vu0"
to = "vu0"
mode = "mac-swap"

[stats]
interval_ms = 0
EOT
}

out=$work/rounds.txt
: > "$out"
echo "# side ring size Mpps virtio-ns/pkt load1   (window ${window} s, warmup ${warmup} s)"
for ring in $rings; do
    for size in $sizes; do
        for r in $(seq 1 "$rounds"); do
            for side in $sides; do
                round "$side" "$ring" "$size"
            done
        done
    done
done
[ -n "$results" ] && cp "$out" "$results"

echo
echo "# medians [min-max] over $rounds rounds"
printf '%-7s %5s  %-26s %-26s %s\n' ring size "DPDK Mpps (ns/pkt)" "Sluice Mpps (ns/pkt)" "Sluice/DPDK"
for ring in $rings; do
    for size in $sizes; do
        awk -v ring="$ring" -v size="$size" '
            function sort(a, n,   i, j, t) {
                for (i = 2; i <= n; i++)
                    for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            }
            function median(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            $2 == ring && $3 == size && $4 != "VOID" {
                if ($1 == "dpdk") { d[++nd] = $4; dn[nd] = $5 } else { s[++ns] = $4; sn[ns] = $5 }
            }
            END {
                cell_d = "n/a"; cell_s = "n/a"; ratio = "n/a"
                if (nd) { md = median(d, nd); cell_d = sprintf("%.2f [%.2f-%.2f] (%.1f)", md, d[1], d[nd], median(dn, nd)) }
                if (ns) { ms = median(s, ns); cell_s = sprintf("%.2f [%.2f-%.2f] (%.1f)", ms, s[1], s[ns], median(sn, ns)) }
                if (nd && ns && md > 0) ratio = sprintf("%.2fx", ms / md)
                printf "%-7s %5s  %-26s %-26s %s\n", ring, size, cell_d, cell_s, ratio
            }' "$out"
    done
done
