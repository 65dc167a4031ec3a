/* The test tools' random numbers: Marsaglia's xorshift64, fast and
 * repeatable from a seed (never 0), which is all a test needs. */
#ifndef QCOWD_TESTS_XORSHIFT_H
#define QCOWD_TESTS_XORSHIFT_H

#include <stdint.h>

static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
