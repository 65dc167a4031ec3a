#!/bin/bash
# AES-encrypted images made and filled by QEMU read back through qcowctl with
# --key-file; with a wrong key the bytes differ; without one qcowctl refuses.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((16 << 20))
ENC=1
# Longer than 16 bytes: only the first 16 make the key.
PASS='correct horse battery staple'
printf '%s\nignored second line\n' "$PASS" >"$T/key"
run "$QEMU_IMG" create -q -f qcow --object "secret,id=s0,data=$PASS" \
    -o encrypt.format=aes,encrypt.key-secret=s0 "$T/e.qcow" "$SIZE"
qemu_fill "$T/e.qcow" "$SIZE" 4096 120 "$SEED" \
    --object "secret,id=s0,data=$PASS" --image-opts "driver=qcow,file.filename=$T/e.qcow,encrypt.key-secret=s0"
verify_from_qemu "$T/e.qcow" "$SIZE" 30 --key-file "$T/key"

# Same first 16 bytes, different tail: the same key.
printf 'correct horse batXXXXX\n' >"$T/key16"
run "$QCOWCTL" convert --key-file "$T/key16" -O raw "$T/e.qcow" "$T/k16.raw"
cmp "$T/k16.raw" "$T/ref.raw" >&2 || die "only the first 16 bytes of the password should count"

# A wrong key gives other bytes (nothing can tell a wrong key in qcow v1).
printf 'wrong\n' >"$T/bad"
run "$QCOWCTL" convert --key-file "$T/bad" -O raw "$T/e.qcow" "$T/bad.raw"
cmp -s "$T/bad.raw" "$T/ref.raw" && die "a wrong key read the right bytes"

# No key at all: refused, naming the file.
expect_exit 1 "$QCOWCTL" read "$T/e.qcow" 0 512
grep -q 'e\.qcow' "$T/.err" || die "the error for a missing key does not name the image: $(cat "$T/.err")"
