#!/bin/sh
# /init of the Sluice test guest (busybox sh, PID 1). Built into the initramfs by
# run-in-guest.sh. It mounts the host's / (shared read-only over virtio-9p) at /host, gives it
# the guest's own /proc, /sys, /dev, /tmp (with the host's /tmp entries bound in) and hugetlbfs, loads the drivers, runs the command
# script named on the kernel command line inside `chroot /host`, prints its exit status on a
# marker line and powers off. Every step that could hang is bounded.
export PATH=/bin:/sbin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

run= out= limit=600 noiommu=0
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        sluice.run=*) run=${arg#sluice.run=} ;;
        sluice.out=*) out=${arg#sluice.out=} ;;
        sluice.timeout=*) limit=${arg#sluice.timeout=} ;;
        sluice.noiommu=1) noiommu=1 ;;
    esac
done

die() {
    echo "sluice-guest: $*"
    echo "SLUICE-GUEST-EXIT=125"
    poweroff -f
    sleep 5
    echo o > /proc/sysrq-trigger
}

# No IOMMU (run-in-guest.sh --no-iommu): vfio, rebuilt with CONFIG_VFIO_NOIOMMU, in its
# unsafe no-IOMMU mode, before vfio_pci pulls it in without the option.
if [ "$noiommu" = 1 ]; then
    modprobe vfio enable_unsafe_noiommu_mode=1 || die "modprobe vfio enable_unsafe_noiommu_mode=1 failed"
    [ "$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode)" = Y ] ||
        die "vfio is not in no-IOMMU mode (built without CONFIG_VFIO_NOIOMMU?)"
fi
# The 9p transport and the drivers the devices start on (the test unbinds them), then VFIO.
for m in virtio_pci 9pnet_virtio 9p nvme virtio_net lpc_ich vfio_pci vfio_iommu_type1; do
    modprobe "$m" || die "modprobe $m failed"
done

mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host ||
    die "cannot mount the host's / over virtio-9p (tag hostroot)"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
# The guest's /tmp is its own and writable, but the host's /tmp entries stay at their paths
# (read-only, like the rest of the host): a checkout, a build or a work dir may live there.
mkdir -p /hosttmp
mount -o bind /host/tmp /hosttmp
mount -t tmpfs tmp /host/tmp
for e in /hosttmp/* /hosttmp/.[!.]*; do
    [ -d "$e" ] || [ -f "$e" ] || continue
    n=${e#/hosttmp/}
    if [ -d "$e" ]; then mkdir -p "/host/tmp/$n"; else : >"/host/tmp/$n"; fi
    mount -o bind "$e" "/host/tmp/$n" || echo "sluice-guest: cannot show the host's /tmp/$n" >&2
done
mount -t tmpfs run /host/run
mkdir -p /host/dev/hugepages
mount -t hugetlbfs -o pagesize=2M none /host/dev/hugepages
if [ -n "$out" ]; then
    mkdir -p "/host$out" 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out "/host$out" ||
        die "cannot mount the output share at $out"
fi

[ -n "$run" ] || die "no sluice.run= on the kernel command line"
echo "SLUICE-GUEST-READY"
timeout -s KILL "$limit" chroot /host /bin/sh "$run"
rc=$?
[ "$rc" = 137 ] && echo "sluice-guest: the command ran past ${limit}s and was killed"
echo "SLUICE-GUEST-EXIT=$rc"
[ -n "$out" ] && umount "/host$out"
sync
poweroff -f
