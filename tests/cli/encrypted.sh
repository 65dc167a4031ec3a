#!/bin/bash
# Encrypted images: the key from --key-file, refused without one (no
# terminal), info and map without a key, interop with qemu-io.
. "$(dirname "$0")/lib.sh"

printf 'sesame\nignored second line\n' >key
printf 'other\n' >wrong

# No key: create refuses (stdin is not a terminal).
expect_rc 1 create --encrypt e.qcow 4M </dev/null
err_has "e.qcow: --encrypt needs a password"
[ ! -e e.qcow ] || fail "refused create left a file"
: >empty.key
expect_rc 1 create --encrypt --key-file empty.key e.qcow 4M
err_has "empty.key: the key file holds an empty password"
expect_rc 1 create --encrypt --key-file missing.key e.qcow 4M
err_has "missing.key: cannot open the key file"

expect_rc 0 create --encrypt --key-file key e.qcow 4M
out_has "encryption=on"
expect_rc 0 info e.qcow
out_has "encrypted: yes"
expect_rc 0 --json info e.qcow
out_has '"encrypted": true'

head -c 20000 /dev/urandom >data
expect_rc 0 write -q --key-file key e.qcow 1000 <data
"$QCOWCTL" read --key-file key e.qcow 1000 20000 | cmp - data || fail "encrypted round trip"
# The data is not in the file in clear.
if grep -qF "$(head -c 64 data | od -An -tx1 | tr -d ' \n')" <(od -An -tx1 -v e.qcow | tr -d ' \n'); then
    fail "plaintext found in the image"
fi
# A wrong key reads garbage, not the data.
if "$QCOWCTL" read --key-file wrong e.qcow 1000 20000 | cmp -s - data; then
    fail "a wrong key read the data"
fi

# Data commands without a key and without a terminal: refused.
expect_rc 1 read e.qcow 0 512 </dev/null
err_has "qcowctl: e.qcow: image is encrypted, a key is needed (--key-file)"
expect_rc 1 write --pattern 1 e.qcow 0 512 </dev/null
err_has "a key is needed (--key-file)"
expect_rc 1 convert e.qcow out.raw </dev/null
err_has "a key is needed (--key-file)"
# Metadata commands need none.
expect_rc 0 map e.qcow </dev/null
expect_rc 0 check e.qcow

# Convert decrypts, and encrypts with --target-key-file.
expect_rc 0 convert --key-file key -O raw e.qcow plain.raw
"$QCOWCTL" read --key-file key e.qcow 0 4M | cmp - plain.raw || fail "decrypting convert"
expect_rc 0 convert --target-key-file wrong -O qcow plain.raw e2.qcow
expect_rc 0 info e2.qcow
out_has "encrypted: yes"
"$QCOWCTL" read --key-file wrong e2.qcow 0 4M | cmp - plain.raw || fail "encrypting convert"

# QEMU reads what we wrote, and we read what QEMU wrote (the password is
# the key file's first line).
if have_qemu; then
    opts="driver=qcow,file.filename=e.qcow,encrypt.key-secret=s0"
    "$QEMU_IO" --object secret,id=s0,data=sesame --image-opts "$opts" \
        -c 'write -P 0x3c 65536 4096' >/dev/null
    pattern_file want 60 4096
    "$QCOWCTL" read --key-file key e.qcow 64K 4K | cmp - want || fail "qemu-io's encrypted write"
    expect_rc 0 write -q --key-file key --pattern 0x5e e.qcow 128K 3000
    qemu_io_ok --object secret,id=s0,data=sesame --image-opts "$opts" \
        -c 'read -P 0x5e 131072 3000' -c 'read -P 0 134072 1000'
fi
exit 0
