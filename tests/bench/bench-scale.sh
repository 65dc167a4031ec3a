#!/bin/bash
# Issue 10's benchmark: how many images one host holds, what each costs,
# whether a busy image among many idle ones keeps its speed, and whether
# attach/detach churn leaves anything behind.
#
#   bench-scale.sh [--quick] [--levels 100,250,500,1000] [--runtime S]
#                  [--rounds N] [--size MIB] [--churn-cycles N]
#                  [--churn-images N] [--no-qemu-nbd] [--keep]
#
# 1. Density.  qcowd starts under `ulimit -Sn 1024` (it raises its soft limit
#    to the hard one) and images (empty 64 MiB qcow files) are attached one
#    by one with `qcowctl attach` up to each level.  At each level: attach
#    p50/p99 (of the attaches that reached it), PSS per worker (mean and
#    max, from /proc/PID/smaps_rollup), qcowd's RSS and descriptors, the wall
#    time of `qcowctl list` (median of 5) and `qcowctl stats` of every image
#    (median of 3), the kernel AIO slots the workers hold (the sum of their
#    stats' aio depth) and how much fs.aio-nr rose (host-wide: other
#    programs move it too).  Every image must be running; at the top level
#    each one serves a 4 KiB read through its ring.
# 2. The same levels with one qemu-nbd per image, started with --fork (it
#    returns once it listens) and --aio=threads: --aio=native takes a
#    kernel AIO context of its own per image, whose size is measured here
#    and turned into the number of images a host's fs.aio-max-nr allows.
#    Skipped above the level whose processes would need more than 40 % of
#    MemAvailable.
# 3. Busy among idle: 4 KiB random reads at QD32 through qcowd (ringbench
#    --socket) on a fully allocated image, alone (before the density run and
#    after it) and among the top level's idle images, --rounds times each;
#    medians.
# 4. Churn: --churn-images images (default 10), each attached and detached
#    --churn-cycles times (default 1000) on a connection of its own, all in
#    parallel.  qcowd's RSS, descriptors and children before and after must
#    be flat; every request must succeed.
# Goals (issue 10): 1000 images on a stock host (fs.aio-max-nr 65536,
# ulimit -n 1024 at start), PSS <= 1 MiB per worker, attach p50 <= 20 ms and
# p99 <= 100 ms at N = 1000, busy among idle >= 0.90 of alone.
# --quick: levels 50,100, 2 s, 128 MiB, 100 churn cycles.
#
# The run takes 4 AIO slots per attached image from the host's budget
# (fs.aio-max-nr is shared by every program): it checks there is room
# first, and detaches everything at the end.
#
# Tools: QCOWD, QCOWD_WORKER, QCOWCTL, RINGBENCH, RINGIO, CTLRAW (default: the
# build tree via top_builddir, else PATH), QEMU_NBD; jq.
# BENCH_DIR: where the images go (default $TMPDIR or /var/tmp; not tmpfs).
. "$(dirname "$0")/lib.sh"

LEVELS=100,250,500,1000 RUNTIME=5 ROUNDS=2 SIZE=512 CHURN_CYCLES=1000 CHURN_IMAGES=10
WITH_NBD=1
while [ $# -gt 0 ]; do
    case $1 in
    --quick) LEVELS=50,100 RUNTIME=2 SIZE=128 CHURN_CYCLES=100 ROUNDS=1 ;;
    --levels) LEVELS=$2; shift ;;
    --runtime) RUNTIME=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --churn-cycles) CHURN_CYCLES=$2; shift ;;
    --churn-images) CHURN_IMAGES=$2; shift ;;
    --no-qemu-nbd) WITH_NBD=0 ;;
    --keep) BENCH_KEEP=1 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
    esac
    shift
done
IFS=, read -r -a LEVEL_LIST <<<"$LEVELS"
TOP=${LEVEL_LIST[-1]}

find_tool QCOWD daemon/qcowd qcowd
find_tool QCOWD_WORKER daemon/qcowd-worker qcowd-worker
find_tool QCOWCTL ctl/qcowctl qcowctl
find_tool RINGBENCH tests/bench/ringbench ringbench
find_tool RINGIO tests/daemon/ringio ringio
find_tool CTLRAW tests/daemon/ctlraw ctlraw
need jq
if [ "$WITH_NBD" = 1 ]; then
    find_tool QEMU_NBD "" qemu-nbd
fi

# ---- is there room on this host? -------------------------------------------

aio_nr() { cat /proc/sys/fs/aio-nr; }
AIO_MAX=$(cat /proc/sys/fs/aio-max-nr)
need_slots=$(( 4 * (TOP + 1 + CHURN_IMAGES) + 576 + AIO_MAX / 16 ))
[ $((AIO_MAX - $(aio_nr))) -ge "$need_slots" ] ||
    die "only $((AIO_MAX - $(aio_nr))) kernel AIO slots free (fs.aio-nr $(aio_nr) of $AIO_MAX); this run needs $need_slots"
HARD_NOFILE=$(ulimit -Hn)
[ "$HARD_NOFILE" = unlimited ] || [ "$HARD_NOFILE" -ge $((6 * (TOP + 1) + 128)) ] ||
    die "the hard open-file limit ($HARD_NOFILE) holds fewer than $TOP images: raise ulimit -Hn"

setup_workdir
echo "== scale benchmark: levels $LEVELS, busy image ${SIZE} MiB, ${RUNTIME} s x $ROUNDS, churn $CHURN_IMAGES x $CHURN_CYCLES"
machine_line
echo "fs.aio-max-nr $AIO_MAX, fs.aio-nr $(aio_nr) at start; ulimit -n: soft 1024 for qcowd, hard $HARD_NOFILE"

SOCK=$W/qcowd.sock
ctl() { "$QCOWCTL" --socket "$SOCK" "$@"; }
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }'; }
# quantile Q FILE: the value at that quantile of a column of numbers
quantile() { sort -g "$2" | awk -v q="$1" '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit } i = int(q * NR + 0.999999); if (i < 1) i = 1; print v[i] }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.2f\n", k / 1024 }'; }
# time_median N CMD...: median wall milliseconds of N runs of CMD
time_median() {
    local n=$1 i t0 ts=()
    shift
    for ((i = 0; i < n; i++)); do
        t0=$EPOCHREALTIME
        "$@" >/dev/null || die "$* failed"
        ts+=("$(ms_since "$t0")")
    done
    median "${ts[@]}"
}
# pss_of PID...: "MEAN_KIB MAX_KIB" of their PSS
pss_of() {
    local p files=()
    for p in "$@"; do files+=("/proc/$p/smaps_rollup"); done
    awk '/^Pss:/ { s += $2; n++; if ($2 > m) m = $2 } END { printf "%.0f %d\n", n ? s / n : 0, m }' \
        "${files[@]}" 2>/dev/null
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds_of() { ls "/proc/$1/fd" | wc -l; }
workers() { pgrep -P "$QCOWD_PID" || true; }

# ---- the images ----------------------------------------------------------------

echo "-- making the images"
mkdir -p "$W/img"
for ((i = 1; i <= TOP; i++)); do
    "$QCOWCTL" -q create "$W/img/i$i.qcow" 64M
done
for ((i = 1; i <= CHURN_IMAGES; i++)); do
    "$QCOWCTL" -q create "$W/img/c$i.qcow" 64M
done
head -c $((SIZE << 20)) /dev/urandom >"$W/busy.raw"
"$QCOWCTL" -q convert -f raw -O qcow "$W/busy.raw" "$W/busy.qcow"
rm -f "$W/busy.raw"
echo "$TOP empty 64 MiB images, $CHURN_IMAGES for the churn, busy.qcow fully allocated (${SIZE} MiB)"

# ---- qcowd ---------------------------------------------------------------------

AIO_BASE=$(aio_nr)
(ulimit -Sn 1024 && exec "$QCOWD" --socket "$SOCK" --worker "$QCOWD_WORKER" --no-state --log-level warning \
    2>"$W/qcowd.log") &
QCOWD_PID=$!
CLEANUP_PIDS+=("$QCOWD_PID")
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$W/qcowd.log" >&2; die "qcowd did not start"; }
nofile=$(awk '/^Max open files/ { print $4 "/" $5 }' "/proc/$QCOWD_PID/limits")
echo "qcowd pid $QCOWD_PID: open-file limits (soft/hard) $nofile after starting at 1024"
ctl version | sed -n 's/^/  /; /images:\|open files\|AIO/p'

ctl attach --read-only --name busy "$W/busy.qcow" >/dev/null || die "attach busy.qcow"
BUSY_PID=$(ctl --json query busy | jq -r .pid)

busy_run() { # label
    "$RINGBENCH" --socket "$SOCK" --worker-pid "$BUSY_PID" --json --rw randread --bs 4k \
        --iodepth 32 --runtime "$RUNTIME" busy >"$W/rb.json" || die "ringbench ($1) failed"
    cat "$W/rb.json" >>"$W/ringbench.jsonl"
    jq -r '.iops | floor' "$W/rb.json"
}
ALONE=() AMONG=()
for ((r = 0; r < ROUNDS; r++)); do ALONE+=("$(busy_run alone)"); done
echo "busy image alone: ${ALONE[*]} IOPS"

# ---- density -------------------------------------------------------------------

echo "-- density: attaching with qcowctl attach"
declare -A D
attached=0
for N in "${LEVEL_LIST[@]}"; do
    : >"$W/attach-$N.ms"
    while [ "$attached" -lt "$N" ]; do
        attached=$((attached + 1))
        t0=$EPOCHREALTIME
        ctl attach --name "i$attached" "$W/img/i$attached.qcow" >/dev/null 2>"$W/attach.err" ||
            die "attach #$attached failed: $(cat "$W/attach.err")"
        ms_since "$t0" >>"$W/attach-$N.ms"
    done
    running=$(ctl --json list | jq '[.[] | select(.state == "running")] | length')
    [ "$running" -eq $((N + 1)) ] || die "at $N images only $running are running"
    mapfile -t pids < <(ctl --json list | jq -r '.[] | select(.name != "busy") | .pid')
    read -r pss_mean pss_max < <(pss_of "${pids[@]}")
    list_ms=$(time_median 5 ctl list)
    stats_ms=$(time_median 3 ctl --json stats)
    slots=$(ctl --json stats | jq '[.[] | .aio.depth] | add')
    D[$N]="$(quantile 0.5 "$W/attach-$N.ms") $(quantile 0.99 "$W/attach-$N.ms") $pss_mean $pss_max $(fds_of "${pids[0]}") $(rss_kib "$QCOWD_PID") $(fds_of "$QCOWD_PID") $list_ms $stats_ms $slots $(( $(aio_nr) - AIO_BASE ))"
    echo "  N=$N: ${D[$N]}"
done

echo "-- every image serves a 4 KiB read through its ring"
for ((i = 1; i <= TOP; i++)); do
    "$RINGIO" "$SOCK" "i$i" read 0 4096 >/dev/null || die "i$i does not serve"
done
echo "  all $TOP served"

for ((r = 0; r < ROUNDS; r++)); do AMONG+=("$(busy_run among)"); done
echo "busy image among $TOP idle: ${AMONG[*]} IOPS"
BUSY_STATS=$(ctl --json stats busy | jq -c .aio)

echo "-- detaching"
t0=$EPOCHREALTIME
for ((i = 1; i <= TOP; i++)); do
    ctl detach "i$i" >/dev/null || die "detach i$i"
done
DETACH_MS=$(ms_since "$t0")
for _ in $(seq 600); do [ "$(workers | wc -l)" -le 1 ] && break; sleep 0.05; done
for ((r = 0; r < ROUNDS; r++)); do ALONE+=("$(busy_run alone-after)"); done
echo "busy image alone again: ${ALONE[*]:ROUNDS} IOPS"
ctl detach busy >/dev/null || die "detach busy"

# ---- churn ---------------------------------------------------------------------

churn_one() { # image-number cycles
    local k=$1 n=$2 i
    for ((i = 1; i <= n; i++)); do
        printf '{"execute":"attach","arguments":{"path":"%s","name":"c%d"},"id":%d}\n' \
            "$W/img/c$k.qcow" "$k" "$i"
        printf '{"execute":"detach","arguments":{"name":"c%d"},"id":-%d}\n' "$k" "$i"
    done | "$CTLRAW" "$SOCK" $((2 * n)) >"$W/churn-$k.out"
}
# CHUNK cycles per connection: the requests of one connection queue in qcowd.
churn_all() { # cycles
    local left=$1 chunk k pids=()
    while [ "$left" -gt 0 ]; do
        chunk=$((left < 200 ? left : 200))
        pids=()
        for ((k = 1; k <= CHURN_IMAGES; k++)); do
            churn_one "$k" "$chunk" & pids+=($!)
        done
        wait "${pids[@]}"
        for ((k = 1; k <= CHURN_IMAGES; k++)); do
            ok=$(grep -c '"return"' "$W/churn-$k.out" || true)
            [ "$ok" -eq $((2 * chunk)) ] ||
                die "churn: image c$k: $ok of $((2 * chunk)) requests succeeded: $(grep -m1 -v '"return"' "$W/churn-$k.out")"
        done
        left=$((left - chunk))
    done
}
settled() { for _ in $(seq 600); do [ "$(workers | wc -l)" -eq 0 ] && return 0; sleep 0.05; done; return 1; }

echo "-- churn: $CHURN_IMAGES images x $CHURN_CYCLES attach/detach cycles in parallel"
churn_all 10     # warm-up: the allocator reaches its working size
settled || die "workers left after the warm-up"
C0="$(rss_kib "$QCOWD_PID") $(fds_of "$QCOWD_PID") $(workers | wc -l)"
t0=$EPOCHREALTIME
churn_all "$CHURN_CYCLES"
CHURN_S=$(awk -v ms="$(ms_since "$t0")" 'BEGIN { printf "%.1f\n", ms / 1000 }')
settled || die "workers left after the churn"
C1="$(rss_kib "$QCOWD_PID") $(fds_of "$QCOWD_PID") $(workers | wc -l)"

# ---- qemu-nbd, one per image -----------------------------------------------------

declare -A Q
NBD_NATIVE_SLOTS=n/a
if [ "$WITH_NBD" = 1 ]; then
    echo "-- density: one qemu-nbd per image (--fork, --aio=threads, --cache=none)"
    mkdir -p "$W/nbd"
    avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    started=0 nbd_pids=()
    nbd_start() { # i aio
        "$QEMU_NBD" --fork -t --pid-file "$W/nbd/n$1.pid" -k "$W/nbd/n$1.sock" -f qcow \
            --cache=none --aio="$2" "$W/img/i$1.qcow" 2>>"$W/nbd.log" || die "qemu-nbd #$1 failed"
        nbd_pids+=("$(cat "$W/nbd/n$1.pid")")
        CLEANUP_PIDS+=("${nbd_pids[-1]}")
    }
    for N in "${LEVEL_LIST[@]}"; do
        if [ $((N * 8 * 1024)) -gt $((avail_kib * 4 / 10)) ]; then
            note "qemu-nbd at N=$N would need more than 40 % of MemAvailable: stopped at $started"
            break
        fi
        : >"$W/nbd-$N.ms"
        while [ "$started" -lt "$N" ]; do
            started=$((started + 1))
            t0=$EPOCHREALTIME
            nbd_start "$started" threads
            ms_since "$t0" >>"$W/nbd-$N.ms"
        done
        read -r pss_mean pss_max < <(pss_of "${nbd_pids[@]}")
        Q[$N]="$(quantile 0.5 "$W/nbd-$N.ms") $(quantile 0.99 "$W/nbd-$N.ms") $pss_mean $pss_max $(fds_of "${nbd_pids[0]}")"
        echo "  N=$N: ${Q[$N]}"
    done
    kill "${nbd_pids[@]}" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "${nbd_pids[@]}" 2>/dev/null || break; sleep 0.05; done
    # What one --aio=native qemu-nbd takes from fs.aio-nr (median of 3: the
    # host's other programs move it too).
    deltas=()
    for j in 1 2 3; do
        nbd_pids=()
        a0=$(aio_nr)
        nbd_start 1 native
        deltas+=($(( $(aio_nr) - a0 )))
        kill "${nbd_pids[0]}"
        for _ in $(seq 100); do kill -0 "${nbd_pids[0]}" 2>/dev/null || break; sleep 0.05; done
    done
    NBD_NATIVE_SLOTS=$(median "${deltas[@]}")
fi

# ---- the end -------------------------------------------------------------------

kill -TERM "$QCOWD_PID"
wait "$QCOWD_PID" || die "qcowd did not exit cleanly"
AIO_END=$(aio_nr)

echo
echo "== density: qcowd, one worker per image (N idle images beside the busy one)"
printf '%6s %9s %9s %8s %8s %6s %10s %8s %8s %8s %9s %9s\n' N "attach50" "attach99" "PSS/wkr" \
    "PSS max" "fds" "qcowd RSS" "qcowd fd" "list" "stats" "AIO slots" "aio-nr +"
printf '%6s %9s %9s %8s %8s %6s %10s %8s %8s %8s %9s %9s\n' "" ms ms MiB MiB "/wkr" MiB "" ms ms workers host
for N in "${LEVEL_LIST[@]}"; do
    read -r a50 a99 pm px wfd rss fds lm sm slots dnr <<<"${D[$N]}"
    printf '%6s %9s %9s %8s %8s %6s %10s %8s %8s %8s %9s %9s\n' "$N" "$a50" "$a99" "$(mib "$pm")" \
        "$(mib "$px")" "$wfd" "$(mib "$rss")" "$fds" "$lm" "$sm" "$slots" "$dnr"
done
echo "(AIO slots: the sum of the workers' stats; aio-nr +: fs.aio-nr's rise since qcowd started,"
echo " host-wide, so other programs' contexts come and go in it)"
if [ "$WITH_NBD" = 1 ]; then
    echo
    echo "== density: one qemu-nbd per image (--aio=threads)"
    printf '%6s %9s %9s %9s %9s %8s %10s\n' N "start50" "start99" "PSS/proc" "PSS max" "fds" "AIO slots"
    printf '%6s %9s %9s %9s %9s %8s %10s\n' "" ms ms MiB MiB "/proc" "/image"
    for N in "${LEVEL_LIST[@]}"; do
        [ -n "${Q[$N]:-}" ] || continue
        read -r s50 s99 pm px fds <<<"${Q[$N]}"
        printf '%6s %9s %9s %9s %9s %8s %10s\n' "$N" "$s50" "$s99" "$(mib "$pm")" "$(mib "$px")" \
            "$fds" 0
    done
    echo "qemu-nbd --aio=native takes $NBD_NATIVE_SLOTS kernel AIO slots per image: fs.aio-max-nr" \
         "($AIO_MAX) holds $(awk -v m="$AIO_MAX" -v s="$NBD_NATIVE_SLOTS" 'BEGIN { if (s > 0) print int(m / s); else print "n/a" }')" \
         "of them; an idle qcowd worker takes 4: $((AIO_MAX / 4))"
    echo
    echo "== qcowd against qemu-nbd, same run"
    for N in "${LEVEL_LIST[@]}"; do
        [ -n "${Q[$N]:-}" ] || continue
        read -r a50 _ pm _ <<<"${D[$N]}"
        read -r s50 _ qm _ <<<"${Q[$N]}"
        echo "  N=$N: PSS per image qemu-nbd/qcowd $(ratio "$qm" "$pm")x; start p50 qemu-nbd/qcowd attach $(ratio "$s50" "$a50")x"
    done
fi

read -r a50 a99 pm _ <<<"${D[$TOP]}"
alone=$(median "${ALONE[@]}") among=$(median "${AMONG[@]}")
busy_ratio=$(ratio "$among" "$alone")
echo
echo "== busy among idle: 4 KiB random reads, QD32, through qcowd"
echo "  alone (before and after): ${ALONE[*]} IOPS, median $alone"
echo "  among $TOP idle images:   ${AMONG[*]} IOPS, median $among"
echo "  ratio $busy_ratio (goal >= 0.90: $(verdict "$busy_ratio" 0.90)); its aio while busy: $BUSY_STATS"
echo
echo "== churn: $CHURN_IMAGES images x $CHURN_CYCLES attach/detach cycles in parallel, ${CHURN_S} s"
read -r r0 f0 k0 <<<"$C0"
read -r r1 f1 k1 <<<"$C1"
echo "  qcowd RSS $(mib "$r0") -> $(mib "$r1") MiB, descriptors $f0 -> $f1, children $k0 -> $k1"
flat=ok
[ "$f1" -eq "$f0" ] && [ "$k1" -eq 0 ] && [ "$r1" -le $((r0 + r0 / 10 + 256)) ] || flat=MISSED
echo "  flat: $flat; every request succeeded"
echo
echo "== goals at N=$TOP"
echo "  attached and serving: $TOP (goal 1000: $( [ "$TOP" -ge 1000 ] && echo ok || echo "not measured"))"
echo "  PSS per worker $(mib "$pm") MiB (goal <= 1: $(verdict "$(ratio 1024 "$pm")" 1))"
echo "  attach p50 $a50 ms (goal <= 20: $(verdict "$(ratio 20 "$a50")" 1)), p99 $a99 ms (goal <= 100: $(verdict "$(ratio 100 "$a99")" 1))"
echo "  busy among idle $busy_ratio x alone (goal >= 0.90: $(verdict "$busy_ratio" 0.90))"
echo "  detaching $TOP images took $DETACH_MS ms; fs.aio-nr $AIO_BASE before qcowd, $AIO_END after it"
[ "$BENCH_KEEP" = 1 ] && echo "ringbench JSON lines: $W/ringbench.jsonl"
exit 0
