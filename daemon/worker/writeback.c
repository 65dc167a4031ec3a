/* Metadata writeback for the executor: flushes are batched, and each
 * writeback runs the engine's two phases around data flushes
 *   new L2 tables -> fdatasync -> L2 updates, L1 entries -> fdatasync
 * with one writeback at a time. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
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
    bool sync;                  /* the fdatasync */
    uint64_t off, len;
    struct iovec one;
};

/* The first failure of a writeback is what its requests fail with. */
static void wb_failed(struct executor *x, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void wb_failed(struct executor *x, int err, const char *fmt, ...)
{
    va_list ap;

    if (x->wb_err)
        return;
    x->wb_err = err;
    va_start(ap, fmt);
    vsnprintf(x->wb_reason, sizeof x->wb_reason, fmt, ap);
    va_end(ap);
}

static const char *image_path(const struct executor *x)
{
    struct layer_info info;

    layer_get_info(x->img->top, &info);
    return info.path;
}

static void wb_op_done(struct aio_op *a, long res)
{
    struct wb_op *op = (struct wb_op *)((char *)a - offsetof(struct wb_op, aio));
    struct executor *x = op->x;
    int err;

    qc_clear_error();
    err = exec_io_result(res, op->len, false);
    if (err && op->sync) {
        wb_failed(x, err, "%s: fdatasync failed: %s", image_path(x), strerror(-err));
        /* After this the kernel may have dropped what it could not write:
         * no later flush can be trusted (image_flush_failed). */
        exec_flush_failed(x, err, x->wb_reason);
    } else if (err) {
        wb_failed(x, err, "%s: metadata write of %" PRIu64 " bytes at offset %" PRIu64 ": %s",
                  image_path(x), op->len, op->off, res < 0 ? strerror(-err) : qc_error_message(err));
    }
    free(op);
    assert(x->wb_running && x->wb_pending > 0);
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
        op->sync = true;
        aio_prep_fdsync(&op->aio, x->wb.fd);
    } else {
        op->off = w->off;
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

    assert(x->wb_running && x->wb_pending == 0);
    image_meta_finish(x->img, &x->wb, err);
    if (err == 0 && x->opts.metalog)
        metalog_release(x->opts.metalog, x->wb_log_position);
    x->wb_running = false;
    x->wb_batch = NULL;
    while (batch) {
        struct xreq *next = batch->flush_next;
        if (err)
            exec_note_failure(batch->req, "%s", x->wb_reason);
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
    if (r < 0)
        wb_failed(x, r, "%s: cannot start a metadata writeback: %s", image_path(x),
                  strerror(-r));
    assert(x->wb_pending > 0);
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
    qc_clear_error();
    if ((r = image_meta_prepare(x->img, &x->wb)) < 0) {
        wb_failed(x, r, "%s", qc_error_message(r));
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
    if (!x->img->flush_error && image_meta_pressure(x->img)) {
        x->wb_wanted = true;
        writeback_kick(x);
    }
}

