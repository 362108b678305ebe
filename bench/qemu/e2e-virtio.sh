#!/bin/sh
# End-to-end test of the virtio-net driver, run INSIDE the guest of run-in-guest.sh:
#
#   bench/qemu/run-in-guest.sh --nics 4 [--wire stream] [--nic-opts packed=on] [--no-iommu] \
#       -- bench/qemu/e2e-virtio.sh TARGET/release
#
# TARGET/release must hold sluice-devbind, sluice-fwd and examples/virtio_echo (cargo build
# --release -p sluice-apps --bin sluice-devbind --bin sluice-fwd -p sluice-pmd --example
# virtio_echo). The four NICs are wired in pairs (0-1, 2-3) by QEMU hubports or, with
# --wire stream, stream sockets. sluice-fwd runs the generator on NIC 0, forwards NIC 1 -> NIC 2
# on its own lcore, and sinks on NIC 3, all through VFIO:
#
#   generator -> nic0 ==hub== nic1 -> [lcore: io] -> nic2 ==hub== nic3 -> sink
#
# and must see exactly the frames it sent, none lost, corrupted, duplicated or reordered,
# and every buffer back in its pool: the forwarding lcore's tx_policy is lossless, so a
# transmit ring QEMU drains slowly (a loaded host) pushes back instead of dropping, and the
# run is bounded by the count, not by a duration. With --no-iommu the same runs in VFIO's
# no-IOMMU mode (noiommu-N groups, IOVA = physical address), which sluice-fwd picks up from
# the devices' groups. Then the embedding example: NIC 1 goes back to the
# kernel's virtio-net, and the kernel's UDP socket on it talks to examples/virtio_echo on
# NIC 0 (the kernel resolves the address by ARP, which the example answers).
set -eu
bin=${1:?usage: e2e-virtio.sh DIR-WITH-sluice-devbind-AND-sluice-fwd}
devbind=$bin/sluice-devbind
fwd=$bin/sluice-fwd
echo_svc=$bin/examples/virtio_echo
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
frames=${SLUICE_E2E_FRAMES:-10000}

step() { printf '\n== %s\n' "$*"; }
fail() { echo "e2e-virtio: FAIL: $*"; exit 1; }

# shellcheck disable=SC2086
set -- $nics
[ $# -ge 4 ] || fail "needs 4 NICs (run-in-guest.sh --nics 4), got: $nics"
nic0=$1 nic1=$2 nic2=$3 nic3=$4

step "sluice-devbind bind --force $nic0 $nic1 $nic2 $nic3"
"$devbind" bind --force "$nic0" "$nic1" "$nic2" "$nic3"
"$devbind" status
if [ "${SLUICE_GUEST_IOMMU:-intel}" = none ]; then
    group=$(basename "$(readlink /sys/bus/pci/devices/"$nic0"/iommu_group)")
    [ -c "/dev/vfio/noiommu-$group" ] || fail "no /dev/vfio/noiommu-$group for $nic0 in no-IOMMU mode"
    echo "ok: $nic0 is in VFIO group noiommu-$group"
fi

port() {
    cat <<EOT

[[ports]]
name = "$1"
driver = "virtio"
pci = "$2"
rx_descriptors = 256
tx_descriptors = 256
mempool = "pkt"
EOT
}

{
    cat <<EOT
burst = 32

[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "2M"
EOT
    port gen0 "$nic0"
    port fwd0 "$nic1"
    port fwd1 "$nic2"
    port sink0 "$nic3"
    cat <<EOT

[[lcores]]
core = 1
role = "rtc"
rx = ["fwd0/q0"]
tx_policy = "lossless"    # exact counts: back-pressure, never a drop after the stall timeout

[[forward]]
from = "fwd0"
to = "fwd1"
mode = "io"

[generator]
port = "gen0"
core = 0
frame_size = 64
rate_pps = 5000           # the run's length is frames / rate: 2 s for 10000 under TCG
flows = 4

[sink]
port = "sink0"
core = 0
EOT
} > /tmp/virtio-e2e.toml

step "sluice-fwd: $frames frames, generator on $nic0 -> forwarder $nic1 -> $nic2 -> sink on $nic3"
# The count ends the run; the SIGINT is only a guard against a hang (frames stuck somewhere),
# which then ends with the counters in the summary instead of the guest's kill.
timeout -s INT "${SLUICE_E2E_GUARD:-240}" \
    "$fwd" --config /tmp/virtio-e2e.toml --count "$frames" --json > /tmp/fwd.json \
    || { cat /tmp/fwd.json; fail "sluice-fwd exited non-zero"; }
grep -q '"interrupted":true' /tmp/fwd.json &&
    { cat /tmp/fwd.json; fail "sluice-fwd hung: stopped by the guard after ${SLUICE_E2E_GUARD:-240} s"; }
summary=$(grep '"type":"summary"' /tmp/fwd.json) || { cat /tmp/fwd.json; fail "no summary"; }
echo "$summary"
for want in "\"sent\":$frames" "\"received\":$frames" '"lost":0' '"corrupted":0' \
    '"duplicates":0' '"reordered":0' '"drops":0'; do
    case $summary in
        *"$want"*) echo "ok: $want" ;;
        *) fail "expected $want" ;;
    esac
done
# Every pool reports available == capacity.
pools=$(echo "$summary" | grep -o '"available":[0-9]*,"capacity":[0-9]*') || fail "no pools"
for p in $pools; do
    a=${p%%,*} c=${p#*,}
    [ "${a#*:}" = "${c#*:}" ] || fail "buffers not back in their pool: $p"
done
echo "ok: every buffer back in its pool"

step "examples/virtio_echo on $nic0 (10.99.0.2) <- the kernel's UDP socket on $nic1 (10.99.0.1)"
"$devbind" bind --driver virtio-pci "$nic1"
i=0
until iface=$(ls /sys/bus/pci/devices/"$nic1"/virtio*/net/ 2>/dev/null) && [ -n "$iface" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "no kernel interface on $nic1"
    sleep 0.1
done
ip addr add 10.99.0.1/24 dev "$iface"
ip link set "$iface" up
# It runs until SIGINT; its first line says the port is open. The waits below are bounds
# that only end a hang: a slow guest (TCG, a CPU hog) takes longer, it does not fail.
"$echo_svc" "$nic0" 10.99.0.2 > /tmp/echo.log 2>&1 &
svc=$!
i=0
until grep -q "rings$" /tmp/echo.log; do
    i=$((i + 1))
    { [ $i -lt 3000 ] && kill -0 "$svc" 2>/dev/null; } || { cat /tmp/echo.log; fail "virtio_echo did not open $nic0"; }
    sleep 0.1
done
/usr/bin/python3 - <<'PY' || { cat /tmp/echo.log; fail "UDP echo through virtio_echo"; }
import socket, sys, time
# Each datagram is sent again until its answer comes (UDP and the first ARP may be lost on
# the way up); only a 300 s bound ends the test.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.99.0.1", 40000))
s.settimeout(1.0)
deadline = time.monotonic() + 300
ok = sent = 0
for i in range(20):
    msg = b"sluice-echo-%d-" % i + bytes(range(64))
    answered = False
    while not answered and time.monotonic() < deadline:
        s.sendto(msg, ("10.99.0.2", 7))
        sent += 1
        try:
            while True:
                data, peer = s.recvfrom(2048)
                if data == msg and peer == ("10.99.0.2", 7):
                    answered = True
                    break
        except socket.timeout:
            pass
    ok += answered
print("udp echo: %d/20 answered intact (%d datagrams sent)" % (ok, sent))
sys.exit(0 if ok == 20 else 1)
PY
ip neigh show dev "$iface"
kill -INT "$svc"
wait "$svc" || { cat /tmp/echo.log; fail "virtio_echo exited non-zero"; }
cat /tmp/echo.log

# The ring format: the kernel's driver takes packed rings whenever offered, so what it
# negotiated on NIC 1 (RING_PACKED is bit 34: the 35th character of the sysfs string) is
# what sluice must have taken on NIC 0 (QEMU offers packed rings with --nic-opts packed=on).
kernel_features=$(cat /sys/bus/pci/devices/"$nic1"/virtio*/features)
case $(echo "$kernel_features" | cut -c35) in
    1) ring=packed ;;
    *) ring=split ;;
esac
case ${SLUICE_GUEST_NIC_OPTS:-} in
    *packed=on*) [ $ring = packed ] || fail "packed=on, but the kernel negotiated split rings" ;;
esac
grep -q ", $ring rings" /tmp/echo.log || fail "virtio_echo did not run on $ring rings"
echo "ok: $ring rings"

echo
echo "e2e-virtio: PASS"
