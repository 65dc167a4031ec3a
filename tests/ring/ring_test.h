/* Small helpers shared by the ring tests (automake exit protocol). */
#ifndef QCOWD_RING_TEST_H
#define QCOWD_RING_TEST_H

#include <stdio.h>
#include <stdlib.h>

#define TEST_SKIP 77

/* Fail the test (exit 1) with the location when cond is false. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Same, printing an int result (typically -errno) on failure. */
#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n",  \
                    __FILE__, __LINE__, #a, #b, a_, b_);                       \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#endif
