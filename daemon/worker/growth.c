/* Growing the image's file ahead of its allocations, off the loop
 * (image.h: "growing the file"): the growth runs on the AIO helper thread
 * and completes through the loop like any I/O.  A plan that needs space
 * not ready yet waits here (as for an L2 table, metaread.c) while the other
 * requests go on; a request whose space is ready never waits. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "exec_internal.h"

struct growth {
    struct aio_op aio;
    struct executor *x;
    struct image_growth g;
};

static long run_growth(struct aio_op *a)
{
    struct growth *gr = (struct growth *)((char *)a - offsetof(struct growth, aio));

    return image_growth_run(&gr->g);
}

static void growth_finished(struct aio_op *a, long res)
{
    struct growth *gr = (struct growth *)((char *)a - offsetof(struct growth, aio));
    struct executor *x = gr->x;
    struct meta_waiter *w = x->space_waiters;
    char why[BLK_ERROR_MAX] = "";
    int r;

    x->growth = NULL;
    x->space_waiters = NULL;
    qc_clear_error();
    r = image_growth_done(x->img, &gr->g, (int)res);
    free(gr);
    if (r < 0)
        snprintf(why, sizeof why, "%s", qc_error_message(r));
    while (w) {
        struct meta_waiter *next = w->next;
        w->next = NULL;
        w->ready(w, r, why);    /* 0: plan again (and maybe wait again) */
        w = next;
    }
}

void growth_kick(struct executor *x)
{
    struct image_growth g;
    struct growth *gr;

    if (x->growth || image_growth_next(x->img, &g) <= 0)
        return;
    if (!(gr = calloc(1, sizeof *gr))) {
        image_growth_done(x->img, &g, -ENOMEM);
        return;
    }
    gr->x = x;
    gr->g = g;
    gr->aio.done = growth_finished;
    gr->aio.blocking = run_growth;
    x->growth = gr;
    aio_offload(x->aio, &gr->aio);
}

int growth_wait(struct executor *x, struct meta_waiter *w)
{
    w->next = x->space_waiters;
    x->space_waiters = w;
    growth_kick(x);
    /* Nothing to run (out of memory): the waiters must not hang. */
    if (!x->growth) {
        x->space_waiters = w->next;
        return qc_fail(-ENOMEM, "cannot start growing the image file: out of memory");
    }
    return 0;
}
