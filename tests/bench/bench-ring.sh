#!/bin/bash
# Issue 3's benchmark: the worker's ring against fio on a raw twin and
# against QEMU's qcow driver, on one fully allocated qcow image and its raw
# twin, in one run.
#
#   bench-ring.sh [--quick] [--runtime S] [--rounds N] [--size MIB] [--keep]
#                 [--cases LIST]
#
# Measurements (each --runtime seconds, default 10; QD32, O_DIRECT):
#   randread 4K   ringbench on the qcow image | fio libaio on the raw twin |
#                 qemu-nbd -t --cache=none --aio=native + fio --ioengine=nbd
#   read 4K       sequential: ringbench | fio | qemu-img bench -t none -i native
#   l2miss 4K     randread with the worker's L2 cache at --l2-cache 64k (16
#                 tables of the image's SIZE/2 MiB): nearly every request
#                 misses the cache and needs an L2 read first | fio on the raw
#                 twin, measured right after
#   write 64K     sequential allocating writes to an empty image, one pass
#                 over the image or --runtime, a flush at the end included:
#                 ringbench on an empty qcow | fio on an empty (sparse) raw
#                 file | qemu-img bench -w on an empty qcow
#   write 4K      the same with 4 KiB writes (information)
#   null 4K       ringbench --null: the ring alone, randread QD32, client on
#                 CPU 0 and worker on CPU 1: as shipped (the client library
#                 spins 50 us before it sleeps), with no spin at all (--spin 0:
#                 every wait is a cross-CPU wake-up), with the worker
#                 busy-polling too (--worker-poll 50); then both on CPU 0
# With --rounds N every measurement is repeated N times (interleaved) and
# the median is reported.  --quick: 256 MiB images, 2 s, one round.
# --cases: a comma-separated subset of rr,sr,l2miss,write,null (default: all),
# e.g. --cases l2miss for the L2-miss case alone.
# Targets (issue 3): randread 4K >= 0.9x raw, write 64K >= 0.5x raw, both
# >= 3x QEMU; null >= 500k requests/s.  Issue 11: l2miss >= 0.8x raw.
#
# Tools: RINGBENCH, QCOWD_WORKER, QCOWCTL (default: the build tree via
# top_builddir, else PATH), QEMU_IMG, QEMU_NBD, FIO; jq.
# BENCH_DIR: where the images go (default $TMPDIR or /var/tmp; not tmpfs).
. "$(dirname "$0")/lib.sh"

RUNTIME=10 ROUNDS=1 SIZE=1024 QUICK=0 CASES=rr,sr,l2miss,write,null
while [ $# -gt 0 ]; do
    case $1 in
    --quick) RUNTIME=2 ROUNDS=1 SIZE=256 QUICK=1 ;;
    --runtime) RUNTIME=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --keep) BENCH_KEEP=1 ;;
    --cases) CASES=$2; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
    esac
    shift
done

find_tool RINGBENCH tests/bench/ringbench ringbench
find_tool QCOWD_WORKER daemon/qcowd-worker qcowd-worker
find_tool QCOWCTL ctl/qcowctl qcowctl
find_tool QEMU_IMG "" qemu-img
find_tool QEMU_NBD "" qemu-nbd
find_tool FIO "" fio
need jq
export QCOWD_WORKER
HAVE_NBD=1
if ! "$FIO" --enghelp=nbd >/dev/null 2>&1; then
    HAVE_NBD=0
    note "fio has no nbd engine: the QEMU random-read figure is skipped"
fi

setup_workdir
CROSS_CPU=0
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    CROSS_CPU=1
    printf '#!/bin/sh\nexec taskset -c 1 "%s" "$@"\n' "$QCOWD_WORKER" >"$W/worker-on-cpu1"
    chmod +x "$W/worker-on-cpu1"
else
    note "fewer than 2 CPUs or no taskset: the null figures are as the scheduler places them"
fi
echo "== ring benchmark: ${SIZE} MiB images, ${RUNTIME} s per measurement, $ROUNDS round(s)"
machine_line
echo "$("$QEMU_IMG" --version | head -1); $("$FIO" --version)"

QCOW=$W/full.qcow RAW=$W/twin.raw NBD_SOCK=$W/nbd.sock
SIZE_B=$((SIZE << 20))

echo "-- making the images"
head -c "$SIZE_B" /dev/urandom >"$RAW"
"$QCOWCTL" -q convert -f raw -O qcow "$RAW" "$QCOW"
alloc=$("$QCOWCTL" --json info "$QCOW" | jq -r '.["allocated-clusters"]' 2>/dev/null || true)
"$QEMU_IMG" compare -q -f qcow -F raw "$QCOW" "$RAW" || die "the qcow image and its raw twin differ"
echo "full.qcow: every cluster allocated (${alloc:-?} clusters), equal to twin.raw (qemu-img compare)"

# ---- runners: each prints "IOPS MIBS P50US P99US" -------------------------

ring() { # ringbench args...
    local out
    out=$("$RINGBENCH" --json --worker-log "$W/worker.log" "$@") ||
        { cat "$W/worker.log" >&2; die "ringbench $* failed"; }
    echo "$out" >>"$W/ringbench.jsonl"
    jq -r '"\(.iops) \(.mib_s) \(.lat.p50_us) \(.lat.p99_us) \(.cpu_worker) \(.image_fds_o_direct)"' <<<"$out"
}

fio_run() { # fio args... (a job named j; prints the figures of its read or write side)
    "$FIO" --name=j --output-format=json --output="$W/fio.json" "$@" >/dev/null 2>"$W/fio.err" ||
        { cat "$W/fio.err" >&2; die "fio $* failed"; }
    jq -r '.jobs[0] | (if .read.io_bytes > 0 then .read else .write end) |
        "\(.iops) \(.bw_bytes / 1048576) \(.clat_ns.percentile["50.000000"] / 1000) \(.clat_ns.percentile["99.000000"] / 1000) - -"' \
        "$W/fio.json"
}

nbd_start() { # image
    rm -f "$NBD_SOCK"
    "$QEMU_NBD" -t --cache=none --aio=native -f qcow -k "$NBD_SOCK" "$1" 2>"$W/nbd.log" &
    NBD_PID=$!
    CLEANUP_PIDS+=("$NBD_PID")
    for _ in $(seq 100); do
        [ -S "$NBD_SOCK" ] && return 0
        kill -0 "$NBD_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$W/nbd.log" >&2
    die "qemu-nbd did not start"
}

nbd_stop() {
    kill "$NBD_PID" 2>/dev/null || true
    wait "$NBD_PID" 2>/dev/null || true
}

# qemu-img bench: COUNT requests; prints "IOPS MIBS - - - -" from the wall
# time of the whole command (open, run, flush and close).
qemu_bench() { # bs count args...
    local bs=$1 count=$2; shift 2
    timed "$QEMU_IMG" bench -f qcow -t none -i native -d 32 -s "$bs" -c "$count" "$@"
    [ "$RC" = 0 ] || { cat "$W/last.log" >&2; die "qemu-img bench $* failed"; }
    awk -v t="$T" -v n="$count" -v bs="$bs" 'BEGIN {
        printf "%.1f %.2f - - - -\n", n / t, n * bs / t / 1048576 }'
}

# How many requests qemu-img bench gets through in about RUNTIME seconds:
# time a small batch first (on a scratch copy for writes).
qemu_count() { # bs max args...
    local bs=$1 max=$2 probe; shift 2
    probe=$((max < 2048 ? max : 2048))
    timed "$QEMU_IMG" bench -f qcow -t none -i native -d 32 -s "$bs" -c "$probe" "$@"
    awk -v t="$T" -v p="$probe" -v r="$RUNTIME" -v m="$max" 'BEGIN {
        n = int(p / t * r); if (n > m) n = m; if (n < p) n = p; print n }'
}

fresh_qcow() { rm -f "$1"; "$QEMU_IMG" create -q -f qcow "$1" "$SIZE_B"; }
fresh_raw() { rm -f "$1"; truncate -s "$SIZE_B" "$1"; }

declare -A R     # R[test/who] = list of result lines, one per round

add() { R[$1]+="$2"$'\n'; }

# column COL of the latest round of a test
last() { # key col
    printf '%s' "${R[$1]:-}" | awk -v c="$2" 'NF { v = $c } END { print (v == "" || v == "-") ? "n/a" : v }'
}

# median of column COL (1-based) over the rounds of a test
med() { # key col
    local vals
    vals=$(printf '%s' "${R[$1]:-}" | awk -v c="$2" 'NF && $c != "-" { print $c }')
    [ -n "$vals" ] || { echo n/a; return; }
    median $vals
}

FIO_COMMON=(--ioengine=libaio --direct=1 --iodepth=32)

want() { [[ ",$CASES," == *",$1,"* ]]; }

for ((round = 1; round <= ROUNDS; round++)); do
    echo "-- round $round of $ROUNDS"

    # 4 KiB random reads, QD32.  Drop the image from the page cache first
    # so that what is cached afterwards shows whether O_DIRECT was used.
    if want rr; then
    dd if="$QCOW" iflag=nocache count=0 status=none
    add rr/ring "$(ring --rw randread --bs 4k --iodepth 32 --runtime "$RUNTIME" "$QCOW")"
    if [ "$round" = 1 ] && command -v fincore >/dev/null; then
        cached=$(fincore -b -n -o RES "$QCOW" | tr -d ' ')
        echo "page cache after the ring's random reads: $((cached >> 10)) KiB of full.qcow" \
             "(O_DIRECT: only metadata read through the page cache)"
    fi
    add rr/raw "$(fio_run --filename="$RAW" "${FIO_COMMON[@]}" --rw=randread --bs=4k \
        --runtime="$RUNTIME" --time_based)"
    if [ "$HAVE_NBD" = 1 ]; then
        nbd_start "$QCOW"
        add rr/qemu "$(fio_run --ioengine=nbd --uri="nbd+unix:///?socket=$NBD_SOCK" \
            --iodepth=32 --rw=randread --bs=4k --runtime="$RUNTIME" --time_based)"
        nbd_stop
    fi
    echo "randread 4K: ring $(fmt "$(last rr/ring 1)" %.0f), raw $(fmt "$(last rr/raw 1)" %.0f), qemu-nbd $(fmt "$(last rr/qemu 1)" %.0f) IOPS"
    fi

    # The same when the L2 tables do not fit the worker's cache: 64 KiB
    # holds 16 tables of 4 KiB, the image has one per 2 MiB.
    if want l2miss; then
    add l2/ring "$(ring --l2-cache 64k --rw randread --bs 4k --iodepth 32 --runtime "$RUNTIME" "$QCOW")"
    add l2/raw "$(fio_run --filename="$RAW" "${FIO_COMMON[@]}" --rw=randread --bs=4k \
        --runtime="$RUNTIME" --time_based)"
    echo "randread 4K, L2 misses: ring $(fmt "$(last l2/ring 1)" %.0f), raw $(fmt "$(last l2/raw 1)" %.0f) IOPS"
    fi

    # 4 KiB sequential reads, QD32.
    if want sr; then
    add sr/ring "$(ring --rw read --bs 4k --iodepth 32 --time-based --runtime "$RUNTIME" "$QCOW")"
    add sr/raw "$(fio_run --filename="$RAW" "${FIO_COMMON[@]}" --rw=read --bs=4k \
        --runtime="$RUNTIME" --time_based)"
    n=$(qemu_count 4096 $((SIZE_B / 4096)) "$QCOW")
    add sr/qemu "$(qemu_bench 4096 "$n" "$QCOW")"
    echo "read 4K: ring $(fmt "$(last sr/ring 1)" %.0f), raw $(fmt "$(last sr/raw 1)" %.0f), qemu-img bench $(fmt "$(last sr/qemu 1)" %.0f) IOPS"
    fi

    # Sequential allocating writes to empty images, flushed at the end.
    for bs in 64 4; do
        want write || continue
        [ "$bs" = 4 ] && [ "$QUICK" = 1 ] && continue
        fresh_qcow "$W/empty.qcow"
        add "w$bs/ring" "$(ring --rw write --bs ${bs}k --iodepth 32 --runtime "$RUNTIME" \
            --end-fsync "$W/empty.qcow")"
        fresh_raw "$W/empty.raw"
        add "w$bs/raw" "$(fio_run --filename="$W/empty.raw" "${FIO_COMMON[@]}" --rw=write \
            --bs=${bs}k --size="$SIZE_B" --runtime="$RUNTIME" --fallocate=none --end_fsync=1)"
        fresh_qcow "$W/empty.qcow"
        n=$(qemu_count $((bs * 1024)) $((SIZE_B / (bs * 1024))) -w "$W/empty.qcow")
        fresh_qcow "$W/empty.qcow"
        add "w$bs/qemu" "$(qemu_bench $((bs * 1024)) "$n" -w "$W/empty.qcow")"
        rm -f "$W/empty.qcow" "$W/empty.raw"
        echo "write ${bs}K allocating: ring $(fmt "$(last w$bs/ring 2)" %.1f), raw $(fmt "$(last w$bs/raw 2)" %.1f)," \
             "qemu-img bench $(fmt "$(last w$bs/qemu 2)" %.1f) MiB/s"
    done

    # The ring alone, client and worker pinned to different CPUs (left to
    # the scheduler the figures are bimodal; see doc/performance.md).
    if ! want null; then
        :
    elif [ "$CROSS_CPU" = 1 ]; then
        null_ring() { # key ringbench-options...
            local key=$1; shift
            add "$key/ring" "$(taskset -c 0 "$RINGBENCH" --json --worker "$W/worker-on-cpu1" \
                --null --rw randread --bs 4k --iodepth 32 --runtime "$RUNTIME" "$@" "$QCOW" |
                tee -a "$W/ringbench.jsonl" |
                jq -r '"\(.iops) \(.mib_s) \(.lat.p50_us) \(.lat.p99_us) \(.cpu_worker) -"')"
        }
        null_ring null
        null_ring nullsleep --spin 0
        null_ring nullpoll --worker-poll 50
        # Both on one CPU: what the ring costs when no wake-up crosses CPUs.
        add null1/ring "$(taskset -c 0 "$RINGBENCH" --json --null --rw randread --bs 4k \
            --iodepth 32 --runtime "$RUNTIME" "$QCOW" | tee -a "$W/ringbench.jsonl" |
            jq -r '"\(.iops) \(.mib_s) \(.lat.p50_us) \(.lat.p99_us) \(.cpu_worker) -"')"
    else
        add null/ring "$(ring --null --rw randread --bs 4k --iodepth 32 --runtime "$RUNTIME" "$QCOW")"
    fi
    want null && echo "null 4K: $(fmt "$(last null/ring 1)" %.0f) requests/s;" \
         "no spin: $(fmt "$(last nullsleep/ring 1)" %.0f);" \
         "worker polling too: $(fmt "$(last nullpoll/ring 1)" %.0f);" \
         "on one CPU: $(fmt "$(last null1/ring 1)" %.0f) requests/s"
done

# ---- the report ---------------------------------------------------------------

echo
echo "== results (median of $ROUNDS round(s); ring = ringbench through qcowd-worker)"
printf '%-26s %11s %11s %11s %9s %-10s %9s %-10s\n' test ring "raw fio" QEMU ring/raw target \
    ring/QEMU target
row() { # label key col raw-target qemu-target format
    local ring raw qemu rr rq
    ring=$(med "$2/ring" "$3") raw=$(med "$2/raw" "$3") qemu=$(med "$2/qemu" "$3")
    rr=$(ratio "$ring" "$raw") rq=$(ratio "$ring" "$qemu")
    printf '%-26s %11s %11s %11s %8sx %-10s %8sx %-10s\n' "$1" "$(fmt "$ring" "$6")" \
        "$(fmt "$raw" "$6")" "$(fmt "$qemu" "$6")" "$rr" "${4:+>=$4 $(verdict "$rr" "$4")}" \
        "$rq" "${5:+>=$5 $(verdict "$rq" "$5")}"
}
row "randread 4K QD32 IOPS" rr 1 0.9 3 %.0f
row "randread 4K L2-miss IOPS" l2 1 0.8 "" %.0f
row "read 4K QD32 IOPS" sr 1 "" "" %.0f
row "write 64K alloc MiB/s" w64 2 0.5 3 %.1f
[ "$QUICK" = 1 ] || row "write 4K alloc MiB/s" w4 2 "" "" %.1f
null=$(fmt "$(med null/ring 1)" %.0f)
printf '%-26s %11s %11s %11s %9s %-10s\n' "null 4K QD32 req/s" "$(fmt "$null" %.0f)" - - - \
    ">=500k $(verdict "$(ratio "$null" 500000)" 1)"
null_info() { # label key
    local v
    v=$(fmt "$(med "$2/ring" 1)" %.0f)
    [ "$v" = n/a ] || printf '%-26s %11s %11s %11s %9s %-10s\n' "$1" "$v" - - - "(info)"
}
null_info "  no spin on either side" nullsleep
null_info "  worker polling too" nullpoll
null_info "  both on one CPU" null1
echo
echo "latency p50/p99 (us, from the client) and worker CPU (share of one core), median:"
for k in rr l2 sr w64 w4 null nullsleep nullpoll null1; do
    for who in ring raw qemu; do
        [ -n "${R[$k/$who]:-}" ] || continue
        printf '  %-9s %-5s p50 %9s  p99 %9s  worker cpu %s\n' "$k" "$who" \
            "$(fmt "$(med $k/$who 3)" %.1f)" "$(fmt "$(med $k/$who 4)" %.1f)" \
            "$(fmt "$(med $k/$who 5)" %.2f)"
    done
done
[ "$BENCH_KEEP" = 1 ] && echo "ringbench JSON lines: $W/ringbench.jsonl"
exit 0
