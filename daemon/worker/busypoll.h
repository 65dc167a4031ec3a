/* Hybrid waiting: a short busy-wait before the worker sleeps (busypoll.c). */
#ifndef QCOWD_WORKER_BUSYPOLL_H
#define QCOWD_WORKER_BUSYPOLL_H

#include <stdbool.h>
#include <stdint.h>

#include "aio.h"
#include "ring_server.h"

#define WORKER_POLL_DEFAULT_US 0     /* off: the client spins by default */

struct busy_poll {
    uint64_t spin_ns;           /* 0: never spin */
    const struct aio_ctx *aio;
    const struct ring_server *rs;       /* NULL while there is no ring */
    unsigned misses;            /* spins in a row that found nothing */
    unsigned skip;              /* waits left before spinning again */
    uint64_t hits;              /* sleeps saved (for the stats) */
};

/* Busy-wait up to spin_ns for a request on the ring or a completion from
 * the disk.  True when one came: poll instead of sleeping. */
bool busy_poll_for_work(struct busy_poll *s);

#endif
