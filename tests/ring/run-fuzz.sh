#!/bin/sh
# Run the ring's libFuzzer target (tests/ring/fuzz_ring.c) for a bounded time:
# FUZZ_SECONDS (default 20).  The corpus is a temporary directory in the build
# tree; a crash leaves tests/ring/fuzz-crash-* there and fails the test.
bin=tests/ring/fuzz_ring
if [ ! -x "$bin" ]; then
    echo "$bin not built (needs clang with -fsanitize=fuzzer): skipped"
    exit 77
fi
corpus=$(mktemp -d tests/ring/fuzz-corpus.XXXXXX) || exit 99
trap 'rm -rf "$corpus"' EXIT INT TERM
"$bin" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=tests/ring/fuzz-crash- -print_final_stats=1 "$corpus"
