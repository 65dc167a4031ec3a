# Helpers for the NBD tests (sourced after tests/lib/common.sh and
# tests/daemon/lib.sh): nbdkit with the plugin from the build tree, alone or
# run by qcowd as a supervised export.
: "${NBDKIT:=$(command -v nbdkit || true)}"
PLUGIN=$top_builddir/nbdkit/.libs/nbdkit-qcowd-plugin.so
NBDKIT_PID=

require_nbd() {
    [ -f "$PLUGIN" ] || skip "nbdkit-qcowd-plugin was not built (apt-get install nbdkit-plugin-dev)"
    [ -n "$NBDKIT" ] || skip "nbdkit not found (apt-get install nbdkit)"
    local t
    for t in nbdinfo nbdcopy; do
        command -v "$t" >/dev/null || skip "$t not found (apt-get install libnbd-bin)"
    done
    make_nbdkit_wrapper
}

# nbdkit itself is not built with the sanitizers: in a sanitizer build it
# must load their runtimes first to load the plugin.  $T/nbdkit does that
# (and is nbdkit itself otherwise).  nbdkit's own libraries are preloaded
# before the runtimes, so that ld.so initialises the runtimes before their
# constructors: p11-kit's (through gnutls) calls newlocale, and AddressSanitizer
# starting up inside it leaves glibc's locale lock broken, which hangs the
# next newlocale (json-c's parser calls it in qcowring_connect).
make_nbdkit_wrapper() {
    local preload deps
    preload=$(ldd "$PLUGIN" | awk '/lib(asan|ubsan)\.so/ {printf "%s ", $3}')
    deps=$(ldd "$NBDKIT" | awk '$3 ~ /^\// && $1 !~ /^libc\.so/ {printf "%s ", $3}')
    NBDKIT_RUN=$T/nbdkit
    {
        echo '#!/bin/sh'
        [ -n "$preload" ] && echo "export LD_PRELOAD='$deps$preload'" &&
            echo 'export ASAN_OPTIONS="detect_leaks=0:verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"'
        echo "exec '$NBDKIT' \"\$@\""
    } >"$NBDKIT_RUN"
    chmod +x "$NBDKIT_RUN"
}

# A qcowd that runs the plugin from the build tree for its exports.
start_nbd_daemon() {
    start_daemon --nbdkit "$NBDKIT_RUN" --nbdkit-plugin "$PLUGIN" "$@"
}

# start_nbdkit NAME NBD-SOCKET [plugin parameters...]: nbdkit on its own
# (with the nbdkit options in NBDKIT_OPTS).
start_nbdkit() {
    local name=$1 sock=$2
    shift 2
    "$NBDKIT_RUN" -f ${NBDKIT_OPTS:-} -U "$sock" "$PLUGIN" name="$name" socket="$SOCK" "$@" \
        2>>"$T/nbdkit.log" &
    NBDKIT_PID=$!
    wait_until nbdkit_serving "$sock" || { cat "$T/nbdkit.log" >&2; die "nbdkit does not serve"; }
}

nbdkit_serving() {
    kill -0 "$NBDKIT_PID" 2>/dev/null || { cat "$T/nbdkit.log" >&2; die "nbdkit exited"; }
    [ -S "$1" ] && nbdinfo --size "nbd+unix:///?socket=$1" >/dev/null 2>&1
}

# nbdkit must go when told to: the test fails if it hangs on its way out.
stop_nbdkit() {
    local pid=$NBDKIT_PID rc=0
    [ -n "$pid" ] || return 0
    NBDKIT_PID=
    kill "$pid" 2>/dev/null
    if ! wait_until sh -c "! kill -0 $pid 2>/dev/null || grep -q zombie /proc/$pid/status 2>/dev/null"; then
        kill -9 "$pid" 2>/dev/null
        rc=1
    fi
    wait "$pid" 2>/dev/null
    return $rc
}

uri_of() { echo "nbd+unix:///?socket=$1"; }

# The map an NBD client sees, merged into "offset length type" lines
# (type 0 data, 3 hole and zero), from `nbdinfo --map --json` ...
nbd_map() {
    nbdinfo --map --json "$1" | jq -r '.[] | "\(.offset) \(.length) \(.type)"' | merge_runs
}

# ... and what `qcowctl map --json` says of the image, in the same terms.
qcowctl_map() {
    "$QCOWCTL" --json map "$@" |
        jq -r '.[] | "\(.start) \(.length) \(if .data then 0 else 3 end)"' | merge_runs
}

merge_runs() {
    awk '{ if (n && $3 == t && $1 == o + l) { l += $2 } else { if (n) print o, l, t; o = $1; l = $2; t = $3; n = 1 } }
         END { if (n) print o, l, t }'
}

trap 'rc=$?; stop_nbdkit >/dev/null 2>&1; stop_daemon >/dev/null 2>&1
      [ $rc -ne 0 ] || check_sandbox_kills "$T/qcowd.log" || rc=1
      show_daemon_log $rc; (exit $rc); cleanup' EXIT

# The worker's pid (query also shows the export's nbdkit pid).
image_worker_pid() { ctl --json query "$1" | jq -r .pid; }
