#!/bin/bash
# Issue 12's benchmark: an image served over NBD by qcowd (a supervised
# export: nbdkit with nbdkit-qcowd-plugin, the worker behind the ring)
# against qemu-nbd serving the same qcow image and qemu-nbd serving its raw
# twin, all measured by fio's nbd engine over a unix socket, in one run.
#
#   bench-nbd.sh [--quick] [--runtime S] [--rounds N] [--size MIB] [--keep]
#
# Measurements (QD32, one NBD connection, O_DIRECT on the server side:
# attach --cache none, qemu-nbd -t --cache=none --aio=native):
#   randread 4K    --runtime seconds on a fully allocated image (random data)
#   write 64K      allocating writes: random 64 KiB writes over an empty
#                  image (a fresh qcow, a fresh sparse raw file), one pass or
#                  --runtime seconds, whichever ends first, with a flush at
#                  the end (fio's end_fsync)
# Every measurement is repeated --rounds times (default 3), the three
# servers interleaved, and the median is reported with the ratios
# qcowd / qemu-nbd(qcow) and qcowd / qemu-nbd(raw).
# Goals (issue 12): >= 3x qemu-nbd on qcow, >= 0.8x qemu-nbd on the raw twin.
# --quick: 256 MiB, 3 s, one round.
#
# Tools: QCOWD, QCOWD_WORKER, QCOWCTL, NBDKIT_PLUGIN (default: the build
# tree via top_builddir, else PATH), NBDKIT, QEMU_IMG, QEMU_NBD, FIO; jq.
# BENCH_DIR: where the images go (default $TMPDIR or /var/tmp; not tmpfs).
. "$(dirname "$0")/lib.sh"

RUNTIME=10 ROUNDS=3 SIZE=1024
while [ $# -gt 0 ]; do
    case $1 in
    --quick) RUNTIME=3 ROUNDS=1 SIZE=256 ;;
    --runtime) RUNTIME=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --keep) BENCH_KEEP=1 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
    esac
    shift
done

find_tool QCOWD daemon/qcowd qcowd
find_tool QCOWD_WORKER daemon/qcowd-worker qcowd-worker
find_tool QCOWCTL ctl/qcowctl qcowctl
find_tool NBDKIT_PLUGIN nbdkit/.libs/nbdkit-qcowd-plugin.so nbdkit-qcowd-plugin.so
find_tool NBDKIT "" nbdkit
find_tool QEMU_IMG "" qemu-img
find_tool QEMU_NBD "" qemu-nbd
find_tool FIO "" fio
need jq
"$FIO" --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine (Debian's fio has)"
ldd "$NBDKIT_PLUGIN" | grep -q libasan &&
    note "warning: the plugin is a sanitizer build: the figures mean little"

setup_workdir
machine_line
SOCK=$W/qcowd.sock
NBD_SOCK=$W/nbd.sock

# ---- the three servers ---------------------------------------------------------

"$QCOWD" --socket "$SOCK" --worker "$QCOWD_WORKER" --no-state --nbdkit "$NBDKIT" \
    --nbdkit-plugin "$NBDKIT_PLUGIN" --log-level warning 2>"$W/qcowd.log" &
QCOWD_PID=$!
CLEANUP_PIDS+=("$QCOWD_PID")
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$W/qcowd.log" >&2; die "qcowd did not start"; }
ctl() { "$QCOWCTL" --socket "$SOCK" "$@"; }

# server_start KIND IMAGE: serve IMAGE on $NBD_SOCK (qcowd, qemu-qcow, qemu-raw)
server_start() {
    rm -f "$NBD_SOCK"
    case $1 in
    qcowd)
        ctl attach --name bench --cache none "$2" >/dev/null || die "attach $2"
        ctl export add bench --nbd "unix:$NBD_SOCK" >/dev/null || die "export add"
        ;;
    qemu-*)
        local fmt=${1#qemu-}
        "$QEMU_NBD" -t --cache=none --aio=native -f "$fmt" -k "$NBD_SOCK" "$2" \
            2>"$W/qemu-nbd.log" &
        NBD_PID=$!
        CLEANUP_PIDS+=("$NBD_PID")
        for _ in $(seq 100); do [ -S "$NBD_SOCK" ] && return 0; sleep 0.1; done
        cat "$W/qemu-nbd.log" >&2
        die "qemu-nbd did not start"
        ;;
    esac
}

server_stop() {
    case $1 in
    qcowd) ctl detach bench >/dev/null || die "detach" ;;
    qemu-*) kill "$NBD_PID" 2>/dev/null || true; wait "$NBD_PID" 2>/dev/null || true ;;
    esac
}

# fio RW BS [options...]: prints "IOPS MIB/S"
run_fio() {
    local rw=$1 bs=$2
    shift 2
    "$FIO" --name=nbd --ioengine=nbd --uri="nbd+unix:///?socket=$NBD_SOCK" --rw="$rw" \
        --bs="$bs" --iodepth=32 --output-format=json "$@" >"$W/fio.json" 2>"$W/fio.err" ||
        { cat "$W/fio.err" >&2; die "fio $rw $bs failed"; }
    # (the nbd engine says "connected" on stdout before the JSON)
    sed -n '/^{/,$p' "$W/fio.json" | jq -r '.jobs[0] |
        (if .read.io_bytes > 0 then .read else .write end) | "\(.iops) \(.bw_bytes / 1048576)"'
}

# ---- images ---------------------------------------------------------------------

echo "images: ${SIZE} MiB; randread ${RUNTIME} s; ${ROUNDS} round(s)"
head -c "${SIZE}M" /dev/urandom >"$W/full.raw"
"$QEMU_IMG" convert -O qcow "$W/full.raw" "$W/full.qcow"
# The 2 GiB just written would otherwise still be going to the disk during
# the first measurement (always qcowd's), competing with its reads.
sync
fresh_images() {
    rm -f "$W/empty.qcow" "$W/empty.raw"
    "$QEMU_IMG" create -f qcow "$W/empty.qcow" "${SIZE}M" >/dev/null
    truncate -s "${SIZE}M" "$W/empty.raw"
}

declare -A R
record() { R[$1]="${R[$1]:-} $2"; }

for ((round = 1; round <= ROUNDS; round++)); do
    for kind in qcowd qemu-qcow qemu-raw; do
        img=$W/full.qcow
        [ $kind = qemu-raw ] && img=$W/full.raw
        server_start $kind "$img"
        read -r iops _ < <(run_fio randread 4k --runtime="$RUNTIME" --time_based=1 \
            --size="${SIZE}M")
        server_stop $kind
        record "rr/$kind" "$iops"
        echo "round $round randread 4K  $kind: $(fmt "$iops" %.0f) IOPS"

        fresh_images
        img=$W/empty.qcow
        [ $kind = qemu-raw ] && img=$W/empty.raw
        server_start $kind "$img"
        read -r _ mibs < <(run_fio randwrite 64k --size="${SIZE}M" --runtime="$RUNTIME" \
            --end_fsync=1)
        server_stop $kind
        record "wr/$kind" "$mibs"
        echo "round $round write 64K    $kind: $(fmt "$mibs" %.1f) MiB/s"
    done
done

med() { median ${R[$1]}; }
echo
echo "medians of $ROUNDS round(s), QD32 over NBD (fio nbd engine):"
printf '%-22s %12s %14s %14s %12s %12s\n' workload qcowd qemu-nbd-qcow qemu-nbd-raw \
    "vs qcow" "vs raw"
for w in rr wr; do
    q=$(med "$w/qcowd") a=$(med "$w/qemu-qcow") b=$(med "$w/qemu-raw")
    rq=$(ratio "$q" "$a") rr=$(ratio "$q" "$b")
    if [ $w = rr ]; then label="randread 4K (IOPS)"; f=%.0f; else label="write 64K (MiB/s)"; f=%.1f; fi
    printf '%-22s %12s %14s %14s %7s %-4s %7s %-4s\n' "$label" "$(fmt "$q" $f)" "$(fmt "$a" $f)" \
        "$(fmt "$b" $f)" "$rq" "$(verdict "$rq" 3)" "$rr" "$(verdict "$rr" 0.8)"
done
echo "goals: >= 3x qemu-nbd on the qcow image, >= 0.8x qemu-nbd on the raw twin"
