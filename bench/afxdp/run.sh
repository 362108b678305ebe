#!/usr/bin/env bash
# Forwarding rate over AF_XDP on veth, 64-byte frames by default: dpdk-testpmd io-forward
# with net_af_xdp against sluice-fwd on the same veths, fed by the same generator, in one run.
#
#   ns gen:  testpmd txonly ── gen0 ══veth══ veth-a ─┐
#   ns fwd:                         forwarder (A → B, io)
#   ns sink:        sink0 ══veth══ veth-b ───────────┘   (the kernel drops the frames)
#
# CPU 0: the generator (and the kernel's veth/XDP work for gen0 → veth-a, which runs on the
# transmitting CPU). CPU 1: the forwarder (and the kernel's work for veth-b → sink0).
#
# Usage: bench/afxdp/run.sh [--duration S] [--warmup S] [--runs N] [--size BYTES]
#                           [--only "testpmd sluice pmd"]
# Columns: testpmd  dpdk-testpmd io-forward, net_af_xdp on veth-a and veth-b
#          sluice   sluice-fwd --config $SLUICE_FWD_CONFIG (the app)
#          pmd      sluice-afxdp-fwd (bench/src/bin): Sluice's AF_XDP driver alone, A -> B
# A column whose binary is not built is skipped, saying so.
# Env:   SLUICE_FWD  the forwarder (default: release/sluice-fwd under CARGO_TARGET_DIR or
#                    ./target)
#        SLUICE_AFXDP_FWD  (default: release/sluice-afxdp-fwd, same place)
#        SLUICE_FWD_CONFIG  (default config/examples/afxdp-veth.toml: ports on veth-a/veth-b)
#        TESTPMD     (default dpdk-testpmd)
# Needs root, iproute2, ethtool, Debian's dpdk package (net_af_xdp), 2 MiB hugepages.
set -euo pipefail

DURATION=10 WARMUP=3 RUNS=3 SIZE=64 ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TESTPMD=${TESTPMD:-dpdk-testpmd}
SLUICE_FWD=${SLUICE_FWD:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice-fwd}
SLUICE_AFXDP_FWD=${SLUICE_AFXDP_FWD:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice-afxdp-fwd}
SLUICE_FWD_CONFIG=${SLUICE_FWD_CONFIG:-$ROOT/config/examples/afxdp-veth.toml}

die() { echo "run.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, veth, XDP, AF_XDP)"
command -v "$TESTPMD" >/dev/null || die "$TESTPMD not found: apt-get install dpdk"
command -v ethtool >/dev/null || die "ethtool not found: apt-get install ethtool"
ls /usr/lib/x86_64-linux-gnu/dpdk/pmds-*/librte_net_af_xdp.so* >/dev/null 2>&1 \
    || die "this DPDK build has no net_af_xdp driver"

TAG=sb$$
NS_GEN=$TAG-gen NS_FWD=$TAG-fwd NS_SINK=$TAG-sink
HUGE=/tmp/$TAG-huge
LOG=$(mktemp -d /tmp/$TAG-logs.XXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
    for n in $NS_GEN $NS_FWD $NS_SINK; do ip netns del "$n" 2>/dev/null || true; done
    mountpoint -q "$HUGE" && umount "$HUGE"
    rmdir "$HUGE" 2>/dev/null || true
    rm -rf /var/run/dpdk/$TAG-* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- topology ---
for n in $NS_GEN $NS_FWD $NS_SINK; do
    ip netns add "$n"
    # No IPv6 autoconfiguration traffic on the wires.
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$n" link set lo up
done
ip -n $NS_GEN link add gen0 type veth peer name veth-a netns $NS_FWD
ip -n $NS_FWD link add veth-b type veth peer name sink0 netns $NS_SINK
ip -n $NS_GEN link set gen0 up
ip -n $NS_FWD link set veth-a up
ip -n $NS_FWD link set veth-b up
ip -n $NS_SINK link set sink0 up
# A veth accepts frames from an XDP/AF_XDP sender only if its peer runs XDP or GRO:
# veth-a runs the forwarder's XDP program; the generator's and the sink's ends get GRO.
ip netns exec $NS_GEN ethtool -K gen0 gro on >/dev/null
ip netns exec $NS_SINK ethtool -K sink0 gro on >/dev/null

# A private hugetlbfs for DPDK's EAL (the forwarder's testpmd uses 64 MiB of 2 MiB pages).
mkdir -p "$HUGE"
mount -t hugetlbfs -o pagesize=2M none "$HUGE"

stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
# "utime stime" of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

# --- generator: testpmd txonly on its own net_af_xdp port, CPU 0 ---
start_gen() {
    ip netns exec $NS_GEN taskset -c 0 "$TESTPMD" --lcores '0@0,1@0' --no-pci --no-huge -m 256 \
        --file-prefix $TAG-gen --log-level=pmd.net.af_xdp:error \
        --vdev net_af_xdp0,iface=gen0 -- \
        --forward-mode=txonly --txpkts="$SIZE" --burst=32 --total-num-mbufs=16384 \
        --auto-start --stats-period 1 >"$LOG/gen-$1.log" 2>&1 &
    GEN_PID=$!
    PIDS+=("$GEN_PID")
}

# --- forwarders, CPU 1 ---
start_testpmd_fwd() {
    ip netns exec $NS_FWD taskset -c 1 "$TESTPMD" --lcores '0@1,1@1' --no-pci -m 64 \
        --huge-dir "$HUGE" --file-prefix $TAG-fwd --log-level=pmd.net.af_xdp:error \
        --vdev net_af_xdp0,iface=veth-a --vdev net_af_xdp1,iface=veth-b -- \
        --forward-mode=io --burst=32 --total-num-mbufs=16384 \
        --auto-start --stats-period 1 >"$LOG/fwd-$1.log" 2>&1 &
    FWD_PID=$!
    PIDS+=("$FWD_PID")
}

start_sluice_fwd() {
    ip netns exec $NS_FWD taskset -c 1 "$SLUICE_FWD" --config "$SLUICE_FWD_CONFIG" \
        >"$LOG/fwd-$1.log" 2>&1 &
    FWD_PID=$!
    PIDS+=("$FWD_PID")
}

start_pmd_fwd() {
    ip netns exec $NS_FWD "$SLUICE_AFXDP_FWD" --from veth-a --to veth-b --core 1 \
        --duration $((WARMUP + DURATION + 3)) >"$LOG/fwd-$1.log" 2>&1 &
    FWD_PID=$!
    PIDS+=("$FWD_PID")
}

stop() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# One measurement: forwarder up, generator up, warm up, count over DURATION seconds.
measure() {
    local col=$1 run=$2
    "start_${col}_fwd" "$col-$run"
    # Up when the forwarder's XDP program is on veth-a.
    for _ in $(seq 100); do
        ip -n $NS_FWD link show veth-a | grep -q xdp && break
        kill -0 "$FWD_PID" 2>/dev/null || { cat "$LOG/fwd-$col-$run.log" >&2; die "$col forwarder exited"; }
        sleep 0.1
    done
    ip -n $NS_FWD link show veth-a | grep -q xdp || die "$col forwarder attached no XDP program"
    start_gen "$col-$run"
    sleep "$WARMUP"
    local g0 s0 g1 s1 l c0 c1
    g0=$(stat $NS_GEN gen0 tx_packets); s0=$(stat $NS_SINK sink0 rx_packets); c0=$(cpu "$FWD_PID")
    sleep "$DURATION"
    g1=$(stat $NS_GEN gen0 tx_packets); s1=$(stat $NS_SINK sink0 rx_packets); c1=$(cpu "$FWD_PID")
    l=$(cut -d' ' -f1 /proc/loadavg)
    stop "$GEN_PID"
    if [ "$col" = pmd ]; then
        # It stops by itself moments later and prints its counters and the kernel's.
        wait "$FWD_PID" 2>/dev/null || true
        sed 's/^/         /' "$LOG/fwd-$col-$run.log" | tail -2
    else
        stop "$FWD_PID"
    fi
    # The forwarder process's user and system time over the window, in % of one core.
    local hz; hz=$(getconf CLK_TCK)
    awk -v c="$col" -v r="$run" -v g=$((g1 - g0)) -v s=$((s1 - s0)) -v d="$DURATION" -v l="$l" \
        -v u=$(( ${c1% *} - ${c0% *} )) -v k=$(( ${c1#* } - ${c0#* } )) -v hz="$hz" \
        'BEGIN { f = "%-8s run %d  offered %6.3f Mpps  forwarded %6.3f Mpps  drop %5.1f%%  fwd cpu: user %3.0f%% sys %3.0f%%, %5.2f us/pkt  (load avg %s)\n"; printf f, c, r, g / d / 1e6, s / d / 1e6, (g > 0 ? 100 * (g - s) / g : 0), 100 * u / hz / d, 100 * k / hz / d, (s > 0 ? 1e6 * (u + k) / hz / s : 0), l }' | tee -a "$LOG/results"
}

columns="testpmd sluice pmd"
[ -n "$ONLY" ] && columns=$ONLY
echo "AF_XDP over veth, $SIZE-byte frames, ${DURATION}s per run after ${WARMUP}s warm-up, $RUNS runs per column"
echo "generator: testpmd txonly on CPU 0; forwarder on CPU 1; logs in $LOG"
for run in $(seq "$RUNS"); do
    for col in $columns; do
        if [ "$col" = sluice ] && [ ! -x "$SLUICE_FWD" ]; then
            [ "$run" = 1 ] && echo "sluice   skipped: $SLUICE_FWD not built (cargo build --release -p sluice-apps)"
            continue
        fi
        if [ "$col" = pmd ] && [ ! -x "$SLUICE_AFXDP_FWD" ]; then
            [ "$run" = 1 ] && echo "pmd      skipped: $SLUICE_AFXDP_FWD not built (cargo build --release -p sluice-bench)"
            continue
        fi
        measure "$col" "$run"
    done
done
echo "median forwarded Mpps, and forwarder CPU per forwarded packet, per column:"
for col in $columns; do
    rows=$(grep "^$col " "$LOG/results" 2>/dev/null || true)
    [ -n "$rows" ] || continue
    mpps=$(echo "$rows" | awk '{ print $8 }' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    us=$(echo "$rows" | sed 's/.*, *\([0-9.]*\) us\/pkt.*/\1/' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    printf "  %-8s %s Mpps, %s us/pkt (of %d runs)\n" "$col" "$mpps" "$us" "$(echo "$rows" | wc -l)"
done
