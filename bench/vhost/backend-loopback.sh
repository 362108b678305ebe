#!/usr/bin/env bash
# The vhost-user *backend* bench (bench/README.md, "vhost-user backend loopback"): DPDK's
# virtio-user testpmd as the frontend, on core 0, in the loopback shape of loopback.sh:
#
#   virtio side, core 0: dpdk-testpmd --vdev net_virtio_user0,path=SOCK  (fwd mac, tx_first 32)
#   vhost side, core 1:  dpdk-testpmd --vdev net_vhost0,iface=SOCK         (fwd mac)
#                   or   sluice-fwd on a vhost-user port to itself          (mac-swap)
#
# 1024 frames circulate. For each ring layout and frame size, rounds alternate DPDK / Sluice
# on the vhost side; each round reads the virtio testpmd's port counters over a fixed window
# ("show port stats": its Rx-pps) and the vhost process's CPU time over the same window. One
# line per round, then medians and ranges. Nothing is asserted.
#
#   bench/vhost/backend-loopback.sh [--rounds N] [--window S] [--warmup S]
#       [--rings "split packed"] [--frames "64 1518"] [--ring-size 1024] [--bin DIR]
#
# Pages: 4 KiB on both sides (DPDK --no-huge, Sluice hugepages = "none"). Everything it
# starts is stopped and its files removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3 window=5 warmup=2 rings="split packed" frames="64 1518" qsize=1024
bin=${CARGO_TARGET_DIR:-target}/release
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rings) rings=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --ring-size) qsize=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "backend-loopback.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
command -v dpdk-testpmd >/dev/null || { echo "backend-loopback.sh: dpdk-testpmd is missing" >&2; exit 1; }
[ -x "$bin/sluice-fwd" ] || { echo "backend-loopback.sh: $bin/sluice-fwd is missing" >&2; exit 1; }

work=$(mktemp -d /tmp/sluice-vhost-backend-lb.XXXXXX)
prefix=sluice-vblb-$$
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work" "/var/run/dpdk/$prefix-vhost" "/var/run/dpdk/$prefix-virtio"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_count() { # LOG REGEX N PID: bounded wait for N matching lines
    local i=0
    until [ "$(grep -cE "$2" "$1" 2>/dev/null)" -ge "$3" ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$4" 2>/dev/null; then
            echo "backend-loopback.sh: no '$2' in $1:" >&2
            tail -20 "$1" >&2
            return 1
        fi
        sleep 0.1
    done
}
stop_pid() {
    local p=$1 i=0
    kill -INT "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local keep=() q
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    pids=("${keep[@]}")
}
cpu_ns() {
    local sum=0 t v
    for t in /proc/"$1"/task/*/schedstat; do
        read -r v _ < "$t" 2>/dev/null || continue
        sum=$((sum + v))
    done
    echo "$sum"
}
stat_field() { grep -oE "$2: *[0-9]+" "$1" | sed -n "$3p" | grep -oE '[0-9]+$'; }

sluice_config() {
    cat <<EOT
burst = 32

[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"

[[ports]]
name = "vh0"
driver = "vhost-user"
path = "$1"

[[lcores]]
core = 1
role = "rtc"
rx = ["vh0/q0"]

[[forward]]
from = "vh0"
to = "vh0"
mode = "mac-swap"

[stats]
interval_ms = 0
EOT
}

# One round: vhost side $1 (dpdk|sluice), ring $2, frame size $3.
round() {
    local side=$1 ring=$2 size=$3 sock="$work/vhost.sock" hpid vpid packed=0
    [ "$ring" = packed ] && packed=1
    rm -f "$sock" "$work"/*.log "$work"/*.in
    if [ "$side" = dpdk ]; then
        mkfifo "$work/vhost.in"
        stdbuf -oL dpdk-testpmd --lcores '0@1,1@1' --no-pci --no-huge -m 512 \
            --file-prefix "$prefix-vhost" --vdev "net_vhost0,iface=$sock,queues=1" -- \
            -i --nb-cores=1 --total-num-mbufs 8192 --forward-mode=mac \
            < "$work/vhost.in" > "$work/vhost.log" 2>&1 &
        hpid=$!
        pids+=("$hpid")
        exec {hfd}> "$work/vhost.in"
        wait_count "$work/vhost.log" 'testpmd> ' 1 "$hpid"
        echo start >&"$hfd"
    else
        sluice_config "$sock" > "$work/sluice.toml"
        taskset -c 1 "$bin/sluice-fwd" --config "$work/sluice.toml" > "$work/vhost.log" 2>&1 &
        hpid=$!
        pids+=("$hpid")
        local i=0
        until [ -S "$sock" ]; do
            i=$((i + 1)); [ $i -gt 300 ] && { tail "$work/vhost.log" >&2; return 1; }; sleep 0.1
        done
    fi
    mkfifo "$work/virtio.in"
    stdbuf -oL dpdk-testpmd --lcores '0@0,1@0' --no-pci --no-huge -m 512 --single-file-segments \
        --file-prefix "$prefix-virtio" \
        --vdev "net_virtio_user0,path=$sock,queues=1,queue_size=$qsize,packed_vq=$packed" -- \
        -i --nb-cores=1 --total-num-mbufs 8192 --rxd="$qsize" --txd="$qsize" \
        < "$work/virtio.in" > "$work/virtio.log" 2>&1 &
    vpid=$!
    pids+=("$vpid")
    exec {vfd}> "$work/virtio.in"
    wait_count "$work/virtio.log" 'testpmd> ' 1 "$vpid"
    echo "set fwd mac" >&"$vfd"
    [ "$size" != 64 ] && echo "set txpkts $size" >&"$vfd"
    echo "start tx_first 32" >&"$vfd"
    sleep "$warmup"
    local load c0 c1 p0 p1 pps
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "show port stats all" >&"$vfd"
    c0=$(cpu_ns "$hpid")
    sleep "$window"
    echo "show port stats all" >&"$vfd"
    c1=$(cpu_ns "$hpid")
    wait_count "$work/virtio.log" 'Rx-pps:' 2 "$vpid"
    p0=$(stat_field "$work/virtio.log" RX-packets 1)
    p1=$(stat_field "$work/virtio.log" RX-packets 2)
    pps=$(stat_field "$work/virtio.log" Rx-pps 2)
    echo "stop" >&"$vfd"; echo "quit" >&"$vfd"
    exec {vfd}>&-
    stop_pid "$vpid"
    if [ "$side" = dpdk ]; then echo quit >&"$hfd"; exec {hfd}>&-; fi
    stop_pid "$hpid"
    local pkts=$((p1 - p0))
    [ "$pkts" -gt 0 ] || { echo "$side $ring $size VOID 0 $load" | tee -a "$out"; return 0; }
    awk -v s="$side" -v r="$ring" -v z="$size" -v pps="$pps" -v c=$((c1 - c0)) -v n="$pkts" -v l="$load" \
        'BEGIN { printf "%s %s %s %.2f %.1f %s\n", s, r, z, pps / 1e6, c / n, l }' | tee -a "$out"
}

out=$work/rounds.txt
: > "$out"
echo "# vhost-side ring frame Mpps vhost-ns/pkt load1   (ring $qsize, window ${window} s, warmup ${warmup} s)"
for ring in $rings; do
    for size in $frames; do
        for r in $(seq 1 "$rounds"); do
            for side in dpdk sluice; do
                round "$side" "$ring" "$size"
            done
        done
    done
done
echo
echo "# medians [min-max] over $rounds rounds"
printf '%-7s %5s  %-26s %-26s %s\n' ring frame "DPDK vhost Mpps (ns/pkt)" "Sluice vhost Mpps (ns/pkt)" "Sluice/DPDK"
for ring in $rings; do
    for size in $frames; do
        awk -v ring="$ring" -v size="$size" '
            function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
            function median(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
            $2 == ring && $3 == size && $4 != "VOID" { if ($1 == "dpdk") { d[++nd] = $4; dn[nd] = $5 } else { s[++ns] = $4; sn[ns] = $5 } }
            END {
                cd = "n/a"; cs = "n/a"; ratio = "n/a"
                if (nd) { md = median(d, nd); cd = sprintf("%.2f [%.2f-%.2f] (%.1f)", md, d[1], d[nd], median(dn, nd)) }
                if (ns) { ms = median(s, ns); cs = sprintf("%.2f [%.2f-%.2f] (%.1f)", ms, s[1], s[ns], median(sn, ns)) }
                if (nd && ns && md > 0) ratio = sprintf("%.2fx", ms / md)
                printf "%-7s %5s  %-26s %-26s %s\n", ring, size, cd, cs, ratio
            }' "$out"
    done
done
