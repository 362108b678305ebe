#!/bin/sh
# End-to-end test of virtio-net multiqueue, run INSIDE the guest of run-in-guest.sh with
# multi-queue taps and three vCPUs:
#
#   bench/qemu/run-in-guest.sh --nics 4 --tap-queues 2 --cpus 3 -- \
#       bench/qemu/e2e-virtio-mq.sh TARGET/release
#
# TARGET/release must hold sluice-devbind and sluice-fwd. NICs 0-1 and 2-3 are wired by
# bridges on the host, through taps with Q queues each (Q = SLUICE_GUEST_TAP_QUEUES); the
# host's tun spreads frames over a NIC's receive queues by flow. sluice-fwd opens the two
# middle NICs with Q queue pairs (the driver negotiates MQ and sets the pairs through the
# control queue) and polls receive queue i on its own lcore (vCPU 1 + i), forwarding to
# transmit queue i of the other NIC; the generator (16 flows) and the sink share vCPU 0:
#
#   generator -> nic0 =tap/bridge/tap=> nic1 q0..qQ-1 -> [Q lcores: io] -> nic2 q0..qQ-1
#       =tap/bridge/tap=> nic3 -> sink
#
# Every frame must arrive, none corrupted or duplicated, every receive queue must have
# carried frames, and every buffer must be back in its pool. Order holds per flow only
# (frames of different flows take different queues), so reordering across flows is allowed.
set -eu
bin=${1:?usage: e2e-virtio-mq.sh DIR-WITH-sluice-devbind-AND-sluice-fwd}
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
queues=${SLUICE_GUEST_TAP_QUEUES:-0}
cpus=${SLUICE_GUEST_CPUS:-2}
frames=${SLUICE_E2E_FRAMES:-10000}

step() { printf '\n== %s\n' "$*"; }
fail() { echo "e2e-virtio-mq: FAIL: $*"; exit 1; }

[ "$queues" -ge 2 ] || fail "needs run-in-guest.sh --tap-queues 2 or more, got '$queues'"
[ "$cpus" -ge $((queues + 1)) ] || fail "needs --cpus $((queues + 1)) (one per lcore and one for gen+sink), got $cpus"
# shellcheck disable=SC2086
set -- $nics
[ $# -ge 4 ] || fail "needs 4 NICs (run-in-guest.sh --nics 4), got: $nics"
nic0=$1 nic1=$2 nic2=$3 nic3=$4

step "sluice-devbind bind --force $nic0 $nic1 $nic2 $nic3"
"$bin/sluice-devbind" bind --force "$nic0" "$nic1" "$nic2" "$nic3" >/dev/null
# The host's /tmp entries are bound into the guest's read-only: files of this run's own.
w=$(mktemp -d /tmp/e2e-virtio-mq.XXXXXX)

port() {
    printf '\n[[ports]]\nname = "%s"\ndriver = "virtio"\npci = "%s"\nqueues = %s\nmempool = "pkt"\n' \
        "$1" "$2" "$3"
}
{
    cat <<EOT
burst = 32

[[mempools]]
name = "pkt"
buffers = 16383
buffer_size = 2048
cache_size = 256
hugepages = "2M"
EOT
    port gen0 "$nic0" 1
    port fwd0 "$nic1" "$queues"
    port fwd1 "$nic2" "$queues"
    port sink0 "$nic3" 1
    q=0
    while [ $q -lt "$queues" ]; do
        printf '\n[[lcores]]\ncore = %s\nrole = "rtc"\nrx = ["fwd0/q%s"]\ntx_policy = "lossless"\n' $((q + 1)) $q
        q=$((q + 1))
    done
    cat <<EOT

[[forward]]
from = "fwd0"
to = "fwd1"
mode = "io"

[generator]
port = "gen0"
core = 0
frame_size = 64
rate_pps = 2000
flows = 16

[sink]
port = "sink0"
core = 0
EOT
} > "$w/fwd.toml"

step "sluice-fwd: $frames frames, $queues queue pairs on $nic1 and $nic2, an lcore per queue"
# Frames the host's kernel sent into the wire would reach the sink as foreign ones;
# run-in-guest.sh turns IPv6 off in its namespace so that it sends none.
"$bin/sluice-fwd" --config "$w/fwd.toml" --count "$frames" --duration 90 --json \
    > "$w/fwd.json" || { cat "$w/fwd.json"; fail "sluice-fwd exited non-zero"; }
summary=$(grep '"type":"summary"' "$w/fwd.json") || { cat "$w/fwd.json"; fail "no summary"; }
echo "$summary" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
frames, queues = int(sys.argv[1]), int(sys.argv[2])
errors = []
def want(what, ok):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        errors.append(what)
sent, received = s["sent"], s["received"]
want(f"sent {sent} == {frames}", sent == frames)
want(f"received {received} == {frames}", received == frames)
for k in ("lost", "corrupted", "duplicates", "drops"):
    want(f"{k} {s[k]} == 0", s[k] == 0)
print("info: reordered across flows:", s["reordered"])
rx = {q["queue"]: q["packets"] for q in s["totals"]["queues"] if q["name"] == "fwd0" and q["dir"] == "rx"}
tx = {q["queue"]: q["packets"] for q in s["totals"]["queues"] if q["name"] == "fwd1" and q["dir"] == "tx"}
print(f"info: fwd0 rx per queue {rx}, fwd1 tx per queue {tx}")
want(f"fwd0 has {queues} rx queues", sorted(rx) == list(range(queues)))
want("every fwd0 rx queue carried frames", all(v > 0 for v in rx.values()))
want(f"fwd0 rx total {sum(rx.values())} == {frames}", sum(rx.values()) == frames)
want("fwd1 tx queue i sent what fwd0 rx queue i received", rx == tx)
for p in s["pools"]:
    name, avail, cap = p["name"], p["available"], p["capacity"]
    want(f"pool {name}: {avail} of {cap} back", avail == cap)
if errors:
    print(json.dumps(s["totals"]["queues"]))
sys.exit(1 if errors else 0)
' "$frames" "$queues" || fail "see above"
echo "e2e-virtio-mq: PASS"
