#!/bin/sh
# Interop with DPDK, run INSIDE the guest of run-in-guest.sh:
#
#   bench/qemu/run-in-guest.sh --nics 4 -- bench/qemu/interop-testpmd.sh TARGET/release
#
# dpdk-testpmd (io forwarding, its own virtio PMD) forwards NIC 1 -> NIC 2 while
# sluice-pktgen generates on NIC 0 and checks on NIC 3 through Sluice's driver:
#
#   sluice-pktgen -> nic0 ==hub== nic1 -> [testpmd io] -> nic2 ==hub== nic3 -> sluice-pktgen
#
# so our frames go into DPDK's driver and DPDK's frames come out into ours. Needs
# TARGET/release/sluice-devbind and sluice-pktgen, and dpdk-testpmd on the path.
set -eu
bin=${1:?usage: interop-testpmd.sh DIR-WITH-sluice-devbind-AND-sluice-pktgen}
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
frames=${SLUICE_E2E_FRAMES:-5000}
fail() { echo "interop-testpmd: FAIL: $*"; exit 1; }
step() { printf '\n== %s\n' "$*"; }
command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd not installed"
# shellcheck disable=SC2086
set -- $nics
[ $# -ge 4 ] || fail "needs 4 NICs, got: $nics"
nic0=$1 nic1=$2 nic2=$3 nic3=$4
"$bin/sluice-devbind" bind --force "$nic0" "$nic1" "$nic2" "$nic3"

cat > /tmp/interop.toml <<EOT
[[mempools]]
name = "pkt"
buffers = 4095
buffer_size = 2048
cache_size = 128
hugepages = "2M"

[[ports]]
name = "gen0"
driver = "virtio"
pci = "$nic0"
mempool = "pkt"

[[ports]]
name = "sink0"
driver = "virtio"
pci = "$nic3"
mempool = "pkt"
EOT

step "dpdk-testpmd io-forwards $nic1 <-> $nic2"
dpdk-testpmd -l 0,1 -n 1 --file-prefix sluice-interop -a "$nic1" -a "$nic2" -- \
    --forward-mode=io --auto-start --stats-period 5 --total-num-mbufs 4096 \
    > /tmp/testpmd.log 2>&1 &
tp=$!
i=0
until grep -q 'Press enter\|Port statistics\|forwarding packets' /tmp/testpmd.log 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 300 ] || { cat /tmp/testpmd.log; kill -INT $tp; fail "testpmd did not start"; }
    kill -0 $tp 2>/dev/null || { cat /tmp/testpmd.log; fail "testpmd exited"; }
    sleep 0.1
done
sleep 1

step "sluice-pktgen: $frames frames on $nic0, sink on $nic3"
rc=0
"$bin/sluice-pktgen" --config /tmp/interop.toml --tx-port gen0 --rx-port sink0 \
    --count "$frames" --rate 2000 --duration 30 --core 0 > /tmp/pktgen.log 2>&1 || rc=$?
kill -INT $tp
wait $tp || true
tail -25 /tmp/testpmd.log
cat /tmp/pktgen.log
[ $rc -eq 0 ] || fail "sluice-pktgen exited $rc"
for want in "sink:      $frames received" "lost 0, reordered 0, corrupted 0, duplicates 0" \
    "drops:     0" "pkt 4095/4095 free"; do
    grep -qF "$want" /tmp/pktgen.log || fail "expected '$want' in sluice-pktgen's summary"
    echo "ok: $want"
done
echo
echo "interop-testpmd: PASS"
