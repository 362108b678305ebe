#!/usr/bin/env bash
# Build the test guest's VFIO modules with CONFIG_VFIO_NOIOMMU=y, which Debian's kernel
# leaves out, so that run-in-guest.sh --no-iommu can exercise VFIO's no-IOMMU mode (the mode
# DPDK and Sluice use in VMs without a virtual IOMMU; Documentation/driver-api/vfio.rst).
#
#   bench/qemu/build-vfio-noiommu.sh KVER
#
# KVER is the guest kernel's release (run-in-guest.sh passes the one it boots, e.g.
# 6.1.0-57-amd64). Only drivers/vfio is built: the sources come from Debian's linux-source-6.1
# of the same version as the kernel package, built against the matching linux-headers-KVER
# as an external module tree, with the option on (the Makefile variable for kbuild, the macro
# for the C code). About a minute on two cores, most of it unpacking the source tarball.
#
# The modules land in WORK/vfio-noiommu/KVER/ (WORK: bench/qemu/work or $SLUICE_QEMU_WORK)
# at their paths under drivers/vfio (vfio.ko, vfio_iommu_type1.ko, vfio_virqfd.ko,
# pci/vfio-pci-core.ko, pci/vfio-pci.ko), debug info stripped; a second run finds them there
# and does nothing. Installs linux-headers-KVER and downloads
# linux-source-6.1 with apt-get (as root) when missing; nothing goes into the host's /lib.
set -euo pipefail

kver=${1:?usage: build-vfio-noiommu.sh KVER (the guest kernel release)}
here=$(cd "$(dirname "$0")" && pwd)
work=${SLUICE_QEMU_WORK:-$here/work}
dest=$work/vfio-noiommu/$kver
mods=(vfio.ko vfio_iommu_type1.ko vfio_virqfd.ko pci/vfio-pci-core.ko pci/vfio-pci.ko)

fail() { echo "build-vfio-noiommu: $*" >&2; exit 1; }
[[ $kver =~ ^[0-9][0-9A-Za-z.+_-]*$ ]] || fail "'$kver' is not a kernel release"

if [ -f "$dest/.complete" ]; then
    echo "$dest"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    timeout 600 apt-get update -qq || fail "apt-get update failed"
    timeout 900 apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
        fail "apt-get install $* failed"
}

# The headers of exactly this kernel, and a compiler and make for kbuild.
headers=/usr/src/linux-headers-$kver
missing=()
[ -f "$headers/Makefile" ] || missing+=("linux-headers-$kver")
command -v make >/dev/null || missing+=(make)
command -v gcc >/dev/null || missing+=(gcc)
command -v xz >/dev/null || missing+=(xz-utils)
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-vfio-noiommu: installing ${missing[*]}" >&2
    apt_install "${missing[@]}"
fi
version=$(dpkg-query -W -f '${Version}' "linux-headers-$kver" 2>/dev/null) ||
    fail "linux-headers-$kver is not installed"

# The source of the same Debian version (its patches are the kernel's).
build=$(mktemp -d "$work/vfio-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
src=linux-source-6.1
echo "build-vfio-noiommu: downloading $src=$version" >&2
(cd "$build" && timeout 900 apt-get download -qq "$src=$version" >/dev/null 2>"$build/log") || {
    timeout 600 apt-get update -qq || fail "apt-get update failed"
    (cd "$build" && timeout 900 apt-get download -qq "$src=$version" >/dev/null 2>"$build/log") ||
        { cat "$build/log" >&2; fail "apt-get download $src=$version failed"; }
}
echo "build-vfio-noiommu: unpacking drivers/vfio" >&2
dpkg-deb --fsys-tarfile "$build"/"$src"_*.deb |
    tar -x -C "$build" "./usr/src/$src.tar.xz" || fail "no $src.tar.xz in the package"
tar -xJf "$build/usr/src/$src.tar.xz" -C "$build" "$src/drivers/vfio" ||
    fail "cannot unpack drivers/vfio"
rm -rf "$build/usr" "$build"/*.deb

echo "build-vfio-noiommu: building drivers/vfio for $kver with CONFIG_VFIO_NOIOMMU=y" >&2
tree=$build/$src/drivers/vfio
make -s -C "$headers" M="$tree" -j"$(nproc)" modules \
    CONFIG_VFIO_NOIOMMU=y KCFLAGS=-DCONFIG_VFIO_NOIOMMU=1 >"$build/make.log" 2>&1 ||
    { tail -40 "$build/make.log" >&2; fail "the build of drivers/vfio failed"; }
for m in "${mods[@]}"; do
    [ -f "$tree/$m" ] || fail "the build made no $m"
done
modinfo -F parm "$tree/vfio.ko" | grep -q '^enable_unsafe_noiommu_mode:' ||
    fail "vfio.ko was built without the no-IOMMU mode"

rm -rf "$dest.tmp.$$"
mkdir -p "$dest.tmp.$$"
for m in "${mods[@]}"; do
    mkdir -p "$dest.tmp.$$/$(dirname "$m")"
    cp "$tree/$m" "$dest.tmp.$$/$m"
    strip --strip-debug "$dest.tmp.$$/$m" || fail "cannot strip $m"
done
touch "$dest.tmp.$$/.complete"
mkdir -p "$(dirname "$dest")"
# Another run may have finished first; keep whichever is in place.
mv -T "$dest.tmp.$$" "$dest" 2>/dev/null || rm -rf "$dest.tmp.$$"
echo "$dest"
