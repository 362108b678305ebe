#!/bin/sh
# End-to-end test of the NVMe driver, run INSIDE the guest of run-in-guest.sh:
#
#   bench/qemu/run-in-guest.sh --nics 0 [--no-iommu] -- bench/qemu/e2e-nvme.sh TARGET/release
#
# TARGET/release must hold sluice-devbind, sluice-blkperf and examples/nvme_service (cargo
# build --release -p sluice-apps --bin sluice-devbind --bin sluice-blkperf -p sluice-pmd
# --example nvme_service). Steps: the kernel's nvme driver writes random data; the device
# moves to vfio-pci; sluice-blkperf runs verified random and sequential mixes through VFIO;
# Sluice reads back what the kernel wrote and writes data of its own; the device goes back
# to the kernel driver, which must read Sluice's data byte for byte.
set -eu
bin=${1:?usage: e2e-nvme.sh DIR-WITH-sluice-devbind-sluice-blkperf-AND-examples/nvme_service}
devbind=$bin/sluice-devbind
perf=$bin/sluice-blkperf
svc=$bin/examples/nvme_service
nvme=${SLUICE_GUEST_NVME:?the guest has no NVMe (run-in-guest.sh --no-nvme?)}

step() { printf '\n== %s\n' "$*"; }
fail() { echo "e2e-nvme: FAIL: $*"; exit 1; }

# The namespace's block device once the kernel driver has probed it (waits up to 10 s).
blockdev() {
    i=0
    while [ $i -lt 100 ]; do
        for d in /sys/bus/pci/devices/"$nvme"/nvme/nvme*/nvme*n1; do
            if [ -e "$d" ] && [ -b "/dev/${d##*/}" ]; then
                echo "/dev/${d##*/}"
                return 0
            fi
        done
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

step "the kernel nvme driver writes 1 MiB of random data at byte 8 MiB"
dev=$(blockdev) || fail "no block device for $nvme under the kernel nvme driver"
head -c 1048576 /dev/urandom > /tmp/k2s.bin
dd if=/tmp/k2s.bin of="$dev" bs=1M seek=8 count=1 oflag=direct conv=notrunc status=none
echo "wrote /tmp/k2s.bin to $dev"

step "sluice-devbind bind $nvme (to vfio-pci)"
"$devbind" bind "$nvme"
# run-in-guest.sh --no-iommu: VFIO's no-IOMMU mode (group noiommu-N, IOVA = physical
# address); sluice-blkperf is told, nvme_service finds it from the group.
noiommu=
if [ "${SLUICE_GUEST_IOMMU:-intel}" = none ]; then
    noiommu=--no-iommu
    group=$(basename "$(readlink /sys/bus/pci/devices/"$nvme"/iommu_group)")
    [ -c "/dev/vfio/noiommu-$group" ] || fail "no /dev/vfio/noiommu-$group for $nvme in no-IOMMU mode"
    echo "ok: $nvme is in VFIO group noiommu-$group"
fi

step "sluice-blkperf --verify: 4 KiB randrw, QD 16, through VFIO"
"$perf" --target "nvme:$nvme" $noiommu --verify -w randrw -M 50 -q 16 -t 2 --span-mib 4

step "sluice-blkperf --verify: 128 KiB sequential rw (PRP lists), QD 4"
"$perf" --target "nvme:$nvme" $noiommu --verify -w rw -M 50 -o 128k -q 4 -t 1 --span-mib 4

step "sluice-blkperf --verify: two lcores, two queue pairs, shadow doorbells off"
"$perf" --target "nvme:$nvme" $noiommu --verify -w randrw -M 30 -q 8 -t 1 -c 0,1 --span-mib 2 \
    --no-shadow-doorbells

step "Sluice reads what the kernel wrote"
"$svc" read "$nvme" 8388608 1048576 /tmp/k2s.sluice
cmp /tmp/k2s.bin /tmp/k2s.sluice || fail "Sluice read back different data than the kernel wrote"
echo "identical"

step "Sluice writes 1 MiB of random data at byte 16 MiB"
head -c 1048576 /dev/urandom > /tmp/s2k.bin
"$svc" write "$nvme" 16777216 /tmp/s2k.bin

step "sluice-devbind bind --driver nvme $nvme (back to the kernel)"
"$devbind" bind --driver nvme "$nvme"
dev=$(blockdev) || fail "the kernel nvme driver did not come back on $nvme"
dd if="$dev" of=/tmp/s2k.kernel bs=1M skip=16 count=1 iflag=direct status=none
cmp /tmp/s2k.bin /tmp/s2k.kernel || fail "the kernel read different data than Sluice wrote"
echo "identical through $dev"

echo
echo "e2e-nvme: PASS"
