#!/bin/bash
# make analyze: clang's static analyser over every C source, and cppcheck
# when it is installed.  A finding fails the run unless it is listed in
# tools/analyze.supp with the reason it is a false positive.  Leak reports
# about a variable declared with a _cleanup_ attribute are dropped on their
# own: neither analyser models the attribute (clang's does from version 18),
# and the sanitizer builds catch a real leak of such a variable at run time.
#
#   analyze.sh SRCDIR BUILDDIR
#
# Environment: CLANG, CPPCHECK (paths; empty when configure found none),
# ANALYZE_CPPFLAGS (include paths and defines of the dependencies),
# ANALYZE_JOBS, ANALYZE_REQUIRE_ALL=1 (fail when a tool is missing, as
# ./quickstart check does).  The full reports, with the path of each
# finding, are left in BUILDDIR/analyze.log.
set -uo pipefail

srcdir=$(cd "$1" && pwd) || exit 2
builddir=$(cd "$2" && pwd) || exit 2
jobs=${ANALYZE_JOBS:-$(nproc 2>/dev/null || echo 2)}
supp=$srcdir/tools/analyze.supp
log=$builddir/analyze.log
work=$(mktemp -d "${TMPDIR:-/tmp}/qcowd-analyze.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT

missing() {
    if [ -n "${ANALYZE_REQUIRE_ALL:-}" ]; then
        echo "analyze: $1" >&2
        exit 1
    fi
    echo "analyze: $1 (skipped)" >&2
}

cd "$srcdir" || exit 2
find ctl shm daemon nbdkit tests -name '*.c' 2>/dev/null | LC_ALL=C sort >"$work/sources"
flags=(-std=gnu11 -I"$builddir" -I. -Idaemon/image -Ishm -Idaemon/common -Idaemon/worker
       -Inbdkit -Itests/ring -DWORKER_PATH='"qcowd-worker"' -DRINGBENCH_DEFAULT_WORKER='"qcowd-worker"')
read -r -a dep_flags <<<"${ANALYZE_CPPFLAGS:-}"
: >"$log"

# Findings, one per line: FILE:LINE: TOOL: MESSAGE [ID]
: >"$work/findings"
tools_ran=()

if [ -n "${CLANG:-}" ]; then
    tools_ran+=(clang)
    export CLANG work
    # One report file per source, so parallel runs do not mix their lines.
    xargs -P "$jobs" -I{} sh -c 'src=$1; shift; out="$work/clang.$(echo "$src" | tr / _)"
        "$CLANG" --analyze "$@" -Xanalyzer -analyzer-output=text -o /dev/null "$src" >"$out" 2>&1
        echo $? >"$out.rc"; echo "$src" >"$out.src"' sh {} "${flags[@]}" "${dep_flags[@]}" \
        <"$work/sources"
    for f in "$work"/clang.*; do
        case $f in *.rc | *.src) continue ;; esac
        cat "$f" >>"$log"
        if [ "$(cat "$f.rc")" != 0 ] || grep -q ': error: ' "$f"; then
            echo "analyze: clang could not analyse $(cat "$f.src"):" >&2
            grep ': error: ' "$f" | head -n 5 >&2
            echo "$(cat "$f.src"):0: clang: the analyser failed [analyzer-error]" >>"$work/findings"
        fi
        sed -n 's/^\([^ :]*\.[ch]\):\([0-9]*\):[0-9]*: warning: \(.*\) \[\([^]]*\)\]$/\1:\2: clang: \3 [\4]/p' \
            "$f" >>"$work/findings"
    done
else
    missing "clang not found: no static analysis (apt-get install clang)"
fi

if [ -n "${CPPCHECK:-}" ]; then
    tools_ran+=(cppcheck)
    "$CPPCHECK" --quiet --std=c11 --enable=warning,portability,performance --library=posix \
        --inline-suppr -j "$jobs" -D__GNUC__ -I"$builddir" -I. -Idaemon/image -Ishm \
        -Idaemon/common -Idaemon/worker -Inbdkit -Itests/ring \
        --template='{file}:{line}: cppcheck: {message} [{id}]' \
        $(cat "$work/sources") 2>"$work/cppcheck" >/dev/null
    cat "$work/cppcheck" >>"$log"
    grep -E '^[^ :]+:[0-9]+: cppcheck: ' "$work/cppcheck" >>"$work/findings"
else
    missing "cppcheck not found (apt-get install cppcheck)"
fi

[ ${#tools_ran[@]} -gt 0 ] || { echo "analyze: no analyser ran" >&2; exit 1; }
LC_ALL=C sort -u -o "$work/findings" "$work/findings"

# A leak report names its variable: 'NAME' (clang) or ": NAME [" (cppcheck).
leaked_variable() {
    case $1 in
    *'leak of memory pointed to by '\'*) local v=${1#*pointed to by \'}; echo "${v%%\'*}" ;;
    *'cppcheck: Memory leak: '* | *'cppcheck: Resource leak: '*)
        local v=${1#*leak: }; echo "${v%% \[*}" ;;
    esac
}

# Whether NAME is declared with a _cleanup_ attribute in the function
# around LINE of FILE (looking back to the function's opening brace).
cleanup_variable() {
    local file=$1 line=$2 name=$3
    awk -v line="$line" -v name="$name" '
        NR > line { exit }
        /^\{/ { cleanup = 0 }
        /_cleanup_/ && match($0, "[^A-Za-z0-9_]" name "([^A-Za-z0-9_]|$)") { cleanup = 1 }
        END { exit !cleanup }' "$file"
}

# Suppressions, one a line: FILE | TOOL | ID | TEXT | REASON.  A finding
# matches when it is in FILE, from TOOL, of ID, and its message holds TEXT.
read_suppressions() {
    local file tool id text reason
    while IFS='|' read -r file tool id text reason; do
        file=$(echo "$file" | xargs); tool=$(echo "$tool" | xargs)
        id=$(echo "$id" | xargs); text=$(echo "$text" | sed 's/^ *//; s/ *$//')
        case $file in '' | '#'*) continue ;; esac
        printf '%s\t%s\t%s\t%s\n' "$file" "$tool" "$id" "$text"
    done <"$supp"
}

suppressed() {
    local finding=$1 file tool id text
    while IFS=$'\t' read -r file tool id text; do
        if [ "${finding%%:*}" = "$file" ] && [[ $finding == *": $tool: "*"$text"*" [$id]" ]]; then
            printf '%s\t%s\t%s\t%s\n' "$file" "$tool" "$id" "$text" >>"$work/used"
            return 0
        fi
    done <"$work/supp"
    return 1
}

: >"$work/used"
read_suppressions >"$work/supp"
left=0 cleanup_drops=0 suppressions=0
while IFS= read -r finding; do
    file=${finding%%:*}
    rest=${finding#*:}
    line=${rest%%:*}
    var=$(leaked_variable "$finding")
    if [ -n "$var" ] && [ -f "$file" ] && cleanup_variable "$file" "$line" "$var"; then
        cleanup_drops=$((cleanup_drops + 1))
        echo "analyze: dropped, a leak of a _cleanup_ variable: $finding" >>"$log"
    elif suppressed "$finding"; then
        suppressions=$((suppressions + 1))
        echo "analyze: suppressed (tools/analyze.supp): $finding" >>"$log"
    else
        echo "$finding"
        left=$((left + 1))
    fi
done <"$work/findings"

# A suppression that matched nothing is stale: the code changed, or the
# finding was fixed.  Only those of the tools that ran can be judged.
stale=0
while IFS=$'\t' read -r file tool id text; do
    [[ " ${tools_ran[*]} " == *" $tool "* ]] || continue
    if ! grep -qxF "$(printf '%s\t%s\t%s\t%s' "$file" "$tool" "$id" "$text")" "$work/used"; then
        echo "analyze: stale suppression in tools/analyze.supp: $file | $tool | $id | $text" >&2
        stale=$((stale + 1))
    fi
done <"$work/supp"

echo "analyze: ${tools_ran[*]}: $left finding(s); $suppressions suppressed as false positives" \
     "(tools/analyze.supp), $cleanup_drops leak report(s) on _cleanup_ variables dropped;" \
     "details in $log" >&2
[ "$left" -eq 0 ] && [ "$stale" -eq 0 ]
