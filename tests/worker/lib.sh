# Helpers for the worker tests (sourced after tests/lib/common.sh).
: "${QCOWD_WORKER:=$top_builddir/daemon/qcowd-worker}"
WORKER_TOOLS=$top_builddir/tests/worker

# compare_with_shadow IMAGE SHADOW [KEY]: the image must read exactly as the
# raw shadow, judged by qemu-img.
compare_with_shadow() {
    local img=$1 shadow=$2 key=${3:-}
    if [ -n "$key" ]; then
        "$QEMU_IMG" convert --object "secret,id=s0,data=$key" --image-opts \
            "driver=qcow,file.filename=$img,encrypt.key-secret=s0" -O raw "$T/decrypted.raw" ||
            die "qemu-img cannot read $img"
        cmp "$T/decrypted.raw" "$shadow" || die "$img differs from its shadow"
    else
        "$QEMU_IMG" compare -F raw "$img" "$shadow" >/dev/null ||
            die "qemu-img compare: $img differs from its shadow"
    fi
}

# A 64 MiB qemu-made image with data scattered over it.
make_filled_qemu_image() {
    local img=$1; shift
    "$QEMU_IMG" create -f qcow "$@" "$img" 64M >/dev/null || die "qemu-img create"
    "$QEMU_IO" -c 'write -P 0x11 0 1M' -c 'write -P 0x22 3M 37K' -c 'write -P 0x33 40M 2M' \
        -c 'write -P 0x44 63M 1M' "$img" >/dev/null || die "qemu-io write"
}
