# wait_until COMMAND...: run COMMAND every 50 ms until it succeeds, for 30 s
# at most (WAIT_LIMIT_S): a 2-core machine running the sanitizer build can
# be that slow.  Returns 0 as soon as COMMAND does, 1 when time ran out.
# Sourced by tests/lib/common.sh and tests/cli/lib.sh.
wait_until() {
    local i
    for ((i = 0; i < ${WAIT_LIMIT_S:-30} * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}
