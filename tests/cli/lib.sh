# Helpers sourced by the qcowctl CLI tests (tests/cli/*.sh).
#
# Environment: QCOWCTL (the binary under test; set by the test harness),
# QEMU_IMG / QEMU_IO (may be empty: see have_qemu).  Run by hand:
#   QCOWCTL=build/ctl/qcowctl tests/cli/usage.sh

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/wait.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../lib/qemu-lock.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../lib/sandbox-kills.sh"

: "${top_builddir:=$PWD}"
: "${QCOWCTL:=$top_builddir/ctl/qcowctl}"
: "${QEMU_IMG=$(command -v qemu-img || true)}"
: "${QEMU_IO=$(command -v qemu-io || true)}"

case $QCOWCTL in /*) ;; *) QCOWCTL=$PWD/$QCOWCTL ;; esac

TEST_NAME=$(basename "$0" .sh)
[ -x "$QCOWCTL" ] || { echo "$TEST_NAME: no qcowctl at $QCOWCTL" >&2; exit 99; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qcowctl-$TEST_NAME.XXXXXX")

# A part of a test that judges with a tool the machine may lack runs under
# `if have_qemu; then` (or says `not_judged REASON` when it cannot run).
# The test then runs everything else but ends skipped (77), not passed: one
# of its verdicts was never asked for.  ./quickstart check installs every
# such tool and fails on a skip.
NOT_JUDGED=
not_judged() { NOT_JUDGED="${NOT_JUDGED:+$NOT_JUDGED; }$*"; }
have_qemu() {
    [ -n "$QEMU_IMG" ] && [ -x "$QEMU_IMG" ] && [ -n "$QEMU_IO" ] && [ -x "$QEMU_IO" ] && return 0
    not_judged "qemu-img/qemu-io not found (apt-get install qemu-utils)"
    return 1
}

# finish_test RC: remove the scratch directory and exit with RC, or 77 when
# the test passed with parts not judged.
finish_test() {
    rm -rf "$T"
    if [ "$1" = 0 ] && [ -n "$NOT_JUDGED" ]; then
        echo "$TEST_NAME: SKIP: not all was tested: $NOT_JUDGED" >&2
        exit 77
    fi
    exit "$1"
}
trap 'finish_test $?' EXIT
cd "$T"

fail() {
    echo "$TEST_NAME: FAIL: $*" >&2
    exit 1
}

# qc ARGS...: run qcowctl, keeping stdout in $T/out, stderr in $T/err and the
# exit status in $rc (never stops the test).
qc() {
    rc=0
    "$QCOWCTL" "$@" >"$T/out" 2>"$T/err" || rc=$?
}

# expect_rc N ARGS...: run qcowctl and require exit status N.
expect_rc() {
    local want=$1
    shift
    qc "$@"
    if [ "$rc" != "$want" ]; then
        echo "--- stdout:" >&2; cat "$T/out" >&2
        echo "--- stderr:" >&2; cat "$T/err" >&2
        fail "qcowctl $* exited $rc, expected $want"
    fi
}

# out_has / err_has TEXT: the last run's stdout / stderr contains TEXT.
out_has() { grep -qF -- "$1" "$T/out" || { cat "$T/out" >&2; fail "stdout lacks '$1'"; }; }
err_has() { grep -qF -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks '$1'"; }; }

# be64 FILE OFFSET: the big-endian 64-bit number at OFFSET, in decimal.
be64() {
    local hex
    hex=$(od -An -tx1 -v -j "$2" -N 8 "$1" | tr -d ' \n')
    [ ${#hex} = 16 ] || fail "cannot read 8 bytes at $2 of $1"
    echo $((16#$hex))
}

# put_be64 FILE OFFSET VALUE: overwrite 8 bytes in place.
put_be64() {
    local v=$3 bytes="" i
    for i in 56 48 40 32 24 16 8 0; do
        bytes+=$(printf '\\x%02x' $(( (v >> i) & 255 )))
    done
    printf "$bytes" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

file_size() { stat -c %s "$1"; }

# pattern_file FILE BYTE COUNT: COUNT bytes of value BYTE.
pattern_file() {
    head -c "$3" /dev/zero | tr '\0' "$(printf '\\%03o' "$2")" >"$1"
}

# qemu_io_ok ARGS...: run qemu-io, failing the test when it fails or reports
# a pattern mismatch (it prints the read line either way).
qemu_io_ok() {
    local out
    out=$("$QEMU_IO" "$@" 2>&1) || fail "qemu-io $*: $out"
    if grep -qi "fail" <<<"$out"; then fail "qemu-io $*: $out"; fi
}
