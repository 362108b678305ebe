#!/usr/bin/env bash
# Latency through DPDK's vhost PMD at fixed rates (issue #11, 7; bench/README.md):
#
#   sluice-pktgen gen0 (virtio-user) -> SOCK0 -> [dpdk-testpmd net_vhost0 -io-> net_vhost1]
#                                     -> SOCK1 -> sink0 (virtio-user) sluice-pktgen
#
# The same wiring as interop-testpmd.sh. For each ring layout and rate, a fresh testpmd
# (io forwarding, its lcore on CPU 1) and sluice-pktgen (generator and sink on one lcore,
# CPU 0) paced to the rate (`--rate`), RATE x --secs frames of 64 B. The sink stamps every
# frame's one-way latency (TSC send stamp to receive) into an HdrHistogram; the line per run
# gives its p50, p99, p99.9 and max, and the frames lost (none expected below the loop's
# capacity). Nothing is asserted: a measurement.
#
#   bench/vhost/latency.sh [--rates "10000 100000 1000000"] [--secs S] [--rings "split packed"]
#                          [--bin DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

rates="10000 100000 1000000" secs=3 rings="split packed"
bin=${CARGO_TARGET_DIR:-target}/release
while [ $# -gt 0 ]; do
    case $1 in
    --rates) rates=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rings) rings=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "latency.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done
command -v dpdk-testpmd >/dev/null ||
    { echo "latency.sh: dpdk-testpmd is missing: apt-get install dpdk-dev" >&2; exit 1; }
[ -x "$bin/sluice-pktgen" ] ||
    { echo "latency.sh: $bin/sluice-pktgen is missing: cargo build --release -p sluice-apps" >&2; exit 1; }

work=$(mktemp -d /tmp/sluice-vhost-latency.XXXXXX)
prefix=sluice-vhost-latency-$$
queues=1
. bench/vhost/lib.sh
trap vhost_cleanup EXIT
trap 'exit 130' INT TERM

# One run: ring layout $1, rate $2 (frames/s). Prints its line.
run() {
    local ring=$1 rate=$2 log=$work/testpmd-$1-$2.log out=$work/pktgen-$1-$2.log
    local count=$((rate * secs)) load
    start_testpmd_pair "$log"
    # Forwarding from the start: the sink's port is attached before the generator's, so
    # nothing reaches testpmd while its destination is down (lib.sh, pktgen_config).
    echo start >&3
    pktgen_config "$ring" > "$work/latency.toml"
    load=$(cut -d' ' -f1 /proc/loadavg)
    "$bin/sluice-pktgen" --config "$work/latency.toml" --tx-port gen0 --rx-port sink0 \
        --count "$count" --rate "$rate" --frame-size 64 --duration $((secs * 20 + 60)) \
        --core 0 > "$out" 2>&1 || { cat "$out"; fail "sluice-pktgen failed ($ring, $rate/s)"; }
    stop_testpmd
    local sink lat
    sink=$(grep -m1 '^  sink:' "$out")
    lat=$(grep -m1 '^  latency:' "$out")
    awk -v r="$ring" -v p="$rate" -v l="$load" -v s="$sink" -v t="$lat" 'BEGIN {
        n = split(s, a, " "); recv = a[2]; lost = "?"
        for (i = 1; i <= n; i++) if (a[i] == "lost") { lost = a[i + 1]; sub(",", "", lost) }
        m = split(t, b, " ")
        # "latency: p50 X us, p99 Y us, p99.9 Z us, max W us"
        printf "%-6s %8d  %8s %5s   %9s %9s %9s %9s   %s\n", r, p, recv, lost, b[3], b[6], b[9], b[12], l
    }'
}

printf '%-6s %8s  %8s %5s   %9s %9s %9s %9s   %s\n' ring rate/s received lost \
    "p50 us" "p99 us" "p99.9 us" "max us" load1
for ring in $rings; do
    for rate in $rates; do
        run "$ring" "$rate"
    done
done
