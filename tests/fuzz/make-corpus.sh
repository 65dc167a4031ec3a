#!/bin/bash
# Regenerate the seed corpus of the fuzz target (tests/fuzz/corpus/): small
# valid images made by qemu-img/qemu-io and qcowctl, and malformed ones made
# by tests/tools/mkbad.  Every file stays under 64 KiB.  Not part of `make
# check`; run from a build directory and commit the result:
#   top_srcdir=/path/to/src top_builddir=$PWD bash $top_srcdir/tests/fuzz/make-corpus.sh
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_tools mkbad randio
OUT=${1:-$top_srcdir/tests/fuzz/corpus}
mkdir -p "$OUT" || die "mkdir $OUT"
cd "$T" || die cd

q() { "$QEMU_IMG" "$@" >/dev/null 2>&1; }
io() { "$QEMU_IO" "$@" >/dev/null 2>&1; }

# QEMU-made images.
q create -f qcow plain.qcow 1M
io -f qcow -c 'write -P 0x11 0 4096' -c 'write -P 0x22 300000 5000' -c 'write -P 0x33 1048064 512' plain.qcow
cp plain.qcow "$OUT/qemu-plain.qcow"
q create -f qcow odd.qcow 3001
io -f qcow -c 'write -P 0x44 2048 953' odd.qcow
cp odd.qcow "$OUT/qemu-odd-size.qcow"
head -c 20000 /dev/zero | tr '\0' 'q' >data.raw
q convert -c -f raw -O qcow data.raw comp.qcow || true
cp comp.qcow "$OUT/qemu-compressed.qcow"
q create -f qcow --object secret,id=s0,data=fuzz -o encrypt.format=aes,encrypt.key-secret=s0 enc.qcow 1M
io --object secret,id=s0,data=fuzz --image-opts driver=qcow,file.filename=enc.qcow,encrypt.key-secret=s0 \
    -c 'write -P 0x55 4096 8192'
cp enc.qcow "$OUT/qemu-encrypted.qcow"
# Backing names as the fuzz target sees them: its own name (a self-loop) and
# a missing file.
q create -f qcow -u -b fuzz.qcow -F qcow self.qcow 1M
cp self.qcow "$OUT/qemu-backing-self.qcow"
q create -f qcow -u -b missing.raw -F raw over.qcow 1M
io -f qcow -U -c 'write -P 0x66 512 1024' over.qcow || true
cp over.qcow "$OUT/qemu-backing-missing.qcow"
"$RANDIO" data 1 4096 >"$OUT/raw-4k.raw"

# qcowctl-made: the Xen header, with extents.
if [ -x "$QCOWCTL" ]; then
    "$QCOWCTL" create --xen-header xen.qcow 1M && cp xen.qcow "$OUT/qcowctl-xen.qcow"
    "$QCOWCTL" create --cluster-size 512 c512.qcow 1M &&
        "$QCOWCTL" write --pattern 7 c512.qcow 1000 3000 && cp c512.qcow "$OUT/qcowctl-c512.qcow"
fi

# mkbad's set, minus what is only the same image again.
mkdir bad && "$MKBAD" bad || die mkbad
for f in bad/*.qcow; do
    case $f in bad/deep-* | bad/loop-b.qcow) continue ;; esac
    cp "$f" "$OUT/mkbad-$(basename "$f")"
done
find "$OUT" -type f -size +64k -print -delete | sed 's/^/dropped (>64 KiB): /' >&2
ls -l "$OUT" >&2
