#!/bin/sh
# End-to-end test of the device layer, run INSIDE the guest of run-in-guest.sh:
#
#   bench/qemu/run-in-guest.sh --nics 2 -- bench/qemu/e2e-vfio.sh TARGET/release
#
# TARGET/release must hold sluice-devbind and examples/vfio_probe (cargo build --release
# -p sluice-apps --bin sluice-devbind; cargo build --release -p sluice-pmd --example
# vfio_probe). Steps: the bad cases first (a device still on its kernel driver, a NIC whose
# interface is up, a group that is not viable), then bind the NICs and the NVMe to vfio-pci
# and open them all in one container: IDs from config space, virtio device_feature and NVMe
# CAP/VS from their BARs, a DMA map and unmap.
set -eu
bin=${1:?usage: e2e-vfio.sh DIR-WITH-sluice-devbind-AND-examples/vfio_probe}
devbind=$bin/sluice-devbind
probe=$bin/examples/vfio_probe
nics=${SLUICE_GUEST_NICS:?not in the guest of run-in-guest.sh}
nvme=${SLUICE_GUEST_NVME:?the guest has no NVMe (run-in-guest.sh --no-nvme?)}
nic0=${nics%% *}

step() { printf '\n== %s\n' "$*"; }
fail() { echo "e2e-vfio: FAIL: $*"; exit 1; }

step "sluice-devbind status (devices on their kernel drivers)"
"$devbind" status

step "VFIO refuses a device still on its kernel driver"
"$probe" expect-error not-bound "$nic0"

step "sluice-devbind refuses a NIC whose interface is up"
iface=$(ls /sys/bus/pci/devices/$nic0/virtio*/net/)
ip link set "$iface" up
if "$devbind" bind "$nic0" 2>/tmp/err; then fail "bind took $nic0 with $iface up"; fi
cat /tmp/err
grep -q "interface $iface up" /tmp/err || fail "unexpected error"

step "sluice-devbind bind --force $nics $nvme"
# shellcheck disable=SC2086
"$devbind" bind --force $nics "$nvme"

step "VFIO refuses a group that is not viable (ICH9 functions at 00:1f.*: LPC on lpc_ich)"
"$devbind" bind 0000:00:1f.3
"$probe" expect-error not-viable 0000:00:1f.3
"$devbind" unbind 0000:00:1f.3

step "sluice-devbind status (bound)"
"$devbind" status

step "open every device in one container"
# shellcheck disable=SC2086
"$probe" open $nics "$nvme"

echo
echo "e2e-vfio: PASS"
