#!/bin/sh
# Inside the guest of run-in-guest.sh --qmp: asks the host to hot-unplug QEMU device ID
# (QMP device_del) and waits for QEMU to have deleted it:
#
#   bench/qemu/guest-qmp.sh device_del ID [TIMEOUT]
#
# Prints the host's answer; exits 0 once QEMU reported DEVICE_DELETED, 1 on an error answer,
# 124 when no answer came within TIMEOUT seconds (default 400; the host gives up on the
# event after 300). The guest must let go of the device meanwhile (a process holding it
# through VFIO releases it when the kernel asks), or QEMU never deletes it. Run it in the
# background to keep working while the removal goes on.
set -eu
[ "${1:-}" = device_del ] && [ -n "${2:-}" ] || {
    echo "usage: guest-qmp.sh device_del ID [TIMEOUT]" >&2
    exit 2
}
id=$2 limit=${3:-400}
dir=${SLUICE_GUEST_OUT:?not in the guest of run-in-guest.sh}/qmp
[ -d "$dir" ] || { echo "guest-qmp: no $dir: run the guest with run-in-guest.sh --qmp" >&2; exit 2; }
n=$dir/$id.$$
echo "device_del $id" > "$n.tmp"
mv "$n.tmp" "$n.req"
i=0
while [ ! -f "$n.done" ]; do
    i=$((i + 1))
    if [ $i -gt $((limit * 5)) ]; then
        echo "guest-qmp: no answer from the host after ${limit}s" >&2
        exit 124
    fi
    sleep 0.2
done
cat "$n.done"
grep -q '^ok:' "$n.done"
