#!/bin/sh
# Forwarding bench, run INSIDE the guest of run-in-guest.sh: dpdk-testpmd io forwarding
# against sluice-fwd io forwarding, side by side in one boot, on the same two NICs
# (NIC 1 -> NIC 2) with the same generator and sink (sluice-pktgen, 64 B frames out on
# NIC 0, counted on NIC 3; gen+sink on vCPU 0, the forwarder on vCPU 1).
#
#   bench/qemu/run-in-guest.sh --nics 4 --timeout 900 -- \
#       bench/qemu/bench-virtio.sh TARGET/release [SECONDS] [ROUNDS] [RATES]
#
# Each round starts one forwarder, runs the generator for SECONDS (default 5) at every
# offered rate in RATES (frames/s, space-separated; 0 = as fast as the generator can;
# default "5000 10000 20000 0"), stops it, then does the same with the other forwarder.
# The order alternates from round to round (default 3 rounds), so that a drift in the
# host's load falls on both alike. At the end a table gives, per forwarder and offered
# rate, the median over the rounds and the range.
#
# Under TCG the figures are relative: compare the two rows, not with hardware.
set -eu
bin=${1:?usage: bench-virtio.sh DIR-WITH-sluice-devbind-sluice-pktgen-AND-sluice-fwd [SECONDS] [ROUNDS] [RATES]}
secs=${2:-5}
rounds=${3:-3}
rates=${4:-5000 10000 20000 0}
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
fail() { echo "bench-virtio: FAIL: $*"; exit 1; }
command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd not installed"
# shellcheck disable=SC2086
set -- $nics
[ $# -ge 4 ] || fail "needs 4 NICs, got: $nics"
nic0=$1 nic1=$2 nic2=$3 nic3=$4
"$bin/sluice-devbind" bind --force "$nic0" "$nic1" "$nic2" "$nic3" >/dev/null
# Configurations, logs and results in a directory of this run's own.
w=$(mktemp -d /tmp/bench-virtio.XXXXXX)

pool() {
    cat <<EOT
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "2M"
EOT
}
port() {
    printf '\n[[ports]]\nname = "%s"\ndriver = "virtio"\npci = "%s"\nmempool = "pkt"\n' "$1" "$2"
}
{ pool; port gen0 "$nic0"; port sink0 "$nic3"; } > $w/gen.toml
{
    pool; port fwd0 "$nic1"; port fwd1 "$nic2"
    printf '\n[[lcores]]\ncore = 1\nrole = "rtc"\nrx = ["fwd0/q0"]\n'
    printf '\n[[forward]]\nfrom = "fwd0"\nto = "fwd1"\nmode = "io"\n'
} > $w/fwd.toml

results=$w/results
: > "$results"

# generate FORWARDER ROUND RATE: one generator run; appends a result line
# "forwarder rate round sent received lost reordered p50 p99".
generate() {
    log="$w/gen-$1-$2-$3.log"
    "$bin/sluice-pktgen" --config $w/gen.toml --tx-port gen0 --rx-port sink0 \
        --duration "$secs" --core 0 --rate "$3" > "$log" 2>&1 || true
    sent=$(sed -n 's/^ *generator: \([0-9]*\) frames.*/\1/p' "$log")
    sink=$(grep '^ *sink:' "$log" || true)
    lat=$(grep '^ *latency:' "$log" || true)
    [ -n "$sent" ] && [ -n "$sink" ] || { echo "  $1 rate $3: generator failed:"; cat "$log"; return 0; }
    recv=$(echo "$sink" | sed 's/^ *sink: *\([0-9]*\) received.*/\1/')
    lost=$(echo "$sink" | sed 's/.*lost \([0-9]*\).*/\1/')
    reord=$(echo "$sink" | sed 's/.*reordered \([0-9]*\).*/\1/')
    p50=$(echo "$lat" | sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p')
    p99=$(echo "$lat" | sed -n 's/.*p99 \([0-9.]*\) us.*/\1/p')
    echo "$1 $3 $2 $sent $recv $lost $reord ${p50:-nan} ${p99:-nan}" >> "$results"
    echo "  $1 round $2 offered $3/s: sent $sent, received $recv, lost $lost, reordered $reord, p50 ${p50:-?} us, p99 ${p99:-?} us"
}

# await LOG PATTERN PID: waits up to 60 s for a forwarder to print its readiness line.
await() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        kill -0 "$3" 2>/dev/null || { cat "$1"; fail "forwarder exited before it was ready"; }
        [ $i -le 600 ] || { cat "$1"; kill -INT "$3"; fail "forwarder not ready after 60 s"; }
        sleep 0.1
    done
    sleep 1
}

run_testpmd() {
    echo "== round $1: dpdk-testpmd io forwarding $nic1 -> $nic2"
    dpdk-testpmd -l 0,1 -n 1 --file-prefix sluice-bench -a "$nic1" -a "$nic2" -- \
        --forward-mode=io --auto-start --total-num-mbufs 8192 --burst 32 \
        --rxd 256 --txd 256 --stats-period 100 > "$w/testpmd-$1.log" 2>&1 &
    tp=$!
    await "$w/testpmd-$1.log" 'Press enter\|Port statistics\|forwarding packets' $tp
    for rate in $rates; do generate testpmd "$1" "$rate"; done
    kill -INT $tp
    wait $tp || true
}

run_sluice() {
    echo "== round $1: sluice-fwd io forwarding $nic1 -> $nic2"
    "$bin/sluice-fwd" --config $w/fwd.toml > "$w/fwd-$1.log" 2>&1 &
    fw=$!
    await "$w/fwd-$1.log" "stats t=" $fw
    for rate in $rates; do generate sluice-fwd "$1" "$rate"; done
    kill -INT $fw
    wait $fw || true
    grep -E '^ *(fwd0|fwd1)' "$w/fwd-$1.log" | tail -2
}

round=1
while [ $round -le "$rounds" ]; do
    if [ $((round % 2)) -eq 1 ]; then
        run_testpmd $round; run_sluice $round
    else
        run_sluice $round; run_testpmd $round
    fi
    round=$((round + 1))
done

# Medians (and ranges) over the rounds, per forwarder and offered rate.
echo
echo "== summary: median over $rounds rounds of ${secs} s (min-max in brackets); 64 B frames"
printf '%-11s %8s %21s %21s %9s %10s %10s\n' forwarder offered "sent/s" "forwarded/s" "lost %" "p50 us" "p99 us"
for rate in $rates; do
    for f in testpmd sluice-fwd; do
        awk -v f="$f" -v r="$rate" -v s="$secs" '
            function med(a, n,   i, j, t) {
                for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            $1 == f && $2 == r {
                n++; sent[n] = $4 / s; fwd[n] = $5 / s; lost[n] = $4 ? 100 * ($4 - $5) / $4 : 0
                p50[n] = $8; p99[n] = $9
                if (n == 1 || fwd[n] < lo) lo = fwd[n]; if (n == 1 || fwd[n] > hi) hi = fwd[n]
            }
            END {
                if (!n) exit
                printf "%-11s %8s %21.0f %11.0f [%.0f-%.0f] %9.1f %10.0f %10.0f\n", f, (r == 0 ? "max" : r),
                    med(sent, n), med(fwd, n), lo, hi, med(lost, n), med(p50, n), med(p99, n)
            }' "$results"
    done
done
