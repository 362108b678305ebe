#!/bin/sh
# NVMe bench, run INSIDE the guest of run-in-guest.sh, side by side in one boot on the same
# emulated controller: fio (io_uring, O_DIRECT) on the kernel's nvme driver, then
# sluice-blkperf through VFIO; 4 KiB random reads at QD 1 and QD 32, same span (the whole
# namespace), same time, one job / one lcore on CPU 0.
#
#   bench/qemu/run-in-guest.sh --nics 0 --out DIR -- bench/qemu/bench-nvme.sh TARGET/release [SECONDS]
#
# Needs fio on the host (the guest runs the host's /). Raw JSON of every run goes to
# $SLUICE_GUEST_OUT; a summary table is printed at the end.
set -eu
bin=${1:?usage: bench-nvme.sh DIR-WITH-sluice-devbind-AND-sluice-blkperf [SECONDS]}
secs=${2:-10}
nvme=${SLUICE_GUEST_NVME:?the guest has no NVMe}
out=${SLUICE_GUEST_OUT:-/tmp}
command -v fio >/dev/null || { echo "bench-nvme: fio is not installed on the host (apt-get install fio)"; exit 1; }

dev=
for d in /sys/bus/pci/devices/"$nvme"/nvme/nvme*/nvme*n1; do dev=/dev/${d##*/}; done
[ -b "$dev" ] || { echo "bench-nvme: no block device for $nvme"; exit 1; }

for qd in 1 32; do
    echo "== fio io_uring O_DIRECT on $dev (kernel nvme driver): randread 4 KiB QD $qd, ${secs} s"
    taskset -c 0 fio --name=randread --filename="$dev" --ioengine=io_uring --direct=1 \
        --rw=randread --bs=4k --iodepth="$qd" --numjobs=1 --time_based --runtime="$secs" \
        --lat_percentiles=1 --output-format=json --output="$out/fio-qd$qd.json"
done

"$bin/sluice-devbind" bind "$nvme"
for qd in 1 32; do
    echo "== sluice-blkperf through VFIO: randread 4 KiB QD $qd, ${secs} s"
    "$bin/sluice-blkperf" --target "nvme:$nvme" -w randread -o 4096 -q "$qd" -t "$secs" -c 0 \
        --json > "$out/blkperf-qd$qd.json"
done
echo "== sluice-blkperf without shadow doorbells: randread 4 KiB QD 32, ${secs} s"
"$bin/sluice-blkperf" --target "nvme:$nvme" -w randread -o 4096 -q 32 -t "$secs" -c 0 \
    --no-shadow-doorbells --json > "$out/blkperf-qd32-noshadow.json"
"$bin/sluice-devbind" bind --driver nvme "$nvme"

/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = []
for qd in (1, 32):
    j = json.load(open(f"{out}/fio-qd{qd}.json"))["jobs"][0]["read"]
    p = j["lat_ns"]["percentile"]
    rows.append((f"fio io_uring, kernel nvme", qd, j["iops"], p["50.000000"] / 1e3, p["99.000000"] / 1e3, None))
for qd, name, f in ((1, "sluice-blkperf, VFIO", "blkperf-qd1"), (32, "sluice-blkperf, VFIO", "blkperf-qd32"),
                    (32, "sluice-blkperf, no shadow db", "blkperf-qd32-noshadow")):
    # --json: a record each second, then the report on the last line.
    t = json.loads(open(f"{out}/{f}.json").read().splitlines()[-1])["total"]
    rows.append((name, qd, t["iops"], t["percentiles_us"]["50"], t["percentiles_us"]["99"], t["doorbells_per_io"]))
print(f"\n{'':30} {'QD':>3} {'IOPS':>10} {'p50 us':>9} {'p99 us':>9} {'MMIO db/IO':>10}")
for name, qd, iops, p50, p99, db in rows:
    print(f"{name:30} {qd:>3} {iops:>10.0f} {p50:>9.1f} {p99:>9.1f} {'' if db is None else f'{db:.3f}':>10}")
PY
