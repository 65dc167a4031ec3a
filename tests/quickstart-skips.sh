# ./quickstart check fails when a test skipped: its skip detection
# (`quickstart skips LOG...`, the function check runs after each test run)
# is fed automake test-suite.logs with and without a SKIP.
. "$top_srcdir/tests/lib/common.sh"

QUICKSTART="$top_srcdir/quickstart"
[ -f "$QUICKSTART" ] || die "$QUICKSTART not found"

# suite_log FILE PASS SKIP: a test-suite.log as automake 1.16 writes it.
suite_log() {
    local total=$(($2 + $3))
    cat >"$1" <<END
===================================
   qcowd 0.1.0: ./test-suite.log
===================================

# TOTAL: $total
# PASS:  $2
# SKIP:  $3
# XFAIL: 0
# FAIL:  0
# XPASS: 0
# ERROR: 0

.. contents:: :depth: 2

END
    if [ "$3" -gt 0 ]; then
        cat >>"$1" <<'END'
SKIP: tests/interop/to-qemu-xen
===============================

to-qemu-xen: seed 1 (repeat with QCOWD_TEST_SEED=1)
to-qemu-xen: SKIP: qemu-img not found (apt-get install qemu-utils)
SKIP tests/interop/to-qemu-xen.sh (exit status: 77)

END
    fi
}

suite_log "$T/clean.log" 54 0
suite_log "$T/skipped.log" 53 1

expect_exit 0 bash "$QUICKSTART" skips "$T/clean.log"

expect_exit 1 bash "$QUICKSTART" skips "$T/skipped.log"
grep -q "tests/interop/to-qemu-xen" "$T/.err" || die "the skipped test is not named: $(cat "$T/.err")"
grep -q "qemu-img not found" "$T/.err" || die "the reason is not shown: $(cat "$T/.err")"

# One clean run does not hide a skip in the other (plain and sanitizers).
expect_exit 1 bash "$QUICKSTART" skips "$T/clean.log" "$T/skipped.log"

# No summary, no proof that anything ran: a failure, not a pass.
echo "make: *** [check] Interrupted" >"$T/garbage.log"
expect_exit 1 bash "$QUICKSTART" skips "$T/garbage.log"
expect_exit 1 bash "$QUICKSTART" skips "$T/missing.log"
