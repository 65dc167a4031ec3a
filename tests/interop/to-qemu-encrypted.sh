#!/bin/bash
# An AES image made and written by qcowctl reads right in QEMU (and a
# partial write to a new cluster leaves the rest of it zero); an encrypted
# overlay over a raw backing file copies the backing data in encrypted.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((16 << 20))
ENC=1
PASS=qcowd-secret
printf '%s\n' "$PASS" >"$T/key"

run "$QCOWCTL" create --encrypt --key-file "$T/key" "$T/e.qcow" "$SIZE"
"$QEMU_IMG" info -f qcow "$T/e.qcow" >"$T/info" || die "qemu-img info"
grep -q "^encrypted: yes" "$T/info" || die "qemu-img does not see an encrypted image"
mkzero "$T/shadow" "$SIZE"
assert_qemu_equal_raw "$T/e.qcow" "$T/shadow"
qcowctl_random_writes "$T/e.qcow" "$T/shadow" "$SIZE" 4096 "$(nwrites 150)" "$SEED" --key-file "$T/key"
assert_qemu_equal_raw "$T/e.qcow" "$T/shadow"
# The plaintext must not be in the file.
run "$QCOWCTL" write --key-file "$T/key" --pattern 65 "$T/e.qcow" 1048576 65536
head -c 65536 /dev/zero | tr "\\0" A >"$T/A"
shadow_write "$T/shadow" "$T/A" 1048576
assert_qemu_equal_raw "$T/e.qcow" "$T/shadow"
LC_ALL=C grep -aq AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA "$T/e.qcow" && die "plaintext found in the encrypted image"
expect_exit 0 "$QCOWCTL" check "$T/e.qcow"

# Encrypted overlay over a raw backing file.
cd "$T" || die cd
run "$RANDIO" fill base.raw "$SIZE" "$((SEED + 1))" 60
run "$QCOWCTL" create --encrypt --key-file key -b base.raw -F raw --cluster-size 4096 o.qcow "$SIZE"
cp base.raw shadow2 || die cp
qcowctl_random_writes o.qcow shadow2 "$SIZE" 4096 "$(nwrites 80)" "$((SEED + 2))" --key-file key
assert_qemu_equal_raw o.qcow shadow2
