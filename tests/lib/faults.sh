# The fault-injection shim (tests/tools/faultshim.c; rules in tests/README.md).
# Sourced after tests/lib/common.sh.
FAULT_SHIM=$TEST_TOOLS/.libs/qcowfault.so
FAULT_LOG=$T/faults.log

require_fault_shim() {
    [ -f "$FAULT_SHIM" ] || die "fault shim $FAULT_SHIM not built (make check builds it)"
}

# with_faults RULES COMMAND...: run COMMAND with the shim preloaded and
# QCOWD_FAULT=RULES; every injected fault is logged to $FAULT_LOG.  The
# shim comes ahead of the sanitizers' runtime, which they accept when told.
with_faults() {
    local rules=$1
    shift
    LD_PRELOAD="$FAULT_SHIM" QCOWD_FAULT="$rules" QCOWD_FAULT_LOG="$FAULT_LOG" \
        ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" "$@"
}

# fault_injected PATTERN: the shim logged a fault matching PATTERN.
fault_injected() {
    grep -q -- "$1" "$FAULT_LOG" 2>/dev/null
}

# start_daemon_holding RULES [qcowd options...]: a private qcowd whose
# workers run under the shim with RULES.  A HOLD waits until release_holds
# writes to the FIFO $T/release, which the test keeps open read-write on
# descriptor 3 so that neither end blocks or hangs up.
start_daemon_holding() {
    local rules=$1
    shift
    rm -f "$T/release" "$FAULT_LOG"
    mkfifo "$T/release"
    exec 3<>"$T/release"
    LD_PRELOAD="$FAULT_SHIM" QCOWD_FAULT_PROGRAM="${QCOWD_WORKER##*/}" \
        QCOWD_FAULT_LOG="$FAULT_LOG" QCOWD_FAULT_RELEASE="$T/release" QCOWD_FAULT="$rules" \
        ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" start_daemon "$@"
}

# start_daemon_holding_at RULES FAULTPOINTS [qcowd options...]: the same,
# with qcowd-worker-hooks and its fault points (QCOWD_FAULTPOINT; a point's
# ":hold" waits on the same FIFO, and is logged to $T/faultpoints.log).
start_daemon_holding_at() {
    local rules=$1 points=$2
    shift 2
    rm -f "$T/faultpoints.log"
    QCOWD_FAULTPOINT="$points" QCOWD_FAULTPOINT_LOG="$T/faultpoints.log" \
        QCOWD_FAULTPOINT_RELEASE="$T/release" QCOWD_WORKER=$DAEMON_TOOLS/qcowd-worker-hooks \
        start_daemon_holding "$rules" "$@"
}

release_holds() {
    echo go >&3
}
