# Shared helpers of the benchmark scripts (sourced; bash).  See
# doc/performance.md.  Not a test: nothing here fails on a slow result.
set -euo pipefail

BENCH_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_builddir:=}"

die() { echo "${0##*/}: $*" >&2; exit 1; }
note() { echo "${0##*/}: $*" >&2; }

# find_tool VAR default-in-build-tree name-in-PATH: sets VAR to an executable.
find_tool() {
    local var=$1 built=$2 name=$3 v
    v=${!var:-}
    if [ -z "$v" ] && [ -n "$built" ] && [ -n "$top_builddir" ] && [ -f "$top_builddir/$built" ] &&
       [ -x "$top_builddir/$built" ]; then
        v=$top_builddir/$built
    fi
    if [ -z "$v" ]; then
        v=$(command -v "$name" 2>/dev/null) || die "$name not found: set $var (or top_builddir), or run 'make bench'"
    fi
    [ -x "$v" ] || die "$var=$v is not executable"
    printf -v "$var" '%s' "$v"
}

need() { # need CMD [debian-package]
    command -v "$1" >/dev/null 2>&1 || die "$1 is required (Debian package ${2:-$1})"
}

# The work directory: BENCH_DIR or a fresh one under $TMPDIR (/var/tmp by
# default, which is on disk on Debian); removed at exit unless --keep.
BENCH_KEEP=${BENCH_KEEP:-0}
CLEANUP_PIDS=()
setup_workdir() {
    if [ -n "${BENCH_DIR:-}" ]; then
        mkdir -p "$BENCH_DIR"
        W=$(mktemp -d "$BENCH_DIR/qcowd-bench.XXXXXX")
    else
        W=$(mktemp -d "${TMPDIR:-/var/tmp}/qcowd-bench.XXXXXX")
    fi
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    local fstype
    fstype=$(stat -f -c %T "$W")
    echo "work directory: $W ($fstype)"
    if [ "$fstype" = tmpfs ]; then
        note "warning: $W is on tmpfs: O_DIRECT and the disk are not measured; set BENCH_DIR"
    fi
}

cleanup() {
    local p
    for p in "${CLEANUP_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ "$BENCH_KEEP" = 1 ]; then
        echo "kept $W"
    else
        rm -rf "$W"
    fi
}

# Run a command (stdout and stderr to $W/last.log); sets T to its wall time
# in seconds and RC to its exit status.
timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    set +e
    "$@" >"$W/last.log" 2>&1
    RC=$?
    set -e
    t1=$EPOCHREALTIME
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }')
}

# median of the arguments (numbers)
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A/B with two decimals ("n/a" when B is 0 or missing)
ratio() {
    awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN {
        if (b + 0 == 0 || a == "" || a == "n/a") print "n/a"; else printf "%.2f\n", a / b }'
}

# fmt VALUE FORMAT: printf a number ("n/a", "-" and "" print n/a)
fmt() {
    awk -v v="$1" -v f="$2" 'BEGIN { if (v == "n/a" || v == "-" || v == "") print "n/a"; else printf f "\n", v }'
}
# verdict RATIO TARGET: "ok" when RATIO >= TARGET, "MISSED" otherwise
verdict() {
    awk -v r="$1" -v t="$2" 'BEGIN {
        if (r == "n/a") print "n/a"; else if (r + 0 >= t + 0) print "ok"; else print "MISSED" }'
}

# A disk image's worth of data that is not all alike, so zero detection,
# holes and compression all have work:
#   make_mixed_data FILE MIB
# The file is MIB MiB (a multiple of 32) made of 4 MiB segments in a cycle
# of eight: random, compressible text, hole, mixed (64 KiB random and 64 KiB
# zeros alternating), random, written zeros, compressible text, hole.
# Roughly: 31% random, 25% text, 25% holes, 19% zero bytes written.
make_mixed_data() {
    local file=$1 mib=$2 seg=4 i kind from
    local text=$W/.text.4m mixed=$W/.mixed.4m
    [ $((mib % 32)) -eq 0 ] || die "make_mixed_data: $mib MiB is not a multiple of 32"
    # Compressible text: numbered lines with a little variety (deflate ~ 4:1).
    seq -f 'qcowd benchmark line %08.0f: the quick brown fox jumps over the lazy dog' \
        1 60000 >"$text"
    truncate -s $((seg << 20)) "$text"     # (60000 lines are a little more)
    : >"$mixed"
    for i in $(seq 32); do
        head -c 65536 /dev/urandom >>"$mixed"
        head -c 65536 /dev/zero >>"$mixed"
    done
    rm -f "$file"
    truncate -s "${mib}M" "$file"
    for ((i = 0; i < mib / seg; i++)); do
        kind=$((i % 8))
        case $kind in
        0|4) from=/dev/urandom ;;
        1|6) from=$text ;;
        3) from=$mixed ;;
        5) from=/dev/zero ;;
        *) continue ;;          # a hole
        esac
        dd if="$from" of="$file" bs=1M count=$seg seek=$((i * seg)) conv=notrunc \
            status=none iflag=fullblock
    done
    rm -f "$text" "$mixed"
}

machine_line() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores (${cpu:-unknown CPU});" \
         "$(uname -sr); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}
