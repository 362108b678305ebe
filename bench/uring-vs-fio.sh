#!/bin/sh
# Host bench: sluice-blkperf's io_uring backend against fio (io_uring, O_DIRECT) on the same
# file, 4 KiB random reads at QD 1 and QD 32, both pinned to the same CPU, alternating,
# ROUNDS times.
#
#   bench/uring-vs-fio.sh FILE [SECONDS] [ROUNDS] [CPU]
#
# FILE must hold real data (e.g. dd from /dev/urandom): unwritten extents read as zeros
# without I/O. Needs fio and python3; sluice-blkperf from
# `cargo build --release -p sluice-apps --bin sluice-blkperf`.
set -eu
file=${1:?usage: uring-vs-fio.sh FILE [SECONDS] [ROUNDS] [CPU]}
secs=${2:-10} rounds=${3:-3} cpu=${4:-0}
perf=${SLUICE_BLKPERF:-${CARGO_TARGET_DIR:-target}/release/sluice-blkperf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
    for qd in 1 32; do
        taskset -c "$cpu" fio --name=r --filename="$file" --ioengine=io_uring --direct=1 \
            --rw=randread --bs=4k --iodepth="$qd" --numjobs=1 --time_based --runtime="$secs" \
            --lat_percentiles=1 --output-format=json --output="$tmp/fio-$qd-$r.json"
        "$perf" --target "$file" -w randread -o 4096 -q "$qd" -t "$secs" -c "$cpu" --json \
            > "$tmp/blkperf-$qd-$r.json"
    done
done
python3 - "$tmp" "$rounds" <<'PY'
import json, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
print(f"{'':22} {'QD':>3} {'round':>5} {'IOPS':>9} {'p50 us':>8} {'p99 us':>8}")
for qd in (1, 32):
    for r in range(1, rounds + 1):
        j = json.load(open(f"{tmp}/fio-{qd}-{r}.json"))["jobs"][0]["read"]
        p = j["lat_ns"]["percentile"]
        print(f"{'fio io_uring':22} {qd:>3} {r:>5} {j['iops']:>9.0f} {p['50.000000']/1e3:>8.1f} {p['99.000000']/1e3:>8.1f}")
        t = json.load(open(f"{tmp}/blkperf-{qd}-{r}.json"))["total"]
        pc = t["percentiles_us"]
        print(f"{'sluice-blkperf io_uring':22} {qd:>3} {r:>5} {t['iops']:>9.0f} {pc['50']:>8.1f} {pc['99']:>8.1f}")
PY
