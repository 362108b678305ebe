#!/bin/sh
# End-to-end test of surprise removal (hot-unplug while in use), run INSIDE the guest of
# run-in-guest.sh with hot-pluggable devices and the QMP bridge:
#
#   bench/qemu/run-in-guest.sh --nics 6 --hotplug --qmp -- bench/qemu/e2e-surprise.sh TARGET/release
#
# TARGET/release must hold sluice-devbind, sluice-fwd and sluice-blkperf. QEMU removes the
# devices (QMP device_del, through bench/qemu/guest-qmp.sh); the guest kernel asks vfio-pci
# for them back, and Sluice must let go so that the removal completes (QEMU's
# DEVICE_DELETED event), without a crash (SIGBUS) or a hang:
#
# 1. virtio-net: sluice-fwd runs generator nic0 -> nic1 -> [io] -> nic2 -> sink nic3 and a
#    second forward nic4 -> nic5 on the same lcore. NIC 4 (QEMU id nic4) is removed: its
#    port goes down with a message naming it, the sink keeps receiving, SIGINT then ends the
#    run with exit 0, a summary without corruption or duplicates, and every buffer back in
#    its pool (the removed port's too).
# 2. NVMe: sluice-blkperf runs verified random I/O; the controller (QEMU id nvme0) is
#    removed mid-I/O: blkperf ends on its own with an error naming the controller and that
#    it is gone, not a signal.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: e2e-surprise.sh DIR-WITH-sluice-devbind-sluice-fwd-AND-sluice-blkperf}
devbind=$bin/sluice-devbind
fwd=$bin/sluice-fwd
perf=$bin/sluice-blkperf
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
nvme=${SLUICE_GUEST_NVME:-}
[ -d "${SLUICE_GUEST_OUT:?}/qmp" ] || { echo "e2e-surprise: FAIL: run the guest with --qmp"; exit 1; }

# Files of this run's own (the host's /tmp entries show through, read-only).
w=$(mktemp -d /tmp/e2e-surprise.XXXXXX)

step() { printf '\n== %s\n' "$*"; }
fail() {
    echo "e2e-surprise: FAIL: $*"
    for f in "$w/fwd.err" "$w/perf.err" "$w/fwd.json"; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
    exit 1
}
# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s, bounded (generously: TCG
# on a busy host is slow, and nothing here depends on how fast).
wait_until() {
    limit=$1 what=$2
    shift 2
    i=0
    until "$@"; do
        i=$((i + 1))
        [ $i -le $((limit * 5)) ] || fail "$what: not within ${limit}s"
        sleep 0.2
    done
}
# sink_busy LINE N: at least N stats intervals after line LINE of the stats in which the
# sink's receive queue got packets.
sink_busy() {
    n=$(tail -n +"$(($1 + 1))" "$w/fwd.json" | grep '"type":"interval"' |
        grep -c '"name":"sink0","packets":[1-9]') || true
    [ "$n" -ge "$2" ]
}

# shellcheck disable=SC2086
set -- $nics
[ $# -ge 6 ] || fail "needs 6 NICs (run-in-guest.sh --nics 6 --hotplug --qmp), got: $nics"
nic0=$1 nic1=$2 nic2=$3 nic3=$4 nic4=$5 nic5=$6

# ---- 1. a virtio-net NIC ----------------------------------------------------------------

step "sluice-devbind bind --force $nic0 $nic1 $nic2 $nic3 $nic4 $nic5"
"$devbind" bind --force "$nic0" "$nic1" "$nic2" "$nic3" "$nic4" "$nic5"

port() {
    printf '\n[[ports]]\nname = "%s"\ndriver = "virtio"\npci = "%s"\n' "$1" "$2"
    printf 'rx_descriptors = 256\ntx_descriptors = 256\nmempool = "pkt"\n'
}
{
    printf 'burst = 32\n\n[[mempools]]\nname = "pkt"\nbuffers = 8191\nbuffer_size = 2048\n'
    printf 'cache_size = 256\nhugepages = "2M"\n'
    port gen0 "$nic0"
    port fwd0 "$nic1"
    port fwd1 "$nic2"
    port sink0 "$nic3"
    port spare0 "$nic4"
    port spare1 "$nic5"
    cat <<EOT

[[lcores]]
core = 1
role = "rtc"
rx = ["fwd0/q0", "spare0/q0"]

[[forward]]
from = "fwd0"
to = "fwd1"
mode = "io"

[[forward]]
from = "spare0"
to = "spare1"
mode = "io"

[generator]
port = "gen0"
core = 0
frame_size = 64
rate_pps = 2000
flows = 4

[sink]
port = "sink0"
core = 0

[stats]
interval_ms = 1000
EOT
} > $w/surprise.toml

step "sluice-fwd: generator $nic0 -> $nic1 -> $nic2 -> sink $nic3, and $nic4 -> $nic5"
"$fwd" --config $w/surprise.toml --json > $w/fwd.json 2> $w/fwd.err &
fpid=$!
wait_until 180 "the sink receiving" sink_busy 0 1
kill -0 $fpid 2>/dev/null || fail "sluice-fwd exited early"
echo "forwarding"

step "QMP device_del nic4 ($nic4) while sluice-fwd polls it"
before=$(wc -l < $w/fwd.json)
"$here/guest-qmp.sh" device_del nic4 || fail "QEMU did not delete nic4 (did Sluice let go of it?)"
[ ! -e "/sys/bus/pci/devices/$nic4" ] || fail "$nic4 still in the guest after DEVICE_DELETED"
kill -0 $fpid 2>/dev/null || fail "sluice-fwd died with the NIC"
grep -qF "sluice-pmd: $nic4: the kernel asks for the device back" $w/fwd.err ||
    fail "no message naming $nic4"
wait_until 60 "the port reported down" grep -F "port spare0 (virtio): link down" $w/fwd.err
# Traffic after the removal: two stats intervals in which the sink received.
wait_until 180 "the sink receiving after the removal" sink_busy "$before" 2
echo "ok: the other ports keep forwarding"

step "SIGINT: a clean exit with every buffer accounted"
kill -INT $fpid
i=0
while kill -0 $fpid 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 300 ] || { kill -KILL $fpid; fail "sluice-fwd still running 60 s after SIGINT"; }
    sleep 0.2
done
rc=0
wait $fpid || rc=$?
[ $rc = 0 ] || fail "sluice-fwd exited with $rc"
summary=$(grep '"type":"summary"' $w/fwd.json) || fail "no summary"
echo "$summary" | cut -c1-400
for want in '"corrupted":0' '"duplicates":0' '"interrupted":true'; do
    case $summary in
        *"$want"*) echo "ok: $want" ;;
        *) fail "expected $want" ;;
    esac
done
pools=$(echo "$summary" | grep -o '"available":[0-9]*,"capacity":[0-9]*') || fail "no pools"
for p in $pools; do
    a=${p%%,*} c=${p#*,}
    [ "${a#*:}" = "${c#*:}" ] || fail "buffers not back in their pool: $p"
done
echo "ok: every buffer back in its pool, the removed port's included"

# ---- 2. the NVMe controller -------------------------------------------------------------

if [ -z "$nvme" ]; then
    echo "skipped: NVMe part: the guest has no NVMe controller (--no-nvme)"
else
    step "sluice-devbind bind $nvme (to vfio-pci)"
    "$devbind" bind "$nvme"

    step "sluice-blkperf: verified 4 KiB randrw at QD 16 on $nvme, until the controller goes"
    "$perf" --target "nvme:$nvme" --json --verify -w randrw -M 50 -q 16 -t 3000 --span-mib 4 \
        > $w/perf.out 2> $w/perf.err &
    ppid=$!
    wait_until 180 "blkperf running" grep -q "Ctrl-C stops it" $w/perf.err

    step "QMP device_del nvme0 ($nvme) mid-I/O"
    "$here/guest-qmp.sh" device_del nvme0 || fail "QEMU did not delete nvme0"
    [ ! -e "/sys/bus/pci/devices/$nvme" ] || fail "$nvme still in the guest after DEVICE_DELETED"
    i=0
    while kill -0 $ppid 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 600 ] || { kill -KILL $ppid; fail "sluice-blkperf still running 120 s after the removal"; }
        sleep 0.2
    done
    rc=0
    wait $ppid || rc=$?
    cat $w/perf.err
    [ $rc = 1 ] || fail "sluice-blkperf exited with $rc (want 1: an error, not a signal)"
    grep -qF "sluice-pmd: $nvme: the kernel asks for the device back" $w/perf.err ||
        fail "no message naming $nvme"
    grep -F "nvme $nvme" $w/perf.err | grep -qF "the controller is gone" ||
        fail "no error naming the controller and that it is gone"
    echo "ok: a clear error, a clean exit"
fi

echo
echo "e2e-surprise: PASS"
