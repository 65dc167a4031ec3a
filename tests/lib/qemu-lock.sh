# hold_with_qemu_io IMAGE [QEMU-IO OPTIONS...]: a qemu-io in the background
# that opens IMAGE read-write and keeps it (and QEMU's lock on it) until it
# is killed; its pid in $QEMU_HOLDER.  Returns once the lock is taken: a
# plain qemu-img info is then refused.  That probe takes a lock of its own
# for the moment it runs, so a qemu-io starting just then loses the race
# and exits; it is started again.  1 when no lock came within wait_until's
# time.  Sourced by tests/lib/common.sh and tests/cli/lib.sh.
hold_with_qemu_io() {
    QEMU_HOLDER_IMAGE=$1
    shift
    QEMU_HOLDER_OPTS=("$@")
    QEMU_HOLDER=
    wait_until qemu_io_holds
}

qemu_io_holds() {
    if [ -z "$QEMU_HOLDER" ] || ! kill -0 "$QEMU_HOLDER" 2>/dev/null; then
        "$QEMU_IO" "${QEMU_HOLDER_OPTS[@]}" -c 'sleep 60000' "$QEMU_HOLDER_IMAGE" \
            >/dev/null 2>&1 </dev/null &
        QEMU_HOLDER=$!
        return 1
    fi
    ! "$QEMU_IMG" info "${QEMU_HOLDER_OPTS[@]}" "$QEMU_HOLDER_IMAGE" >/dev/null 2>&1
}

release_qemu_io() {
    [ -n "${QEMU_HOLDER:-}" ] || return 0
    kill "$QEMU_HOLDER" 2>/dev/null || true
    wait "$QEMU_HOLDER" 2>/dev/null || true
    QEMU_HOLDER=
}
