# Helpers sourced by the shell tests.  Automake's test protocol: exit 0 pass,
# 1 fail, 77 skip, 99 hard error.
#
# Environment (set by tests/local.mk through AM_TESTS_ENVIRONMENT; the
# defaults below let a test also run by hand from a build directory):
#   QCOWCTL        the qcowctl binary under test
#   QEMU_IMG       qemu-img, empty when configure did not find it
#   QEMU_IO        qemu-io, likewise
#   TEST_TOOLS     directory of the helper programs (randio, mkbad)
#   top_srcdir     the source tree (read-only under distcheck)
#   QCOWD_TEST_SEED  seed of the random data and write plans (printed)
#   QCOWD_TEST_SCALE multiplies the number of random writes (default 1)

set -u
set -o pipefail

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
: "${QCOWCTL:=$top_builddir/ctl/qcowctl}"
: "${TEST_TOOLS:=$top_builddir/tests/tools}"
: "${QEMU_IMG=$(command -v qemu-img || true)}"
: "${QEMU_IO=$(command -v qemu-io || true)}"
: "${QCOWD_TEST_SCALE:=1}"
. "$top_srcdir/tests/lib/wait.sh"
. "$top_srcdir/tests/lib/qemu-lock.sh"

RANDIO="$TEST_TOOLS/randio"
MKBAD="$TEST_TOOLS/mkbad"
TEST_NAME=$(basename "$0" .sh)

msg() { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }

# Stop the test as failed, saying why.
die() {
    msg "FAIL: $*"
    exit 1
}

skip() {
    msg "SKIP: $*"
    exit 77
}

# A private scratch directory, removed when the test ends (kept when
# QCOWD_TEST_KEEP is set, to look at a failure).
T=$(mktemp -d "${TMPDIR:-/tmp}/qcowd-$TEST_NAME.XXXXXX") || exit 99

. "$top_srcdir/tests/lib/sandbox-kills.sh"

cleanup() {
    local rc=$?
    if [ -n "${QCOWD_TEST_KEEP:-}" ]; then
        msg "kept scratch directory $T"
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_qemu() {
    [ -n "$QEMU_IMG" ] && [ -x "$QEMU_IMG" ] || skip "qemu-img not found (apt-get install qemu-utils)"
    [ -n "$QEMU_IO" ] && [ -x "$QEMU_IO" ] || skip "qemu-io not found (apt-get install qemu-utils)"
}

require_qcowctl() {
    [ -x "$QCOWCTL" ] || die "qcowctl not built at $QCOWCTL"
}

require_tools() {
    local t
    for t in "$@"; do
        [ -x "$TEST_TOOLS/$t" ] || die "helper $TEST_TOOLS/$t not built"
    done
}

# The seed: QCOWD_TEST_SEED if given, fixed under CI (so a run there can be
# repeated exactly), random otherwise.  Always printed.
if [ -z "${QCOWD_TEST_SEED:-}" ]; then
    if [ -n "${CI:-}" ]; then
        QCOWD_TEST_SEED=20240601
    else
        QCOWD_TEST_SEED=$(( (RANDOM << 15 | RANDOM) ))
    fi
fi
SEED=$QCOWD_TEST_SEED
msg "seed $SEED (repeat with QCOWD_TEST_SEED=$SEED)"

# How many random writes a test asked for, scaled.
nwrites() { echo $(( $1 * QCOWD_TEST_SCALE )); }

# Run a command, print it and what it said, and fail unless it exits with
# CODE.  A crash (signal) always fails, whatever CODE is.
expect_exit() {
    local want=$1 rc
    shift
    "$@" >"$T/.out" 2>"$T/.err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        msg "command: $*"
        msg "stdout: $(head -c 2000 "$T/.out")"
        msg "stderr: $(head -c 2000 "$T/.err")"
        die "exit $rc, expected $want"
    fi
}

# Run a command that must succeed; on failure show its stderr and stop.
run() {
    local rc
    "$@" 2>"$T/.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        msg "command: $*"
        msg "stderr: $(head -c 2000 "$T/.err")"
        die "exit $rc, expected 0"
    fi
}

# qemu-img convert -c -O qcow exits 1 on QEMU 7.2 although the image is
# right: accept 0 or 1 there and let the caller verify the result.
qemu_convert_compressed() {
    local rc
    "$QEMU_IMG" convert -c "$@" 2>"$T/.err"
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
        msg "command: qemu-img convert -c $*"
        msg "stderr: $(cat "$T/.err")"
        die "qemu-img convert -c exited $rc"
    fi
}

# Two files must be byte-for-byte equal.
assert_same() {
    cmp "$1" "$2" >&2 || die "${3:-$1 and $2 differ}"
}

# qemu-img compare; the rest of the arguments go before the file names.
# Usage: assert_qemu_identical IMG1 IMG2 [qemu-img compare options...]
assert_qemu_identical() {
    local a=$1 b=$2 rc
    shift 2
    "$QEMU_IMG" compare "$@" "$a" "$b" >"$T/.cmp" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || { cat "$T/.cmp" >&2; die "qemu-img compare $* $a $b: exit $rc, expected 0 (identical)"; }
}

# Size of a file in bytes.
fsize() { stat -c %s "$1"; }

# A raw file of SIZE bytes of zeros (sparse).
mkzero() { rm -f "$1"; truncate -s "$2" "$1"; }

# Write DATAFILE into FILE at byte offset OFF without truncating (shadow).
shadow_write() {
    dd if="$2" of="$1" bs=1M seek="$3" oflag=seek_bytes conv=notrunc status=none ||
        die "dd into shadow $1 failed"
}

# Bytes [OFF, OFF+LEN) of FILE to stdout.
extract() {
    dd if="$1" bs=1M skip="$2" count="$3" iflag=skip_bytes,count_bytes status=none
}

# Fill a qcow image through qemu-io with COUNT pattern writes at seeded
# offsets (byte-granular and aligned, some spanning clusters).
# Usage: qemu_fill IMG SIZE CLUSTER COUNT SEED [qemu-io options...]
qemu_fill() {
    local img=$1 size=$2 cl=$3 count=$4 seed=$5 off len pat args=()
    shift 5
    while read -r off len pat; do
        args+=(-c "write -P $((pat % 255 + 1)) $off $len")
    done < <("$RANDIO" plan "$seed" "$count" "$size" "$cl")
    if [ $# -gt 0 ]; then
        "$QEMU_IO" "$@" "${args[@]}" >/dev/null 2>"$T/.err"
    else
        "$QEMU_IO" -f qcow "${args[@]}" "$img" >/dev/null 2>"$T/.err"
    fi || { cat "$T/.err" >&2; die "qemu-io could not fill $img"; }
}

# COUNT seeded random writes through qcowctl into IMG, the same bytes into
# the raw SHADOW with dd.  Extra arguments go to `qcowctl write` before the
# file name (for --key-file).  Writes stay inside SIZE bytes.
# Usage: qcowctl_random_writes IMG SHADOW SIZE CLUSTER COUNT SEED [args...]
qcowctl_random_writes() {
    local img=$1 shadow=$2 size=$3 cl=$4 count=$5 seed=$6 off len dseed n=0 rc
    shift 6
    while read -r off len dseed; do
        n=$((n + 1))
        if [ $((dseed % 16)) -eq 0 ]; then
            # Now and then the --pattern form.
            local byte=$((dseed / 16 % 256))
            head -c "$len" /dev/zero | tr '\0' "\\$(printf '%03o' "$byte")" >"$T/.w"
            "$QCOWCTL" write "$@" --pattern "$byte" "$img" "$off" "$len" >/dev/null 2>"$T/.err"
            rc=$?
        else
            "$RANDIO" data "$dseed" "$len" >"$T/.w"
            "$QCOWCTL" write "$@" "$img" "$off" "$len" <"$T/.w" >/dev/null 2>"$T/.err"
            rc=$?
        fi
        if [ "$rc" -ne 0 ]; then
            cat "$T/.err" >&2
            die "write #$n: qcowctl write ${*:+$* }$img $off $len: exit $rc"
        fi
        shadow_write "$shadow" "$T/.w" "$off"
    done < <("$RANDIO" plan "$seed" "$count" "$size" "$cl")
    [ "$n" -eq "$count" ] || die "write plan gave $n writes, expected $count"
}

# Compare qcowctl reads of seeded random ranges of IMG with the same ranges
# of the raw REFERENCE.  Usage: check_reads IMG REF SIZE COUNT SEED [args...]
check_reads() {
    local img=$1 ref=$2 size=$3 count=$4 seed=$5 off len x
    shift 5
    while read -r off len x; do
        "$QCOWCTL" read "$@" "$img" "$off" "$len" >"$T/.r" 2>"$T/.err" ||
            { cat "$T/.err" >&2; die "qcowctl read ${*:+$* }$img $off $len failed"; }
        extract "$ref" "$off" "$len" >"$T/.e"
        cmp "$T/.r" "$T/.e" >&2 || die "qcowctl read $img $off $len: wrong bytes"
    done < <("$RANDIO" plan "$seed" "$count" "$size" 65536)
}

# A sanitizer report ends the process with this code (see below), so that it
# cannot pass for an ordinary failure (exit 1) of the program under test.
SANITIZER_EXIT=86
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=$SANITIZER_EXIT"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=$SANITIZER_EXIT:print_stacktrace=1"

# Did an exit code come from a crash (signal), a sanitizer or a timeout?
is_crash() {
    [ "$1" -gt 128 ] || [ "$1" -eq "$SANITIZER_EXIT" ] || [ "$1" -eq 124 ]
}

# ---- QEMU-made images read by qcowd ----------------------------------------

# qemu-img/qemu-io arguments that open IMG (qcow), with the password in
# $PASS when ENC=1.
qemu_opts() {
    if [ "${ENC:-0}" = 1 ]; then
        echo "--object secret,id=s0,data=$PASS --image-opts driver=qcow,file.filename=$1,encrypt.key-secret=s0"
    else
        echo "-f qcow $1"
    fi
}

# The raw contents of a qcow image according to qemu-img (ENC/PASS as above).
qemu_to_raw() {
    local img=$1 out=$2
    rm -f "$out"
    if [ "${ENC:-0}" = 1 ]; then
        "$QEMU_IMG" convert --object "secret,id=s0,data=$PASS" \
            --image-opts "driver=qcow,file.filename=$img,encrypt.key-secret=s0" -O raw "$out"
    else
        "$QEMU_IMG" convert -f qcow -O raw "$img" "$out"
    fi 2>"$T/.err" || { cat "$T/.err" >&2; die "qemu-img convert -O raw $img failed"; }
}

# qcowd must read IMG exactly as QEMU does: the whole image through
# `qcowctl convert -O raw`, and READS seeded ranges through `qcowctl read`.
# Extra arguments go to qcowctl (--key-file F).
# Usage: verify_from_qemu IMG SIZE READS [qcowctl args...]
verify_from_qemu() {
    local img=$1 size=$2 reads=$3
    shift 3
    qemu_to_raw "$img" "$T/ref.raw"
    [ "$(fsize "$T/ref.raw")" -eq "$size" ] || die "qemu-img gives $(fsize "$T/ref.raw") bytes for $img, expected $size"
    rm -f "$T/got.raw"
    run "$QCOWCTL" convert "$@" -O raw "$img" "$T/got.raw"
    [ "$(fsize "$T/got.raw")" -eq "$size" ] ||
        die "qcowctl convert -O raw $img: $(fsize "$T/got.raw") bytes, expected $size"
    cmp "$T/got.raw" "$T/ref.raw" >&2 || die "qcowctl convert -O raw $img differs from qemu-img's"
    check_reads "$img" "$T/ref.raw" "$size" "$reads" "$((SEED + 7))" "$@"
}

# ---- qcowd-made images read by QEMU ----------------------------------------

# qemu-img compare of a qcow image (ENC/PASS as above) with a raw file.
assert_qemu_equal_raw() {
    local img=$1 raw=$2 rc
    if [ "${ENC:-0}" = 1 ]; then
        "$QEMU_IMG" compare --object "secret,id=s0,data=$PASS" --image-opts \
            "driver=qcow,file.filename=$img,encrypt.key-secret=s0" "driver=raw,file.filename=$raw"
    else
        "$QEMU_IMG" compare -f qcow -F raw "$img" "$raw"
    fi >"$T/.cmp" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || { cat "$T/.cmp" >&2; die "qemu-img compare $img $raw: exit $rc, expected 0 (identical)"; }
}

# The cluster size qemu-img reports for IMG.
qemu_cluster_size() {
    "$QEMU_IMG" info -f qcow "$1" | sed -n 's/^cluster_size: //p'
}

# How many compressed extents qemu-img map shows (data without host offset).
qemu_compressed_extents() {
    { "$QEMU_IMG" map -f qcow --output=json "$1" | grep '"data": true' | grep -vc '"offset"'; } || true
}
