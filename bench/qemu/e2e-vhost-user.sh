#!/usr/bin/env bash
# A QEMU guest's kernel networking through sluice-fwd (issue #12, 4c), on the host, as root:
#
#   guest virtio-net (kernel) -> vhost-user SOCK -> [sluice-fwd vm0 -io-> xdp0] -> veth ->
#   namespace 10.77.0.1 (busybox httpd, tcp-sink.py)  ... and back
#
# The guest (run-in-guest.sh --vhost-user, TCG) pings the namespace and moves a file each way
# over TCP (bench/qemu/guest-vhost-user.sh); the host checks the file the guest sent, the
# guest the one it fetched. Split rings, then packed (virtio-net-pci,packed=on).
#
#   bench/qemu/e2e-vhost-user.sh [DIR-WITH-sluice-fwd]   (default target/release)
#
# Needs root (a network namespace, a veth, AF_XDP) and what run-in-guest.sh needs. Removes
# what it made on exit.
#
# In CI (.ci/run), about 4 minutes for both ring layouts. Three things this needs, found
# getting here, with Debian's QEMU 7.2 under TCG:
# - A vhost-user NIC with MSI-X crashes QEMU when the guest's driver starts it (a NULL
#   dereference in vhost_net_start's vector notifiers, "segfault at 28" in dmesg; DPDK's
#   net_vhost as the backend crashes it the same way): run-in-guest.sh gives that NIC no
#   MSI-X (vectors=0), so the calls reach the guest as INTx through QEMU's main loop.
# - QEMU 7.2 sends its SET_VRING_ENABLEs before SET_FEATURES only, which rust-vmm's handler
#   refuses: the backend starts a kicked ring enabled until it hears an enable after
#   SET_FEATURES (pmd/src/virtio/backend/handler.rs).
# - The namespace's veth must send whole checksums (ethtool -K tx off): AF_XDP hands partial
#   ones over as they are, and the guest, offered no checksum offload, drops them.
# The receiver of the guest's upload is tcp-sink.py: busybox's `nc -l` stops after its first
# read when its own stdin is empty (it did so here with no guest at all), which looked like a
# transmit stall.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release}
rings=${SLUICE_VHOST_E2E_RINGS:-split packed}
bytes=${SLUICE_VHOST_E2E_BYTES:-4000000}
[ "$(id -u)" = 0 ] || { echo "skipped: e2e-vhost-user.sh needs root (netns, veth, AF_XDP)"; exit 0; }
command -v ethtool >/dev/null || { echo "e2e-vhost-user: ethtool is missing (apt-get install ethtool)" >&2; exit 1; }
[ -x "$bin/sluice-fwd" ] || { echo "e2e-vhost-user: $bin/sluice-fwd is missing" >&2; exit 1; }

work=$(mktemp -d /tmp/sluice-e2e-vhost.XXXXXX)
ns=sluice-vh-$$
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        local i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ip link del vh-sw 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
    echo "--- sluice-fwd's log ---" >&2
    tail -30 "$work/fwd.log" >&2 2>/dev/null || true
    echo "e2e-vhost-user: FAIL: $*" >&2
    exit 1
}

# The wire: vh-sw (AF_XDP, sluice-fwd's side) <-> vh-ns (in the namespace, 10.77.0.1).
ip netns add "$ns"
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add vh-sw type veth peer name vh-ns netns "$ns"
sysctl -qw net.ipv6.conf.vh-sw.disable_ipv6=1
ip link set vh-sw up
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.77.0.1/24 dev vh-ns
ip -n "$ns" link set vh-ns up
# The namespace's kernel must put whole checksums into what it sends: with veth's transmit
# checksum offload on, its TCP segments leave with a partial checksum (CHECKSUM_PARTIAL),
# which AF_XDP hands over as is and the guest, offered no checksum offload, drops.
ip netns exec "$ns" ethtool -K vh-ns tx off >/dev/null
# veth's XDP needs the peer to have an XDP program or GRO for the redirect path; the copy
# mode works without.

mkdir -p "$work/www"
head -c "$bytes" /dev/urandom > "$work/www/down.bin"
ln -s www/down.bin "$work/down.bin"
head -c "$bytes" /dev/urandom > "$work/up.bin"

cat > "$work/fwd.toml" <<EOT
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"

[[ports]]
name = "vm0"
driver = "vhost-user"
path = "$work/vm0.sock"
mempool = "pkt"

[[ports]]
name = "xdp0"
driver = "af_xdp"
interface = "vh-sw"
xdp_mode = "copy"
mempool = "pkt"

[[lcores]]
core = 1
role = "rtc"
rx = ["vm0/q0", "xdp0/q0"]

[[forward]]
from = "vm0"
to = "xdp0"
mode = "io"

[[forward]]
from = "xdp0"
to = "vm0"
mode = "io"

[stats]
interval_ms = 10000
EOT

status=0
for ring in $rings; do
    opts=
    [ "$ring" = packed ] && opts=packed=on
    printf '\n== %s rings: guest kernel <-> sluice-fwd <-> veth\n' "$ring"
    rm -f "$work/vm0.sock" "$work/got-up.bin"
    "$bin/sluice-fwd" --config "$work/fwd.toml" > "$work/fwd.log" 2>&1 &
    fwd=$!
    pids+=("$fwd")
    i=0
    until [ -S "$work/vm0.sock" ]; do
        i=$((i + 1))
        { [ $i -gt 600 ] || ! kill -0 "$fwd" 2>/dev/null; } && fail "sluice-fwd did not listen"
        sleep 0.1
    done
    ip netns exec "$ns" busybox httpd -f -p 10.77.0.1:8080 -h "$work/www" &
    pids+=("$!")
    ip netns exec "$ns" timeout 900 "$here/tcp-sink.py" 10.77.0.1 5002 "$work/got-up.bin" &
    nc=$!
    pids+=("$nc")
    rc=0
    "$here/run-in-guest.sh" --no-nvme --nics 0 --vhost-user "$work/vm0.sock" \
        ${opts:+--vhost-user-opts "$opts"} --timeout 600 -- \
        "$here/guest-vhost-user.sh" "$work" || rc=$?
    # The listener ends when the guest's sender closes; a guest that failed never connects.
    [ "$rc" = 0 ] || kill "$nc" 2>/dev/null || true
    wait "$nc" || true
    kill -INT "$fwd" 2>/dev/null || true
    wait "$fwd" || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
    echo "--- sluice-fwd ---"
    grep -v '^ *$' "$work/fwd.log" | tail -25
    [ "$rc" = 0 ] || fail "$ring: the guest's test failed ($rc)"
    want=$(md5sum < "$work/up.bin" | cut -d' ' -f1)
    got=$(md5sum < "$work/got-up.bin" | cut -d' ' -f1)
    [ "$got" = "$want" ] || fail "$ring: the host received $(wc -c < "$work/got-up.bin") bytes, md5 $got, not $want"
    echo "ok: $ring: ping, $bytes bytes each way over TCP, checksums match"
done
echo
echo "e2e-vhost-user: PASS"
