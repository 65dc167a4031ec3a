#!/bin/bash
# Issue 2's benchmark: `qcowctl convert` against `qemu-img convert` on the same
# data in one run: qcow->raw, raw->qcow and raw->qcow compressed (-c).
#
#   bench-convert.sh [--quick] [--runs N] [--size MIB] [--keep]
#
# The source is MIB MiB (default 1024) of mixed data (random, compressible
# text, holes, written zeros: see make_mixed_data in lib.sh); the qcow source
# is made from it by qemu-img.  Each case runs both tools RUNS times (default
# 3), alternating which goes first, from a warm page cache; the table shows
# the median wall time and the ratio qemu-img time / qcowctl time (>= 1.00
# means qcowctl is no slower: the goal of issue 2).  Every output is checked
# against the source with `qemu-img compare`.
#
# Tools: QCOWCTL (default $top_builddir/ctl/qcowctl, else PATH), QEMU_IMG.
# BENCH_DIR: where the images go (default $TMPDIR or /var/tmp).
. "$(dirname "$0")/lib.sh"

RUNS=3 SIZE=1024
while [ $# -gt 0 ]; do
    case $1 in
    --quick) RUNS=1 SIZE=128 ;;
    --runs) RUNS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --keep) BENCH_KEEP=1 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
    esac
    shift
done

find_tool QCOWCTL ctl/qcowctl qcowctl
find_tool QEMU_IMG "" qemu-img
setup_workdir
echo "== qcowctl convert vs qemu-img convert, $SIZE MiB, $RUNS run(s) each"
machine_line
echo "qcowctl: $QCOWCTL"
echo "qemu-img: $("$QEMU_IMG" --version | head -1)"

echo "-- making the source data"
make_mixed_data "$W/src.raw" "$SIZE"
"$QEMU_IMG" convert -f raw -O qcow "$W/src.raw" "$W/src.qcow"
echo "src.raw: $(du -k "$W/src.raw" | cut -f1) KiB on disk; src.qcow (by qemu-img):" \
     "$(du -k "$W/src.qcow" | cut -f1) KiB"
cat "$W/src.raw" "$W/src.qcow" >/dev/null        # the same warm cache for both

# Each case: name, output format, qcowctl args, qemu-img args, source.
CASES=(qcow2raw raw2qcow raw2qcow-c)
declare -A SRC=([qcow2raw]=src.qcow [raw2qcow]=src.raw [raw2qcow-c]=src.raw)
declare -A SRCFMT=([qcow2raw]=qcow [raw2qcow]=raw [raw2qcow-c]=raw)
declare -A DSTFMT=([qcow2raw]=raw [raw2qcow]=qcow [raw2qcow-c]=qcow)
declare -A COMPRESS=([qcow2raw]="" [raw2qcow]="" [raw2qcow-c]=-c)
declare -A T_OURS T_QEMU SZ_OURS SZ_QEMU
BAD=0

run_tool() { # tool case out: sets T
    local tool=$1 c=$2 out=$3 comp=${COMPRESS[$2]}
    rm -f "$out"
    if [ "$tool" = qcowctl ]; then
        timed "$QCOWCTL" convert $comp -f "${SRCFMT[$c]}" -O "${DSTFMT[$c]}" "$W/${SRC[$c]}" "$out"
        [ "$RC" = 0 ] || { cat "$W/last.log" >&2; die "qcowctl convert failed ($c)"; }
    else
        timed "$QEMU_IMG" convert $comp -f "${SRCFMT[$c]}" -O "${DSTFMT[$c]}" "$W/${SRC[$c]}" "$out"
        # qemu-img 7.2 exits 1 after `convert -c -O qcow` although the image
        # is complete; the compare below is the judge.
        if [ "$RC" != 0 ] && ! { [ "$RC" = 1 ] && [ -n "$comp" ]; }; then
            cat "$W/last.log" >&2
            die "qemu-img convert failed ($c, exit $RC)"
        fi
    fi
}

check_output() { # case out tool
    if ! "$QEMU_IMG" compare -q -f raw -F "${DSTFMT[$1]}" "$W/src.raw" "$2" 2>"$W/cmp.log"; then
        cat "$W/cmp.log" >&2
        note "MISMATCH: $3's $1 output differs from the source"
        BAD=1
    fi
}

for c in "${CASES[@]}"; do
    ours=() qemu=()
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then order="qcowctl qemu"; else order="qemu qcowctl"; fi
        for tool in $order; do
            out=$W/out-$tool.${DSTFMT[$c]}
            run_tool "$tool" "$c" "$out"
            if [ "$tool" = qcowctl ]; then ours+=("$T"); else qemu+=("$T"); fi
            if [ "$r" = 1 ]; then
                check_output "$c" "$out" "$tool"
                sz=$(du -k "$out" | cut -f1)
                if [ "$tool" = qcowctl ]; then SZ_OURS[$c]=$sz; else SZ_QEMU[$c]=$sz; fi
            fi
            rm -f "$out"
        done
    done
    T_OURS[$c]=$(median "${ours[@]}")
    T_QEMU[$c]=$(median "${qemu[@]}")
    echo "$c: qcowctl ${ours[*]} s; qemu-img ${qemu[*]} s"
done

echo
printf '%-12s %12s %12s %14s %6s %10s %12s %12s\n' case "qcowctl s" "qemu-img s" \
    "qemu/qcowctl" goal verdict "qcowctl KiB" "qemu KiB"
for c in "${CASES[@]}"; do
    rr=$(ratio "${T_QEMU[$c]}" "${T_OURS[$c]}")
    printf '%-12s %12s %12s %13sx %5sx %10s %12s %12s\n' "$c" "${T_OURS[$c]}" "${T_QEMU[$c]}" \
        "$rr" 1.00 "$(verdict "$rr" 1.00)" "${SZ_OURS[$c]}" "${SZ_QEMU[$c]}"
done
echo "(times: median wall seconds; ratio > 1: qcowctl faster; KiB: output size on disk)"
[ "$BAD" = 0 ] || die "some outputs differ from the source"
echo "all outputs equal the source (qemu-img compare)"
