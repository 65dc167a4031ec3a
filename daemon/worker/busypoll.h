/* Hybrid waiting: a short busy-poll before the worker sleeps (busypoll.c). */
#ifndef QCOWD_WORKER_BUSYPOLL_H
#define QCOWD_WORKER_BUSYPOLL_H

#include <stdbool.h>

#include "aio.h"
#include "ring_server.h"
#include "spin.h"

#define WORKER_POLL_DEFAULT_US 0     /* off: the client spins by default */

struct busy_poll {
    struct spin spin;
    const struct aio_ctx *aio;
    const struct ring_server *rs;       /* NULL while requests must wait */
};

/* Look for a request on the ring or a completion from the disk, within the
 * spin budget.  True when one came: poll instead of sleeping. */
bool busy_poll_for_work(struct busy_poll *p);

#endif
