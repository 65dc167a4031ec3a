/* Metadata writeback for the executor: flushes are batched, and each
 * writeback runs the engine's two phases around data flushes
 *   new L2 tables -> fdatasync -> L2 updates, L1 entries -> fdatasync
 * with one writeback at a time. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "exec_internal.h"

void writeback_queue(struct executor *x, struct xreq *xr)
{
    xr->flush_next = x->flush_ready;
    x->flush_ready = xr;
    writeback_kick(x);
}

static void wb_next_phase(struct executor *x);

/* One write or fdatasync of a metadata writeback. */
struct wb_op {
    struct aio_op aio;
    struct executor *x;
    uint64_t len;
    struct iovec one;
};

static void wb_op_done(struct aio_op *a, long res)
{
    struct wb_op *op = (struct wb_op *)((char *)a - offsetof(struct wb_op, aio));
    struct executor *x = op->x;
    int err = exec_io_result(res, op->len, false);

    free(op);
    if (err && !x->wb_err)
        x->wb_err = err;
    if (--x->wb_pending == 0)
        wb_next_phase(x);
}

/* Queue w, or an fdatasync of the image when w is NULL. */
static int wb_issue(struct executor *x, const struct meta_write *w)
{
    struct wb_op *op = calloc(1, sizeof *op);

    if (!op)
        return -ENOMEM;
    op->x = x;
    op->aio.done = wb_op_done;
    if (!w) {
        aio_prep_fdsync(&op->aio, x->wb.fd);
    } else {
        op->len = w->len;
        op->one = (struct iovec){ w->buf, w->len };
        aio_prep_writev(&op->aio, w->fd, &op->one, 1, w->off);
    }
    x->wb_pending++;
    aio_queue(x->aio, &op->aio);
    return 0;
}

static void wb_complete(struct executor *x)
{
    struct xreq *batch = x->wb_batch;
    int err = x->wb_err;

    image_meta_finish(x->img, &x->wb, err);
    if (err == 0 && x->opts.metalog)
        metalog_release(x->opts.metalog, x->wb_log_position);
    x->wb_running = false;
    x->wb_batch = NULL;
    while (batch) {
        struct xreq *next = batch->flush_next;
        exec_finish(batch, err ? err : batch->error);
        batch = next;
    }
    writeback_kick(x);
}

/* Phases: 1 new L2 tables, 2 fdatasync, 3 L2 updates + L1, 4 fdatasync. */
static void wb_next_phase(struct executor *x)
{
    int r = 0;

    if (x->wb_err) {
        wb_complete(x);
        return;
    }
    x->wb_pending = 1;
    switch (++x->wb_phase) {
    case 1:
        for (size_t i = 0; i < x->wb.n1 && r == 0; i++)
            r = wb_issue(x, &x->wb.phase1[i]);
        break;
    case 2:
        r = wb_issue(x, NULL);
        break;
    case 3:
        for (size_t i = 0; i < x->wb.n2 && r == 0; i++)
            r = wb_issue(x, &x->wb.phase2[i]);
        break;
    case 4:
        if (x->wb.n2)
            r = wb_issue(x, NULL);
        break;
    default:
        x->wb_pending = 0;
        wb_complete(x);
        return;
    }
    if (r < 0 && !x->wb_err)
        x->wb_err = r;
    if (--x->wb_pending == 0)
        wb_next_phase(x);
}

void writeback_kick(struct executor *x)
{
    int r;

    if (x->wb_running || (!x->flush_ready && !x->wb_wanted))
        return;
    x->wb_running = true;
    x->wb_wanted = false;
    x->wb_batch = x->flush_ready;
    x->flush_ready = NULL;
    x->wb_phase = 0;
    x->wb_err = 0;
    /* Everything logged so far is committed, so in the snapshot below. */
    if (x->opts.metalog)
        x->wb_log_position = metalog_position(x->opts.metalog);
    if ((r = image_meta_prepare(x->img, &x->wb)) < 0) {
        x->wb_err = r;
        x->wb = (struct meta_writeback){ .fd = -1 };
        wb_complete(x);
        return;
    }
    if (x->wb.fd < 0) {         /* read-only: nothing to make durable */
        wb_complete(x);
        return;
    }
    wb_next_phase(x);
}

void executor_tick(struct executor *x)
{
    if (image_meta_pressure(x->img)) {
        x->wb_wanted = true;
        writeback_kick(x);
    }
}

