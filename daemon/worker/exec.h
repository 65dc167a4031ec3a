/* The asynchronous executor: runs block requests against an image with
 * libaio, following the engine's plans.
 *
 * - Reads resolve to extents; every extent is its own I/O, all in parallel.
 * - Writes are planned per cluster; pieces run in parallel, allocating
 *   pieces first read the rest of their cluster (copy-on-write fill), and
 *   the L2 entries are committed when all the request's data is written.
 * - Ordering: a request waits for every earlier unfinished request that
 *   overlaps it (at cluster granularity) when either one writes; a flush
 *   waits for every earlier write; a barrier waits for everything before it
 *   and holds everything after it.
 * - Flushes are batched into metadata writebacks: new L2 tables, fdatasync,
 *   L2 updates and L1 entries, fdatasync.  One writeback runs at a time. */
#ifndef QCOWD_EXEC_H
#define QCOWD_EXEC_H

#include "aio.h"
#include "blkreq.h"
#include "image.h"
#include "metalog.h"
#include "stats.h"

struct executor;

struct exec_opts {
    bool null_backend;          /* complete I/O at once without touching the image */
    unsigned dio_align;         /* O_DIRECT alignment; 0 = 512 */
    struct metalog *metalog;    /* record allocations until written back (optional) */
    /* Called once, when a flush of the image fails (see executor_flush_error). */
    void (*flush_failed)(void *opaque, const char *reason);
    void *opaque;
    unsigned pool_size;         /* requests in flight to keep ready for (0: 64) */
};

int executor_new(struct image *img, struct aio_ctx *aio, const struct exec_opts *o,
                 struct executor **out);
void executor_free(struct executor *x);

/* Take a request; its complete() callback runs later (or before this returns
 * for requests that fail validation). */
void executor_submit(struct executor *x, struct blk_req *req);

/* Nothing running or waiting. */
bool executor_idle(const struct executor *x);

/* Start a background writeback if metadata piles up. */
void executor_tick(struct executor *x);

/* The image's top layer changed (a live commit ended; the executor is
 * idle): track conflicts at its cluster size. */
void executor_top_changed(struct executor *x);

/* NULL, or why the image is write-failed: a flush failed (here, or in an
 * earlier worker of the same metadata log).  From then on every request but
 * a read fails: writes, because nothing they allocate can be published and
 * nothing they overwrite can be made durable; flushes, because none can
 * vouch for what the failed one lost (image_flush_failed). */
const char *executor_flush_error(const struct executor *x);

const struct io_stats *executor_stats(const struct executor *x);
struct io_stats *executor_stats_mut(struct executor *x);

#endif
