#!/usr/bin/env bash
# The vhost-user *backend* bench (bench/README.md, "vhost-user backend loopback"): DPDK's
# virtio-user testpmd as the frontend, on core 0, in the loopback shape of loopback.sh:
#
#   virtio side, core 0: dpdk-testpmd --vdev net_virtio_user0,path=SOCK  (fwd mac, tx_first 32)
#   vhost side, core 1:  dpdk-testpmd --vdev net_vhost0,iface=SOCK         (fwd mac)
#                   or   sluice-fwd on a vhost-user port to itself          (mac-swap)
#
# With --switch, the switch shape: two virtio-user ports on the frontend (testpmd pairs them:
# what port 0 receives it sends on port 1, and back), two vhost-user ports on the vhost side,
# forwarded into each other (DPDK: testpmd's io forwarding of net_vhost0 and net_vhost1;
# Sluice: sluice-fwd A -> B and B -> A, io), both on core 1; the Mpps are both ports' sum.
#
# 1024 frames circulate (per port). For each ring layout and frame size, rounds alternate DPDK / Sluice
# on the vhost side; each round reads the virtio testpmd's port counters over a fixed window
# ("show port stats": its Rx-pps) and the vhost process's CPU time over the same window. One
# line per round, then medians and ranges. Nothing is asserted.
#
#   bench/vhost/backend-loopback.sh [--rounds N] [--window S] [--warmup S]
#       [--rings "split packed"] [--frames "64 1518"] [--ring-size 1024] [--switch] [--bin DIR]
#
# Pages: 4 KiB on both sides (DPDK --no-huge, Sluice hugepages = "none"). Everything it
# starts is stopped and its files removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3 window=5 warmup=2 rings="split packed" frames="64 1518" qsize=1024 ports=1
bin=${CARGO_TARGET_DIR:-target}/release
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rings) rings=$2; shift 2 ;;
    --frames) frames=$2; shift 2 ;;
    --ring-size) qsize=$2; shift 2 ;;
    --switch) ports=2; shift ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "backend-loopback.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
command -v dpdk-testpmd >/dev/null || { echo "backend-loopback.sh: dpdk-testpmd is missing" >&2; exit 1; }
[ -x "$bin/sluice-fwd" ] || { echo "backend-loopback.sh: $bin/sluice-fwd is missing" >&2; exit 1; }

. bench/vhost/lib.sh
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
# The sum over the ports of the $3-th "show port stats all" of field $2.
stat_sum() {
    grep -oE "$2: *[0-9]+" "$1" | grep -oE '[0-9]+$' |
        awk -v from=$((($3 - 1) * ports + 1)) -v to=$(($3 * ports)) 'NR >= from && NR <= to { s += $1 } END { print s + 0 }'
}

# sluice-fwd's configuration: one port forwarding to itself, or two into each other.
sluice_config() {
    cat <<EOT
burst = 32

[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"
EOT
    local p rx=()
    for p in $(seq 0 $((ports - 1))); do
        printf '\n[[ports]]\nname = "vh%s"\ndriver = "vhost-user"\npath = "%s"\n' "$p" "${socks[$p]}"
        rx+=("\"vh$p/q0\"")
    done
    printf '\n[[lcores]]\ncore = 1\nrole = "rtc"\nrx = [%s]\n' "$(IFS=,; echo "${rx[*]}")"
    if [ "$ports" = 1 ]; then
        printf '\n[[forward]]\nfrom = "vh0"\nto = "vh0"\nmode = "mac-swap"\n'
    else
        printf '\n[[forward]]\nfrom = "vh0"\nto = "vh1"\nmode = "io"\n'
        printf '\n[[forward]]\nfrom = "vh1"\nto = "vh0"\nmode = "io"\n'
    fi
    printf '\n[stats]\ninterval_ms = 0\n'
}

# The --vdev arguments of one side: net_vhostN,iface=... or net_virtio_userN,path=...
vdevs() {
    local kind=$1 extra=${2:-} p
    for p in $(seq 0 $((ports - 1))); do
        if [ "$kind" = vhost ]; then
            printf -- '--vdev net_vhost%s,iface=%s,queues=1 ' "$p" "${socks[$p]}"
        else
            printf -- '--vdev net_virtio_user%s,path=%s,queues=1,%s ' "$p" "${socks[$p]}" "$extra"
        fi
    done
}

round() {
    local side=$1 ring=$2 size=$3 hpid vpid packed=0 fwd=mac
    socks=("$work/vhost0.sock" "$work/vhost1.sock")
    [ "$ports" = 2 ] && fwd=io
    [ "$ring" = packed ] && packed=1
    rm -f "$work"/*.sock "$work"/*.log "$work"/*.in
    if [ "$side" = dpdk ]; then
        mkfifo "$work/vhost.in"
        stdbuf -oL dpdk-testpmd --lcores '0@1,1@1' --no-pci --no-huge -m 512 \
            --file-prefix "$prefix-vhost" $(vdevs vhost) -- \
            -i --nb-cores=1 --total-num-mbufs 8192 --forward-mode=$fwd \
            < "$work/vhost.in" > "$work/vhost.log" 2>&1 &
        hpid=$!
        pids+=("$hpid")
        exec {hfd}> "$work/vhost.in"
        wait_for "$work/vhost.log" 'testpmd> ' 1 "$hpid"
        echo start >&"$hfd"
    else
        sluice_config > "$work/sluice.toml"
        taskset -c 1 "$bin/sluice-fwd" --config "$work/sluice.toml" > "$work/vhost.log" 2>&1 &
        hpid=$!
        pids+=("$hpid")
        local i=0
        until [ -S "${socks[$((ports - 1))]}" ]; do
            i=$((i + 1)); [ $i -gt 300 ] && { tail "$work/vhost.log" >&2; return 1; }; sleep 0.1
        done
    fi
    mkfifo "$work/virtio.in"
    stdbuf -oL dpdk-testpmd --lcores '0@0,1@0' --no-pci --no-huge -m 512 --single-file-segments \
        --file-prefix "$prefix-virtio" \
        $(vdevs virtio "queue_size=$qsize,packed_vq=$packed") -- \
        -i --nb-cores=1 --total-num-mbufs 8192 --rxd="$qsize" --txd="$qsize" \
        < "$work/virtio.in" > "$work/virtio.log" 2>&1 &
    vpid=$!
    pids+=("$vpid")
    exec {vfd}> "$work/virtio.in"
    wait_for "$work/virtio.log" 'testpmd> ' 1 "$vpid"
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
    wait_for "$work/virtio.log" 'Rx-pps:' $((2 * ports)) "$vpid"
    p0=$(stat_sum "$work/virtio.log" RX-packets 1)
    p1=$(stat_sum "$work/virtio.log" RX-packets 2)
    pps=$(stat_sum "$work/virtio.log" Rx-pps 2)
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
echo "# vhost-side ring frame Mpps vhost-ns/pkt load1   ($([ "$ports" = 2 ] && echo "switch, two ports" || echo loopback), ring $qsize, window ${window} s, warmup ${warmup} s)"
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
