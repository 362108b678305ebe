#!/usr/bin/env bash
# Boot the Sluice test guest and run one command in it; print its output and exit with its
# status.
#
#   bench/qemu/run-in-guest.sh [options] -- COMMAND [ARG...]
#
# The guest: q35, 2 vCPUs (--cpus), TCG (no hardware KVM is assumed), an emulated Intel IOMMU, 2 MiB
# hugepages reserved on the kernel command line, N modern virtio-net NICs wired in pairs
# (NIC 2i <-> NIC 2i+1 through a two-port QEMU hub), one emulated NVMe controller on a raw
# image. Its root is the host's / shared read-only over virtio-9p, so COMMAND runs at the same
# paths as on the host (build first, then run the binary by path); /tmp is the guest's own,
# writable, with the host's /tmp entries bound in read-only.
# In the guest COMMAND sees:
#   SLUICE_GUEST_NICS  PCI addresses of the NICs, in wiring order (space-separated)
#   SLUICE_GUEST_NVME  PCI address of the NVMe controller (empty with --no-nvme)
#   SLUICE_GUEST_OUT   a directory shared read-write with the host (see --out)
#   SLUICE_GUEST_TAP_QUEUES  queue pairs per NIC with --tap-queues (0: wired by --wire)
#   SLUICE_GUEST_CPUS  the number of vCPUs
#   SLUICE_GUEST_NIC_OPTS  what --nic-opts added to every NIC (empty without it)
#   SLUICE_GUEST_VHOST_MAC  the MAC of the --vhost-user NIC (empty without it)
#   SLUICE_GUEST_WIRE  how the NIC pairs are wired: hub, stream or tap (--wire, --tap-queues)
#   SLUICE_GUEST_IOMMU  intel (the emulated IOMMU) or none (--no-iommu)
#
# Options:
#   --nics N             virtio-net NICs (default 2, at most 8)
#   --tap-queues Q       wire the NIC pairs through multi-queue taps instead of hubports:
#                        each NIC gets Q queue pairs (mq=on), its tap Q queues, and the two
#                        taps of a pair are joined by a bridge, all in a network namespace
#                        of this run's own (QEMU runs in it); the host's tun steers frames
#                        to receive queues by flow. Needs root and /dev/net/tun.
#   --nic-opts OPTS      properties appended to every NIC's -device virtio-net-pci, e.g.
#                        packed=on (packed virtqueues offered)
#   --vhost-user SOCK    one more virtio-net NIC (00:0c.0, MAC 52:54:00:5c:01:00, no IOMMU)
#                        whose device is the vhost-user backend listening at SOCK (start it
#                        first): the guest's RAM becomes a shared memfd (share=on) that the
#                        backend maps; the guest's kernel virtio-net drives the NIC
#   --vhost-user-opts OPTS  properties appended to that NIC, e.g. packed=on
#   --wire hub|stream    how a NIC pair is joined without --tap-queues: hub (default), a
#                        two-port QEMU hub; stream, each NIC's stream netdev connected to
#                        wire-relay.py, which copies the bytes between the two in order and
#                        without loss (QEMU 7.2's hub was seen to deliver a frame out of order
#                        on a loaded host; needs python3)
#   --no-iommu           no emulated IOMMU: the guest's vfio modules are rebuilt with
#                        CONFIG_VFIO_NOIOMMU=y (build-vfio-noiommu.sh, cached under the work
#                        dir) and vfio is loaded with enable_unsafe_noiommu_mode=1, so that
#                        devices bound to vfio-pci get noiommu-N groups (IOVA = physical)
#   --cpus N             vCPUs (default 2)
#   --no-nvme            no NVMe controller
#   --mem MIB            guest memory (default 1024)
#   --hugepages N        2 MiB hugepages to reserve (default 128)
#   --timeout S          limit for COMMAND (default 600)
#   --boot-timeout S     limit from start to the guest being ready (default 120)
#   --out DIR            host directory the guest may write (default: a fresh one under the
#                        work dir, removed afterwards unless given)
#   --keep               keep the run directory (console log, NVMe image)
#   --hotplug            put each NIC and the NVMe controller on a pcie-root-port of its own
#                        (hot-pluggable, so that QMP device_del works on q35): the NVMe
#                        controller behind root port 00:03.0 at 0000:01:00.0, NIC i behind
#                        00:(04+i).0 at bus 2+i (1+i with --no-nvme); QEMU ids nvme0, nic0,
#                        nic1, ...; SLUICE_GUEST_NICS and SLUICE_GUEST_NVME list the addresses
#   --qmp                open QEMU's QMP monitor and let COMMAND ask for hot-unplugs: it writes
#                        "device_del ID" to $SLUICE_GUEST_OUT/qmp/N.req (bench/qemu/guest-qmp.sh
#                        does), the host runs it (bench/qemu/qmp.py), waits for QEMU's
#                        DEVICE_DELETED event and answers in N.done ("ok: ..." or "error: ...")
#
# On first use it installs what is missing from Debian (qemu-system-x86, busybox-static, kmod,
# cpio) and downloads the kernel package (linux-image-amd64's current 6.1 image) with
# `apt-get download`, extracting it under the work dir: nothing goes into the host's /boot.
# The work dir is bench/qemu/work (git-ignored), or $SLUICE_QEMU_WORK.
#
# Exit status: COMMAND's, or 124 when a step ran out of time, or 125 when the guest could
# not be started or set up.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=${SLUICE_QEMU_WORK:-$here/work}
nics=2 nic_opts= vhost_sock= vhost_opts= tap_queues=0 wire=hub iommu=intel cpus=2 nvme=1 mem=1024 hugepages=128 cmd_timeout=600 boot_timeout=120 out= keep=0
hotplug=0 qmp=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit "${1:-0}"; }
fail() { echo "run-in-guest: $*" >&2; exit 125; }

while [ $# -gt 0 ]; do
    case "$1" in
        --nics) nics=$2; shift 2 ;;
        --nic-opts) nic_opts=$2; shift 2 ;;
        --vhost-user) vhost_sock=$2; shift 2 ;;
        --vhost-user-opts) vhost_opts=$2; shift 2 ;;
        --tap-queues) tap_queues=$2; shift 2 ;;
        --wire) wire=$2; shift 2 ;;
        --no-iommu) iommu=none; shift ;;
        --cpus) cpus=$2; shift 2 ;;
        --no-nvme) nvme=0; shift ;;
        --nvme) nvme=1; shift ;;
        --mem) mem=$2; shift 2 ;;
        --hugepages) hugepages=$2; shift 2 ;;
        --timeout) cmd_timeout=$2; shift 2 ;;
        --boot-timeout) boot_timeout=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --hotplug) hotplug=1; shift ;;
        --qmp) qmp=1; shift ;;
        -h|--help) usage 0 ;;
        --) shift; break ;;
        *) echo "run-in-guest: unknown option $1" >&2; usage 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "run-in-guest: no command given" >&2; usage 2; }
for v in nics tap_queues cpus mem hugepages cmd_timeout boot_timeout; do
    [[ ${!v} =~ ^[0-9]+$ ]] || fail "--${v//_/-} wants a number, got '${!v}'"
done
[ "$nics" -le 8 ] || fail "--nics $nics: at most 8"
[[ $nic_opts =~ ^[A-Za-z0-9_.=,-]*$ ]] || fail "--nic-opts '$nic_opts': properties only (a=b,c=d)"
[[ $vhost_opts =~ ^[A-Za-z0-9_.=,-]*$ ]] || fail "--vhost-user-opts '$vhost_opts': properties only (a=b,c=d)"
[ -z "$vhost_sock" ] || [ -S "$vhost_sock" ] || fail "--vhost-user $vhost_sock: no socket there (start the backend first)"
[ "$cpus" -ge 1 ] || fail "--cpus $cpus: at least 1"
case $wire in hub|stream) ;; *) fail "--wire '$wire': hub or stream" ;; esac
# QEMU 7.2's virtio-net takes at most 1024 queues; the driver uses at most 16 pairs.
[ "$tap_queues" -le 16 ] || fail "--tap-queues $tap_queues: at most 16"
if [ "$tap_queues" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "--tap-queues needs root (a network namespace with taps)"
    [ -c /dev/net/tun ] || fail "--tap-queues needs /dev/net/tun"
fi

# --- first use: tools, kernel, initramfs -------------------------------------------------

mkdir -p "$work"
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v depmod >/dev/null || missing+=(kmod)
command -v cpio >/dev/null || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
    echo "run-in-guest: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq || fail "apt-get update failed"
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        fail "apt-get install ${missing[*]} failed"
fi

kdir=$work/kernel
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        timeout 600 apt-get update -qq || fail "apt-get update failed"
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || fail "cannot find the kernel package linux-image-amd64 depends on"
    echo "run-in-guest: downloading $pkg" >&2
    deb=$(mktemp -d "$work/deb.XXXXXX")
    (cd "$deb" && timeout 600 apt-get download -qq "$pkg" >/dev/null 2>"$deb/log") ||
        { cat "$deb/log" >&2; fail "apt-get download $pkg failed"; }
    rm -rf "$kdir.tmp.$$"
    dpkg-deb -x "$deb"/"$pkg"_*.deb "$kdir.tmp.$$" || fail "cannot extract $pkg"
    # Another run may have finished first; keep whichever is in place.
    mv -T "$kdir.tmp.$$" "$kdir" 2>/dev/null || rm -rf "$kdir.tmp.$$"
    rm -rf "$deb"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
[ -f "$kdir/lib/modules/$kver/modules.dep" ] || depmod -b "$kdir" "$kver"

# No IOMMU: the vfio modules rebuilt with CONFIG_VFIO_NOIOMMU=y replace Debian's.
noiommu_mods=
if [ "$iommu" = none ]; then
    noiommu_mods=$("$here/build-vfio-noiommu.sh" "$kver") ||
        fail "cannot build the vfio modules with CONFIG_VFIO_NOIOMMU (build-vfio-noiommu.sh)"
fi

# The initramfs holds busybox, the init script and the modules it loads (with their
# dependencies); it is rebuilt when the init script or this script changes.
initrd=$work/initramfs-$kver${noiommu_mods:+-noiommu}.cpio.gz
if [ ! -f "$initrd" ] || [ "$here/guest-init.sh" -nt "$initrd" ] || [ "$0" -nt "$initrd" ]; then
    echo "run-in-guest: building the initramfs for $kver" >&2
    root=$(mktemp -d "$work/initramfs.XXXXXX")
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,host,lib/modules/"$kver"}
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    install -m 0755 "$here/guest-init.sh" "$root/init"
    for m in virtio_pci 9pnet_virtio 9p nvme virtio_net lpc_ich vfio_pci vfio_iommu_type1; do
        modprobe -d "$kdir" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | sort -u | while read -r ko; do
        rel=${ko#"$kdir"/}
        mkdir -p "$root/$(dirname "$rel")"
        cp "$ko" "$root/$rel"
    done
    if [ -n "$noiommu_mods" ]; then
        (cd "$noiommu_mods" && find . -name '*.ko') | while read -r ko; do
            cp "$noiommu_mods/$ko" "$root/lib/modules/$kver/kernel/drivers/vfio/$ko"
        done
    fi
    cp "$kdir/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/"
    depmod -b "$root" "$kver"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp.$$"
    mv "$initrd.tmp.$$" "$initrd"
    rm -rf "$root"
fi

# --- this run -----------------------------------------------------------------------------

run=$(mktemp -d "$work/run.XXXXXX")
qpid= netns= relays=()
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
    for r in "${relays[@]}"; do kill "$r" 2>/dev/null || true; done
    [ -n "$qpid" ] && wait "$qpid" 2>/dev/null || true
    [ -n "$netns" ] && ip netns delete "$netns" 2>/dev/null || true
    if [ "$keep" = 1 ]; then
        echo "run-in-guest: run directory kept: $run" >&2
    else
        rm -rf "$run"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -n "$out" ] || out=$run/out
mkdir -p "$out"
out=$(cd "$out" && pwd)

nic_addrs=() qemu_devs=()
# Fixed slots so that tests can name the devices: NVMe at 00:03.0, NICs from 00:04.0, the 9p
# shares at 00:10.0 and 00:11.0.
if [ "$nvme" = 1 ]; then
    truncate -s 256M "$run/nvme.img"
    qemu_devs+=(-drive "file=$run/nvme.img,if=none,id=nvm,format=raw")
    if [ "$hotplug" = 1 ]; then
        qemu_devs+=(-device "pcie-root-port,id=rp_nvme,chassis=1,slot=1,addr=0x3"
            -device "nvme,serial=sluice0,drive=nvm,bus=rp_nvme,id=nvme0")
    else
        qemu_devs+=(-device "nvme,serial=sluice0,drive=nvm,addr=0x3")
    fi
fi
in_netns=()
if [ "$tap_queues" -gt 0 ]; then
    # The taps and bridges live in a namespace of this run's own, so nothing of the host's
    # networking sees them; IPv6 is off before any device exists, so the kernel sends no
    # neighbour or router solicitations of its own into the wire.
    netns=sluice-guest-$$
    ip netns add "$netns" || fail "cannot create network namespace $netns"
    in_netns=(ip netns exec "$netns")
    "${in_netns[@]}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    for ((i = 0; i < nics; i += 2)); do
        "${in_netns[@]}" ip link add "br$((i / 2))" type bridge || fail "cannot create a bridge"
        "${in_netns[@]}" ip link set "br$((i / 2))" up
    done
fi
for ((i = 0; i < nics; i++)); do
    slot=$((4 + i))
    nic_addrs+=("$(printf '0000:00:%02x.0' "$slot")")
    dev="virtio-net-pci,netdev=net$i,disable-legacy=on,iommu_platform=on,mac=52:54:00:5c:00:$(printf %02x $i),addr=$(printf 0x%x $slot)${nic_opts:+,$nic_opts}"
    if [ "$hotplug" = 1 ]; then
        # Its own root port at the NIC's usual slot; the firmware numbers the buses below
        # root ports in slot order.
        nic_addrs[i]=$(printf '0000:%02x:00.0' $((i + 1 + nvme)))
        qemu_devs+=(-device "pcie-root-port,id=rp_nic$i,chassis=$((2 + i)),slot=$((2 + i)),addr=$(printf 0x%x $slot)")
        dev="${dev/addr=$(printf 0x%x $slot)/bus=rp_nic$i,id=nic$i}"
    fi
    if [ "$tap_queues" -gt 0 ]; then
        # Two taps per bridge: a wire through the host's kernel; a full tap queue drops.
        "${in_netns[@]}" ip tuntap add dev "tap$i" mode tap multi_queue ||
            fail "cannot create multi-queue tap tap$i"
        "${in_netns[@]}" ip link set "tap$i" master "br$((i / 2))" up
        qemu_devs+=(-netdev "tap,id=net$i,ifname=tap$i,script=no,downscript=no,vhost=off,queues=$tap_queues"
            -device "$dev,mq=on,vectors=$((2 * tap_queues + 2))")
    elif [ "$wire" = stream ]; then
        # Each NIC's netdev connects to its end of the pair's relay (started below, before
        # QEMU). Not one netdev listening for the other: QEMU writes to the socket blocking,
        # so a full socket buffer would stop the main loop that has to drain it.
        if [ $((i % 2)) = 0 ]; then
            python3 "$here/wire-relay.py" "$run/wire$i.sock" "$run/wire$((i + 1)).sock" &
            relays+=($!)
        fi
        qemu_devs+=(-netdev "stream,id=net$i,server=off,addr.type=unix,addr.path=$run/wire$i.sock"
            -device "$dev")
    else
        # Two ports per hub: a point-to-point wire inside QEMU with back-pressure.
        qemu_devs+=(-netdev "hubport,id=net$i,hubid=$((i / 2))" -device "$dev")
    fi
done

vhost_mac= mem_opts=(-m "$mem")
if [ -n "$vhost_sock" ]; then
    # The backend maps the guest's RAM: it must be a shared file (vhost-user "memory table").
    # vectors=0 (no MSI-X, INTx): under TCG, QEMU 7.2 (Debian bookworm) dereferences NULL in
    # vhost_net_start -> msix_set_vector_notifiers (guest-notifier unmask, "segfault at 28")
    # when the guest driver starts a vhost-user NIC with MSI-X, whatever the backend (DPDK's
    # net_vhost crashes it the same way); without MSI-X that path is not taken.
    vhost_mac=52:54:00:5c:01:00
    mem_opts=(-m "$mem" -object "memory-backend-memfd,id=mem,size=${mem}M,share=on"
        -numa node,memdev=mem)
    qemu_devs+=(-chardev "socket,id=vhu0,path=$vhost_sock"
        -netdev vhost-user,id=vhu0net,chardev=vhu0
        -device "virtio-net-pci,netdev=vhu0net,disable-legacy=on,vectors=0,mac=$vhost_mac,addr=0xc${vhost_opts:+,$vhost_opts}")
fi
# The relays listen before QEMU connects.
for ((i = 0; i < ${#relays[@]} * 2; i++)); do
    for _ in $(seq 100); do [ -S "$run/wire$i.sock" ] && break; sleep 0.1; done
    [ -S "$run/wire$i.sock" ] || fail "wire-relay.py did not listen on $run/wire$i.sock"
done

{
    echo "export SLUICE_GUEST_VHOST_MAC='$vhost_mac'"
    echo "export SLUICE_GUEST_NICS='${nic_addrs[*]}'"
    echo "export SLUICE_GUEST_TAP_QUEUES='$tap_queues'"
    echo "export SLUICE_GUEST_CPUS='$cpus'"
    echo "export SLUICE_GUEST_NIC_OPTS='$nic_opts'"
    echo "export SLUICE_GUEST_WIRE='$([ "$tap_queues" -gt 0 ] && echo tap || echo "$wire")'"
    echo "export SLUICE_GUEST_IOMMU='$iommu'"
    echo "export SLUICE_GUEST_NVME='$([ "$nvme" = 1 ] && { [ "$hotplug" = 1 ] && echo 0000:01:00.0 || echo 0000:00:03.0; })'"
    echo "export SLUICE_GUEST_OUT='$out'"
    echo "export PATH='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'"
    echo "export HOME=/tmp TMPDIR=/tmp"
    [ -n "${RUST_BACKTRACE:-}" ] && echo "export RUST_BACKTRACE='$RUST_BACKTRACE'"
    printf 'cd %q || exit 125\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    echo
} > "$run/cmd.sh"

# no_timer_check: under TCG on a loaded host the timer interrupt check at boot can fail
# (then the kernel falls back to a broken timer path); skip it.
append="console=ttyS0 panic=-1 quiet loglevel=3 no_timer_check"
iommu_dev=()
if [ "$iommu" = intel ]; then
    append+=" intel_iommu=on iommu=pt"
    iommu_dev=(-device intel-iommu,intremap=on,caching-mode=on,aw-bits=48)
else
    append+=" sluice.noiommu=1"
fi
append+=" hugepagesz=2M hugepages=$hugepages"
append+=" sluice.run=$run/cmd.sh sluice.out=$out sluice.timeout=$cmd_timeout"

# The IOMMU is listed before the devices it translates for; aw-bits=48 so that IOVA = VA
# fits; intremap needs the split irqchip.
qemu=(qemu-system-x86_64
    -machine q35,kernel-irqchip=split -accel tcg,thread=multi -cpu max -smp "$cpus" "${mem_opts[@]}"
    -nodefaults -no-user-config -display none -vga none -monitor none -no-reboot
    -serial "file:$run/console.log"
    "${iommu_dev[@]}"
    -kernel "$vmlinuz" -initrd "$initrd" -append "$append"
    -fsdev local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,addr=0x10
    -fsdev "local,id=out,path=$out,security_model=none,multidevs=remap"
    -device virtio-9p-pci,fsdev=out,mount_tag=out,addr=0x11
    "${qemu_devs[@]}")
if [ "$qmp" = 1 ]; then
    qemu+=(-qmp "unix:$run/qmp.sock,server=on,wait=off")
    mkdir -p "$out/qmp"
fi

: > "$run/console.log"
"${in_netns[@]}" "${qemu[@]}" > "$run/qemu.log" 2>&1 &
qpid=$!

# Stream the console (without the serial line's CRs) while waiting for the markers.
shown=0
pump() {
    local size
    size=$(stat -c %s "$run/console.log")
    if [ "$size" -gt "$shown" ]; then
        tail -c +"$((shown + 1))" "$run/console.log" | head -c "$((size - shown))" | tr -d '\r'
        shown=$size
    fi
}

# --qmp: runs the guest's requests (N.req in $out/qmp) one at a time, answering in N.done.
serve_qmp() {
    local req n cmd id
    for req in "$out"/qmp/*.req; do
        [ -f "$req" ] || continue
        n=${req%.req}
        read -r cmd id < "$req" || true
        rm -f "$req"
        if [ "$cmd" = device_del ] && [[ $id =~ ^[A-Za-z0-9_]+$ ]]; then
            echo "run-in-guest: QMP device_del $id" >&2
            python3 "$here/qmp.py" "$run/qmp.sock" device_del "$id" 300 > "$n.tmp" 2>&1 || true
        else
            echo "error: only 'device_del ID' is served, got '$cmd $id'" > "$n.tmp"
        fi
        cat "$n.tmp" >&2
        mv "$n.tmp" "$n.done"
    done
}

wait_for() { # PATTERN SECONDS: 0 when seen, 1 when QEMU exited, 2 on timeout
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        [ "$qmp" = 1 ] && serve_qmp
        pump
        grep -q -a "$1" "$run/console.log" && return 0
        if ! kill -0 "$qpid" 2>/dev/null; then
            pump
            grep -q -a "$1" "$run/console.log" && return 0
            return 1
        fi
        sleep 0.2
    done
    return 2
}

status=0
wait_for '^SLUICE-GUEST-READY' "$boot_timeout" || status=$?
if [ $status -ne 0 ]; then
    pump
    [ $status = 2 ] && echo "run-in-guest: the guest was not ready after ${boot_timeout}s" >&2
    [ $status = 1 ] && echo "run-in-guest: QEMU exited before the guest was ready:" >&2 &&
        cat "$run/qemu.log" >&2
    exit $([ $status = 2 ] && echo 124 || echo 125)
fi
# The guest kills the command at its own limit; allow for that plus the marker.
wait_for '^SLUICE-GUEST-EXIT=' "$((cmd_timeout + 30))" || status=$?
if [ $status -ne 0 ]; then
    pump
    echo "run-in-guest: no exit status from the guest (QEMU $([ $status = 2 ] && echo 'still running' || echo exited))" >&2
    exit 124
fi
# Shutdown: poweroff -f is immediate; give QEMU 20 s to go.
for _ in $(seq 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$qpid" 2>/dev/null; then
    echo "run-in-guest: QEMU did not exit after power-off; killing it" >&2
    kill "$qpid"
fi
wait "$qpid" 2>/dev/null || true
qpid=
pump
rc=$(grep -a '^SLUICE-GUEST-EXIT=' "$run/console.log" | tail -1 | tr -d '\r' | cut -d= -f2)
[[ $rc =~ ^[0-9]+$ ]] || rc=125
exit "$rc"
