/* Bounded busy-waiting with back-off, shared by libqcowring's client and
 * qcowd-worker: look for work for a short time before sleeping on an
 * eventfd, since a cross-CPU wake-up can cost more than the work. */
#ifndef QCOWD_SPIN_H
#define QCOWD_SPIN_H

#include <stdbool.h>
#include <stdint.h>

struct spin {
    uint64_t budget_ns;         /* 0: never spin */
    unsigned misses;            /* spins in a row that found nothing */
    unsigned skip;              /* waits left before spinning again */
    uint64_t hits;              /* sleeps the spin saved */
};

/* Call ready(arg) until it returns true or budget_ns passes, yielding the
 * CPU every few looks (a peer on the same CPU must run).  After several
 * misses in a row the next waits do not spin at all, so an idle or slow
 * peer costs no CPU.  True when ready() did. */
bool spin_wait(struct spin *s, bool (*ready)(const void *arg), const void *arg);

#endif
