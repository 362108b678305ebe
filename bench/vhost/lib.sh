# Shared by interop-testpmd.sh and latency.sh (sourced, not run; the loopback benches take
# wait_for and cpu_ns from it): DPDK's testpmd with vhost
# ports in io forwarding, driven through a fifo, and sluice-pktgen's configuration with two
# virtio-user ports on them. The caller sets `work` (a directory it removes), `prefix` (the
# DPDK file prefix) and `queues`, and calls `vhost_cleanup` on exit.

cur_log="" tp="" gen=""

fail() {
    if [ -n "$cur_log" ] && [ -f "$cur_log" ]; then
        echo "--- testpmd's log (last 40 lines) ---" >&2
        tail -40 "$cur_log" >&2
    fi
    echo "$(basename "$0"): FAIL: $*" >&2
    exit 1
}

step() { printf '\n== %s\n' "$*"; }

# Stops what was started (pktgen, testpmd) and removes the work dir and DPDK's runtime files.
vhost_cleanup() {
    local p i
    for p in $gen $tp; do
        kill -INT "$p" 2>/dev/null || true
    done
    for p in $gen $tp; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ -n "${SLUICE_VHOST_KEEP:-}" ] || rm -rf "$work"
    rm -rf "/var/run/dpdk/$prefix"
}

# Bounded wait until file $1 has at least $3 lines matching $2 while pid $4 lives (the bound,
# 2 min, only ends a hang: a busy host slows these steps, it does not fail them).
wait_for() {
    local file=$1 re=$2 n=$3 pid=$4 i=0 c
    # grep -c prints nothing for a log not yet there.
    until c=$(grep -cE "$re" "$file" 2>/dev/null); [ "${c:-0}" -ge "$n" ]; do
        i=$((i + 1))
        if [ $i -gt 1200 ] || ! kill -0 "$pid" 2>/dev/null; then
            tail -40 "$file" >&2
            return 1
        fi
        sleep 0.1
    done
}

# On-CPU nanoseconds of every thread of pid $1 (schedstat's first field).
cpu_ns() {
    local sum=0 t v
    for t in /proc/"$1"/task/*/schedstat; do
        read -r v _ < "$t" 2>/dev/null || continue
        sum=$((sum + v))
    done
    echo "$sum"
}

# Starts dpdk-testpmd in io forwarding (pid in $tp, commands on fd 3) with EAL arguments up
# to `--`, then testpmd arguments; $1 is its log. Waits for its prompt; skips (exit 0) where
# EAL cannot run.
# --no-flush-rx: testpmd's `start` otherwise drains every rx queue and frees what it finds,
# which are the generator's first frames when they arrived before the `start` (DPDK 22.11
# app/test-pmd/testpmd.c, start_packet_forwarding(): flush_fwd_rx_queues() unless
# --no-flush-rx).
start_testpmd() {
    local log=$1 eal=()
    shift
    while [ "$1" != -- ]; do eal+=("$1"); shift; done
    shift
    cur_log=$log
    rm -f "$work"/*.sock "$work/testpmd.in"
    mkfifo "$work/testpmd.in"
    # --no-huge: the vhost PMD maps the frontend's memfd memory; its own mbufs sit on 4 KiB
    # pages, hence the small pool (docs/devices.md#dpdk-vhost-pmd).
    stdbuf -oL dpdk-testpmd -l 0,1 --no-pci --no-huge -m 512 --file-prefix "$prefix" \
        "${eal[@]}" -- -i --forward-mode=io --nb-cores=1 --no-flush-rx \
        --total-num-mbufs 8192 "$@" < "$work/testpmd.in" > "$log" 2>&1 &
    tp=$!
    exec 3> "$work/testpmd.in"
    if ! wait_for "$log" 'testpmd> ' 1 "$tp"; then
        if grep -qE 'EAL: (Cannot|FATAL|Error)|Cannot init' "$log"; then
            echo "skipped: dpdk-testpmd cannot run on this machine: $(grep -m1 -E 'EAL: (Cannot|FATAL|Error)|Cannot init' "$log")"
            exit 0
        fi
        fail "dpdk-testpmd did not come up"
    fi
}

# Stops testpmd's forwarding (its statistics go to the log) and testpmd.
stop_testpmd() {
    echo stop >&3
    wait_for "$cur_log" 'Accumulated forward statistics' 1 "$tp" || fail "testpmd did not stop"
    echo quit >&3
    exec 3>&-
    wait "$tp" || true
    tp=""
    rm -f "$work/testpmd.in"
}

# testpmd with net_vhost0 on $work/vhost0.sock and net_vhost1 on $work/vhost1.sock, $queues
# queue pairs each; io forwarding pairs them (0 -> 1, 1 -> 0). $1: its log.
start_testpmd_pair() {
    start_testpmd "$1" \
        --vdev "net_vhost0,iface=$work/vhost0.sock,queues=$queues" \
        --vdev "net_vhost1,iface=$work/vhost1.sock,queues=$queues" -- \
        --rxq="$queues" --txq="$queues"
}

# sluice-pktgen's configuration for start_testpmd_pair: the generator gen0 on net_vhost0,
# the sink sink0 on net_vhost1; the sink's port first, so that its vhost port is up (and its
# receive ring filled) before the generator's, whose frames testpmd forwards to it. $1: split
# or packed.
pktgen_config() {
    local ring=$1 split=""
    [ "$ring" = split ] && split='packed = false'
    cat <<EOT
[[mempools]]
name = "pkt"
buffers = 8191
buffer_size = 2048
cache_size = 256
hugepages = "none"

[[ports]]
name = "sink0"
driver = "virtio-user"
path = "$work/vhost1.sock"
queues = $queues
rx_descriptors = 1024
tx_descriptors = 1024
$split

[[ports]]
name = "gen0"
driver = "virtio-user"
path = "$work/vhost0.sock"
queues = $queues
rx_descriptors = 1024
tx_descriptors = 1024
$split

[stats]
interval_ms = 0
EOT
}
