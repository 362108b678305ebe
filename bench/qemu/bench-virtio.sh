#!/bin/sh
# Forwarding bench, run INSIDE the guest of run-in-guest.sh, side by side in one boot on the
# same two NICs with the same generator: dpdk-testpmd io forwarding, then sluice-fwd io
# forwarding, NIC 1 -> NIC 2; sluice-pktgen sends 64 B frames as fast as it can on NIC 0
# and counts them on NIC 3 (gen+sink on CPU 0, the forwarder on CPU 1).
#
#   bench/qemu/run-in-guest.sh --nics 4 -- bench/qemu/bench-virtio.sh TARGET/release [SECONDS]
#
# Under TCG the figures are relative: compare the two rows, not with hardware.
set -eu
bin=${1:?usage: bench-virtio.sh DIR-WITH-sluice-devbind-sluice-pktgen-AND-sluice-fwd [SECONDS]}
secs=${2:-10}
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
fail() { echo "bench-virtio: FAIL: $*"; exit 1; }
command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd not installed"
# shellcheck disable=SC2086
set -- $nics
[ $# -ge 4 ] || fail "needs 4 NICs, got: $nics"
nic0=$1 nic1=$2 nic2=$3 nic3=$4
"$bin/sluice-devbind" bind --force "$nic0" "$nic1" "$nic2" "$nic3" >/dev/null

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
{ pool; port gen0 "$nic0"; port sink0 "$nic3"; } > /tmp/bench-gen.toml
{
    pool; port fwd0 "$nic1"; port fwd1 "$nic2"
    printf '\n[[lcores]]\ncore = 1\nrole = "rtc"\nrx = ["fwd0/q0"]\n'
    printf '\n[[forward]]\nfrom = "fwd0"\nto = "fwd1"\nmode = "io"\n'
} > /tmp/bench-fwd.toml

generate() {
    "$bin/sluice-pktgen" --config /tmp/bench-gen.toml --tx-port gen0 --rx-port sink0 \
        --duration "$secs" --core 0 > "/tmp/gen-$1.log" 2>&1 || true
    grep -E 'generator:|sink:' "/tmp/gen-$1.log" | sed "s/^/$1: /"
}

echo "== dpdk-testpmd io forwarding $nic1 -> $nic2, ${secs} s"
dpdk-testpmd -l 0,1 -n 1 --file-prefix sluice-bench -a "$nic1" -a "$nic2" -- \
    --forward-mode=io --auto-start --stats-period 100 --total-num-mbufs 8192 \
    > /tmp/testpmd.log 2>&1 &
tp=$!
sleep 4
generate testpmd
kill -INT $tp
wait $tp || true

echo "== sluice-fwd io forwarding $nic1 -> $nic2, ${secs} s"
"$bin/sluice-fwd" --config /tmp/bench-fwd.toml --duration $((secs + 8)) > /tmp/fwd.log 2>&1 &
fw=$!
sleep 4
generate sluice-fwd
wait $fw || true
grep -E 'fwd0|fwd1' /tmp/fwd.log | tail -2
