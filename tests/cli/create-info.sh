#!/bin/bash
# qcowctl create and info: the header fields written, what info reports.
. "$(dirname "$0")/lib.sh"

# Defaults: 4 KiB clusters, 512-entry L2 tables (as qemu-img).
expect_rc 0 create a.qcow 64M
out_has "Formatting 'a.qcow', fmt=qcow size=67108864"
[ "$(head -c 4 a.qcow | od -An -tx1 | tr -d ' ')" = 514649fb ] || fail "no qcow magic"
[ "$(be64 a.qcow 24)" = 67108864 ] || fail "virtual size in the header"
[ "$(od -An -tu1 -j 32 -N 2 a.qcow | tr -s ' ')" = " 12 9" ] || fail "cluster_bits/l2_bits"

expect_rc 0 info a.qcow
out_has "image: a.qcow"
out_has "file format: qcow"
out_has "virtual size: 64 MiB (67108864 bytes)"
out_has "cluster_size: 4096"
out_has "allocated clusters: 0"
if grep -q "encrypted" "$T/out"; then fail "plain image shown as encrypted"; fi

expect_rc 0 --json info a.qcow
out_has '"filename": "a.qcow"'
out_has '"format": "qcow"'
out_has '"virtual-size": 67108864'
out_has '"cluster-size": 4096'
out_has '"encrypted": false'
out_has '"allocated-clusters": 0'
out_has '"compressed-clusters": 0'
out_has '"l2-tables": 0'
out_has '"chain": ['
if grep -q '"xen-header"' "$T/out"; then fail "xen-header without a Xen header"; fi

# Allocation shows up in the counts.
expect_rc 0 write -q --pattern 0x11 a.qcow 0 8K
expect_rc 0 write -q --pattern 0x22 a.qcow 10M 4K
expect_rc 0 --json info a.qcow
out_has '"allocated-clusters": 3'
out_has '"l2-tables": 2'

# Sizes with suffixes, other geometries.
expect_rc 0 create --cluster-size 64K --l2-bits 12 b.qcow 1G
[ "$(od -An -tu1 -j 32 -N 2 b.qcow | tr -s ' ')" = " 16 12" ] || fail "--cluster-size/--l2-bits"
expect_rc 0 --json info b.qcow
out_has '"virtual-size": 1073741824'
out_has '"cluster-size": 65536'

# A backing file: the size comes from it; info shows the chain.
expect_rc 0 create -f raw base.raw 3M
[ "$(file_size base.raw)" = 3145728 ] || fail "raw image size"
expect_rc 0 create -b base.raw -F raw over.qcow
out_has "size=3145728"
out_has "backing_file=base.raw"
expect_rc 0 info over.qcow
out_has "backing file: base.raw"
out_has "backing chain:"
out_has "base.raw (raw, 3 MiB)"
expect_rc 0 --json info over.qcow
out_has '"backing-filename": "base.raw"'
out_has '"format": "raw"'
# Backed images use QEMU's geometry: 512-byte clusters.
out_has '"cluster-size": 512'
expect_rc 0 create -b base.raw over2.qcow 8M
expect_rc 0 --json info over2.qcow
out_has '"virtual-size": 8388608'

# Raw images.
expect_rc 0 --json info base.raw
out_has '"format": "raw"'
out_has '"virtual-size": 3145728'

# The Xen extension header.
expect_rc 0 create --xen-header --xen-extent-alloc x.qcow 16M
[ "$(od -An -tx1 -j 48 -N 4 x.qcow | tr -d ' ')" = 58454efb ] || fail "no Xen magic"
expect_rc 0 info x.qcow
out_has "Xen header:"
out_has "min_cluster_alloc: 512"
out_has "L1 checksum: ok"
expect_rc 0 --json info x.qcow
out_has '"xen-header": {'
out_has '"min-cluster-alloc": 512'
out_has '"checksum-ok": true'
expect_rc 0 create --xen-header --no-sparse x2.qcow 16M
expect_rc 0 --json info x2.qcow
out_has '"sparse": false'

# Preallocation.
expect_rc 0 create --preallocation metadata pm.qcow 8M
expect_rc 0 --json info pm.qcow
out_has '"l2-tables": 4'
out_has '"allocated-clusters": 0'
expect_rc 0 create --preallocation full pf.qcow 8M
expect_rc 0 --json info pf.qcow
out_has '"allocated-clusters": 2048'

# JSON output of create.
expect_rc 0 --json create j.qcow 1M
out_has '"virtual-size": 1048576'

# Creating over a directory fails, naming it.
mkdir d
expect_rc 1 create d 1M
err_has "qcowctl: d: "
exit 0
