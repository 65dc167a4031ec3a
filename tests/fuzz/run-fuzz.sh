#!/bin/bash
# Run the libFuzzer target on the checked-in corpus for a bounded time
# (QCOWD_FUZZ_TIME seconds, default 30).  Skips when the target was not built
# (configure found no clang).  A crash, leak, timeout or OOM fails the test;
# the input that caused it is copied to tests/fuzz/artifacts/ in the build
# tree and can be replayed with: tests/fuzz/fuzz_open_read FILE
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"

FUZZER=$top_builddir/tests/fuzz/fuzz_open_read
[ -x "$FUZZER" ] || skip "fuzzer not built (configure found no clang with libFuzzer)"
CORPUS=$top_srcdir/tests/fuzz/corpus
[ -d "$CORPUS" ] || die "no seed corpus at $CORPUS"

mkdir "$T/corpus" "$T/artifacts" || die mkdir
# -error_exitcode: libFuzzer's default (77) would read as SKIP to automake.
"$FUZZER" -max_total_time="${QCOWD_FUZZ_TIME:-30}" -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 -seed="$SEED" -print_final_stats=1 \
    -artifact_prefix="$T/artifacts/" "$T/corpus" "$CORPUS" </dev/null 2>"$T/fuzz.log"
rc=$?
tail -n 30 "$T/fuzz.log" >&2
if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$T/artifacts")" ]; then
    mkdir -p "$top_builddir/tests/fuzz/artifacts"
    cp "$T"/artifacts/* "$top_builddir/tests/fuzz/artifacts/" 2>/dev/null
    grep -E 'ERROR|SUMMARY|==[0-9]+==' "$T/fuzz.log" | head -20 >&2
    die "the fuzzer found a problem (exit $rc); inputs saved in $top_builddir/tests/fuzz/artifacts/"
fi
msg "no crash in ${QCOWD_FUZZ_TIME:-30} s; $(ls "$T/corpus" | wc -l) new inputs"
