#!/bin/sh
# In the guest (bench/qemu/e2e-vhost-user.sh runs it through run-in-guest.sh --vhost-user):
# the guest's kernel virtio-net on the vhost-user NIC, through sluice-fwd, to a veth in a
# namespace on the host (10.77.0.1). Ping, then TCP both ways with a checksum check:
# the host's file $1/down.bin fetched over HTTP (busybox wget from busybox httpd), and $1/up.bin
# sent to the host's listener (tcp-sink.py), which the host checks.
#
#   guest-vhost-user.sh WORKDIR
set -eu
work=$1
bb=busybox
[ -n "${SLUICE_GUEST_VHOST_MAC:-}" ] || { echo "guest: no vhost-user NIC (run-in-guest.sh --vhost-user)"; exit 2; }
dev=
for a in /sys/class/net/*/address; do
    [ "$(cat "$a")" = "$SLUICE_GUEST_VHOST_MAC" ] && dev=$(basename "$(dirname "$a")")
done
[ -n "$dev" ] || { echo "guest: no interface with MAC $SLUICE_GUEST_VHOST_MAC"; ls /sys/class/net; exit 2; }
echo "guest: $dev is the vhost-user NIC ($(cat /sys/class/net/$dev/device/features 2>/dev/null || echo '?'))"
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 || true
$bb ip link set lo up
$bb ip link set "$dev" up
$bb ip addr add 10.77.0.2/24 dev "$dev"
echo "guest: ping"
$bb ping -c 5 -W 10 10.77.0.1
echo "guest: TCP host -> guest"
$bb timeout 300 $bb wget -q -O /tmp/down.bin http://10.77.0.1:8080/down.bin
want=$($bb md5sum < "$work/down.bin" | cut -d' ' -f1)
got=$($bb md5sum < /tmp/down.bin | cut -d' ' -f1)
echo "guest: down.bin $($bb wc -c < /tmp/down.bin) bytes, md5 $got (host's $want)"
[ "$got" = "$want" ] || { echo "guest: FAIL: down.bin differs"; exit 1; }
echo "guest: TCP guest -> host"
$bb timeout 300 $bb nc 10.77.0.1 5002 < "$work/up.bin"
echo "guest: sent up.bin ($($bb wc -c < "$work/up.bin") bytes)"
# nc returns once the data is in the socket's buffer: the kernel still has to send it, so
# stay up until the host's copy (seen read-only through the shared root) is complete.
want=$($bb wc -c < "$work/up.bin")
i=0
until [ "$($bb wc -c < "$work/got-up.bin" 2>/dev/null || echo 0)" -ge "$want" ]; do
    i=$((i + 1))
    if [ $i -gt 3000 ]; then
        echo "guest: FAIL: the host has not received up.bin after 300 s"
        cat /proc/net/tcp /proc/net/dev /proc/interrupts
        exit 1
    fi
    $bb sleep 0.1
done
echo "guest: the host has all of up.bin"
$bb cat /proc/net/dev
