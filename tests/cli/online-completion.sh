#!/bin/bash
# The bash completion (ctl/qcowctl.bash): commands, options and their values,
# files for images, and attachment names asked of a running qcowd.
. "$(dirname "$0")/online-lib.sh"

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
# shellcheck source=../../ctl/qcowctl.bash
. "$top_srcdir/ctl/qcowctl.bash"
complete -p qcowctl >/dev/null || fail "the script does not register a completion for qcowctl"

# comp WORD... : complete the last word (may be empty) of `qcowctl WORD...`;
# the candidates, sorted, one per line, in $T/comp.
comp() {
    COMP_WORDS=("$QCOWCTL" "$@")
    COMP_CWORD=$#
    COMP_LINE="qcowctl $*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    # As bash runs it: without the test's errexit and nounset.
    set +eu
    _qcowctl
    set -eu
    printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort >"$T/comp"
}

# has WORD... / lacks WORD...: the last completion offers (does not offer) them.
has() {
    local w
    for w; do
        grep -qxF -- "$w" "$T/comp" || { echo "--- offered:" >&2; cat "$T/comp" >&2; fail "'$w' not offered"; }
    done
}
lacks() {
    local w
    for w; do
        grep -qxF -- "$w" "$T/comp" && { echo "--- offered:" >&2; cat "$T/comp" >&2; fail "'$w' offered"; }
    done
    return 0
}
only() {
    local got
    got=$(tr '\n' ' ' <"$T/comp")
    [ "${got% }" = "$*" ] ||
        { echo "--- offered:" >&2; cat "$T/comp" >&2; fail "expected exactly: $*"; }
}

make_image disk.qcow 16M
make_image data.qcow 16M
mkdir dir.d

# Commands and global options.
comp ""
has create info map check convert read write attach detach list query stats pause resume \
    limit events version shutdown help
comp at
only attach
comp s
only shutdown stats
comp --js
only --json
comp export --n
only --nbd
comp --so
only --socket
comp --socket ""
has disk.qcow dir.d
comp help q
only query

# Each command's options.
comp attach --
has --name --read-only --cache --format --key-file --poll-us --ring-page-order --data-pages \
    --socket --timeout --json --help
lacks --watch --repair
comp attach --i
has --iops --iops-read --iops-write --iops-burst --iops-size
comp limit --
has --iops --bps --bps-burst --burst-length --limit-group --limit --reset --socket --json
lacks --name --watch
comp limit --iops ""
only
comp stats --
has --watch --interval --count --socket
comp shutdown --n
only --no-wait
comp create --pre
only --preallocation
comp check -
has --repair -r --json
lacks --socket

# Option values.
comp attach --cache ""
only none writeback
comp attach --cache w
only writeback
comp attach -f ""
only auto qcow raw
comp create -f ""
only qcow raw
comp convert -O r
only raw
comp create --preallocation ""
only full metadata off
comp attach --key-file d
has disk.qcow data.qcow dir.d
comp stats --interval ""
only
comp list --timeout ""
only

# Files for images.
comp attach d
has disk.qcow data.qcow dir.d
comp attach --read-only --name x di
has disk.qcow dir.d
lacks data.qcow
comp attach --ring-page-order 1 --data-pages 64 di
has disk.qcow dir.d
comp attach --data-pages ""
only
comp info da
only data.qcow
comp convert -c disk.qcow da
only data.qcow
comp convert disk.qcow data.qcow ""
only
comp attach disk.qcow ""
only

# Attachment names: none without a daemon (and no waiting).
comp --socket "$T/nobody.sock" detach ""
only
start_daemon
"$QCOWCTL" --socket "$SOCK" attach -q disk.qcow || fail "attach"
"$QCOWCTL" --socket "$SOCK" attach -q --name other data.qcow || fail "attach"
for c in detach query pause resume stats limit; do
    comp --socket "$SOCK" "$c" ""
    only disk.qcow other
done
comp --socket "$SOCK" detach o
only other
comp --socket "$SOCK" export ""
only add list remove
comp --socket "$SOCK" export remove ""
only disk.qcow other
comp --socket "$SOCK" export list ""
only
comp detach --socket "$SOCK" ""
only disk.qcow other
comp --socket = "$SOCK" query ""
only disk.qcow other
comp --socket "$SOCK" stats -w -i 1 ""
only disk.qcow other
comp --socket "$SOCK" limit --iops 5 --limit-group g ""
only disk.qcow other
comp --socket "$SOCK" stats -w -c 2 d
only disk.qcow
QCOWD_SOCKET=$SOCK comp query ""
only disk.qcow other
comp --socket "$SOCK" detach other ""
only
comp --socket "$SOCK" list ""
only
exit 0
