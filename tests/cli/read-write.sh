#!/bin/bash
# qcowctl read and write: byte-exact guest data at any offset, bounds.
. "$(dirname "$0")/lib.sh"

expect_rc 0 create -q a.qcow 4M

# Unwritten space reads as zeros.
"$QCOWCTL" read a.qcow 0 64K >zeros.out
head -c 65536 /dev/zero | cmp - zeros.out || fail "fresh image does not read as zeros"

# A pattern, at an unaligned offset, across a cluster boundary.
expect_rc 0 write --pattern 0xab a.qcow 4000 1000
out_has "wrote 1000 bytes at offset 4000"
pattern_file want 171 1000
"$QCOWCTL" read a.qcow 4000 1000 >got
cmp want got || fail "pattern did not read back"
"$QCOWCTL" read a.qcow 3999 1 | od -An -tu1 | grep -qx ' *0' || fail "byte before the write changed"
"$QCOWCTL" read a.qcow 5000 1 | od -An -tu1 | grep -qx ' *0' || fail "byte after the write changed"
expect_rc 0 write -q --pattern 255 a.qcow 2M 1
"$QCOWCTL" read a.qcow 2M 1 | od -An -tu1 | grep -qx ' *255' || fail "decimal pattern"

# Data from stdin: exactly LENGTH bytes, or all of it.
head -c 300000 /dev/urandom >data
expect_rc 0 write -q a.qcow 1234567 300000 <data
"$QCOWCTL" read a.qcow 1234567 300000 | cmp - data || fail "stdin data did not read back"
head -c 7777 /dev/urandom >data2
expect_rc 0 write a.qcow 3M <data2
out_has "wrote 7777 bytes"
"$QCOWCTL" read a.qcow 3M 7777 | cmp - data2 || fail "all of stdin did not read back"
"$QCOWCTL" read a.qcow 1234567 300000 | cmp - data || fail "earlier data changed"

# Short stdin is an error.
head -c 50 data2 >short
expect_rc 1 write a.qcow 0 100 <short
err_has "a.qcow: standard input ended after 50 of 100 bytes"
: | "$QCOWCTL" write -q a.qcow 0 0 || fail "an empty write failed"

# Past the end of the virtual disk.
expect_rc 1 read a.qcow 4M 1
err_has "a.qcow: "
err_has "past the end"
expect_rc 1 read a.qcow 4095K 2K
expect_rc 0 read a.qcow 4095K 1K
expect_rc 1 write --pattern 1 a.qcow 4M 512
err_has "past the end"
expect_rc 1 write a.qcow 4194000 <data2
err_has "past the end"
expect_rc 1 read a.qcow 18446744073709551615 2
expect_rc 2 read a.qcow 99999999999999999999 1

# The same through qemu-io, when there.
if have_qemu; then
    qemu_io_ok -c 'read -P 0xab 4000 1000' -c 'read -P 0 3999 1' -c 'read -P 0 5000 1' a.qcow
    "$QEMU_IO" -c 'write -P 0x5c 512 1024' a.qcow >/dev/null
    pattern_file want5c 92 1024
    "$QCOWCTL" read a.qcow 512 1024 | cmp - want5c || fail "qemu-io's write not read back"
fi

# Raw images, with -f.
expect_rc 0 create -q -f raw r.raw 1M
expect_rc 0 write -q -f raw --pattern 0x42 r.raw 100 10
pattern_file want42 66 10
cmp <(tail -c +101 r.raw | head -c 10) want42 || fail "raw write not in the file"
"$QCOWCTL" read -f raw r.raw 100 10 | cmp - want42 || fail "raw read"
exit 0
