#!/bin/bash
# Malformed images (made by tests/tools/mkbad) must be refused cleanly:
# qcowctl info / read / convert exit 1 with exactly one line on stderr that
# names the file and says what is wrong, within 20 seconds, without a crash
# or a sanitizer report.  Good images from the same generator must work.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qcowctl
require_tools mkbad

D=$T/bad
mkdir "$D" || die "mkdir"
"$MKBAD" "$D" || die "mkbad failed"
SIZE=8388608
failures=0

fail() {
    msg "FAIL: $*"
    failures=$((failures + 1))
}

# Run one qcowctl command (in $D, on relative names) and judge it.
#   want: 1 (must be refused), 0 (must work), "01" (either, but cleanly)
#   who:  ERE the message must contain to name the file
#   what: ERE (case-insensitive) for the reason
check_cmd() {
    local case=$1 want=$2 who=$3 what=$4 rc lines
    shift 4
    rm -f "$T/out.raw"
    (cd "$D" && timeout 20 "$QCOWCTL" "$@" >"$T/stdout" 2>"$T/stderr")
    rc=$?
    if is_crash "$rc"; then
        fail "$case: qcowctl $*: crashed or hung (exit $rc)"
        sed 's/^/    /' "$T/stderr" | head -40 >&2
        return
    fi
    case "$want" in
        01) [ "$rc" -eq 0 ] && return ;;
        0)
            if [ "$rc" -ne 0 ]; then
                fail "$case: qcowctl $*: exit $rc, expected 0: $(head -3 "$T/stderr")"
            fi
            return ;;
    esac
    if [ "$rc" -ne 1 ]; then
        fail "$case: qcowctl $*: exit $rc, expected 1; stderr: $(head -3 "$T/stderr")"
        return
    fi
    lines=$(wc -l <"$T/stderr")
    if [ "$lines" -ne 1 ]; then
        fail "$case: qcowctl $*: $lines lines on stderr, expected exactly 1:"
        sed 's/^/    /' "$T/stderr" | head -20 >&2
        return
    fi
    grep -q '^qcowctl: ' "$T/stderr" ||
        fail "$case: qcowctl $*: message does not start with 'qcowctl: ': $(cat "$T/stderr")"
    grep -Eq -- "$who" "$T/stderr" ||
        fail "$case: qcowctl $*: message does not name the file (/$who/): $(cat "$T/stderr")"
    grep -Eqi -- "$what" "$T/stderr" ||
        fail "$case: qcowctl $*: message does not say /$what/: $(cat "$T/stderr")"
}

# CASE  COMMANDS  NAME-ERE  REASON-ERE
# COMMANDS: i = info, r = read of the whole size, c = convert -f qcow -O raw;
# a command in upper case must fail; in lower case it may also succeed (the
# damage is in data the command need not look at) but must not misbehave.
# bad-magic is only tried with -f qcow: probed, it is a raw image.
CASES='
bad-magic                  C    bad-magic\.qcow                 bad magic
version-0                  IRC  version-0\.qcow                 qcow version 0
version-2                  IRC  version-2\.qcow                 qcow version 2
size-0                     IRC  size-0\.qcow                    size 0 .*too small
size-1                     IRC  size-1\.qcow                    size 1 .*too small
cluster-bits-8             IRC  cluster-bits-8\.qcow            cluster_bits 8\b
cluster-bits-17            IRC  cluster-bits-17\.qcow           cluster_bits 17
l2-bits-5                  IRC  l2-bits-5\.qcow                 l2_bits 5\b
l2-bits-14                 IRC  l2-bits-14\.qcow                l2_bits 14
crypt-method-2             IRC  crypt-method-2\.qcow            crypt method 2
size-overflow              IRC  size-overflow\.qcow             size .*overflow
l1-too-large               IRC  l1-too-large\.qcow              L1 table .*too large
l1-past-eof                IRC  l1-past-eof\.qcow               L1 table .*past the end
l1-overlaps-header         IRC  l1-overlaps-header\.qcow        L1 table .*overlaps the header
backing-name-1024          IRC  backing-name-1024\.qcow         backing file name length 1024
backing-name-past-eof      IRC  backing-name-past-eof\.qcow     backing file name .*past the end
backing-offset-no-name     IRC  backing-offset-no-name\.qcow    backing file name .*empty
backing-name-no-offset     IRC  backing-name-no-offset\.qcow    backing file name .*without an offset
backing-name-overlaps-l1   IRC  backing-name-overlaps-l1\.qcow  backing file name overlaps the L1
l1-entry-past-eof          iRC  l1-entry-past-eof\.qcow         L1 entry 0 .*past the end
l1-entry-misaligned        iRC  l1-entry-misaligned\.qcow       L1 entry 0 .*aligned
l1-entry-into-l1           iRC  l1-entry-into-l1\.qcow          L1 entry 0 .*overlaps
l2-entry-past-eof          iRC  l2-entry-past-eof\.qcow         L2 entry .*past the end
l2-entry-runs-past-eof     iRC  l2-entry-runs-past-eof\.qcow    L2 entry .*past the end
l2-entry-misaligned        iRC  l2-entry-misaligned\.qcow       L2 entry .*aligned
compressed-past-eof        iRC  compressed-past-eof\.qcow       compressed cluster .*(outside|past the end)
compressed-corrupt         iRC  compressed-corrupt\.qcow        compressed cluster .*corrupt
compressed-short           iRC  compressed-short\.qcow          compressed cluster .*corrupt
header-only                IRC  header-only\.qcow               L1 table .*past the end
half-l1                    IRC  half-l1\.qcow                   L1 table .*past the end
loop-a                     IRC  loop-[ab]\.qcow                 backing chain loops
self-loop                  IRC  self-loop\.qcow                 backing chain loops
deep-00                    IRC  deep-0[0-9]\.qcow               longer than 64
deep-01                    IRC  deep-0[0-9]\.qcow               longer than 64
missing-backing            IRC  missing-backing\.qcow           does-not-exist\.qcow (does not exist|No such file)
'

ncases=0
while read -r case cmds who what; do
    [ -n "$case" ] || continue
    ncases=$((ncases + 1))
    f=$case.qcow
    [ -f "$D/$f" ] || { fail "$case: mkbad did not write $f"; continue; }
    for ((k = 0; k < ${#cmds}; k++)); do
        c=${cmds:k:1}
        case "$c" in [A-Z]) want=1 ;; *) want=01 ;; esac
        case "$c" in
            [Ii]) check_cmd "$case" "$want" "$who" "$what" info "$f" ;;
            [Rr]) check_cmd "$case" "$want" "$who" "$what" read "$f" 0 "$SIZE" ;;
            [Cc]) check_cmd "$case" "$want" "$who" "$what" convert -f qcow -O raw "$f" "$T/out.raw" ;;
        esac
    done
    # A bad L2 entry must not spoil the rest of the image: guest cluster 515
    # (under the second L2 table, which no case touches) still reads right.
    # (A bad L1 entry may make the whole image refuse to open.)
    if [ "${cmds:0:1}" = i ] && [ "${case#l1-}" = "$case" ]; then
        check_cmd "$case" 0 . . read "$f" 2109440 4096
        extract "$D/valid.raw" 2109440 4096 | cmp -s - "$T/stdout" ||
            fail "$case: an undamaged cluster reads wrong"
    fi
done <<<"$CASES"
[ "$ncases" -ge 30 ] || die "only $ncases cases in the table"

# The good ones.  valid.qcow is checked against qemu-img first, so a bad
# verdict above is about the engine and not the generator.
if [ -n "$QEMU_IMG" ]; then
    "$QEMU_IMG" compare -q -f qcow -F raw "$D/valid.qcow" "$D/valid.raw" ||
        die "mkbad's valid.qcow does not match valid.raw according to qemu-img"
fi
for good in valid deep-02; do
    check_cmd "$good" 0 . . info "$good.qcow"
    check_cmd "$good" 0 . . read "$good.qcow" 0 "$SIZE"
    cmp -s "$T/stdout" "$D/valid.raw" || fail "$good: qcowctl read of the whole image differs from valid.raw"
    check_cmd "$good" 0 . . convert -O raw "$good.qcow" "$T/out.raw"
    cmp -s "$T/out.raw" "$D/valid.raw" || fail "$good: qcowctl convert -O raw differs from valid.raw"
done

[ "$failures" -eq 0 ] || die "$failures checks failed"
msg "$ncases malformed images refused as expected"
