/* L2 tables the plans need, read through libaio (image_defer_meta): one read
 * in flight per table, shared by every request that waits for it; the
 * other requests go on meanwhile.  When the read ends the table is cached
 * pinned, each waiter plans again (and may need another table), then the
 * pin goes. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"
#include "util.h"

struct meta_read {
    struct aio_op aio;
    struct executor *x;
    struct meta_need need;
    uint8_t *buf;
    struct iovec iov;
    struct meta_waiter *waiters;
    struct meta_read *next;
};

static struct meta_read *find_read(struct executor *x, const struct meta_need *n)
{
    for (struct meta_read *m = x->meta_reads; m; m = m->next)
        if (m->need.layer == n->layer && m->need.key == n->key)
            return m;
    return NULL;
}

static void unlink_read(struct executor *x, struct meta_read *m)
{
    for (struct meta_read **p = &x->meta_reads; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            return;
        }
}

static void read_done(struct aio_op *a, long res)
{
    struct meta_read *m = (struct meta_read *)((char *)a - offsetof(struct meta_read, aio));
    struct executor *x = m->x;
    struct meta_waiter *w = m->waiters;
    char why[BLK_ERROR_MAX] = "";
    int r;

    unlink_read(x, m);
    qc_clear_error();
    r = image_meta_loaded(x->img, &m->need, m->buf, res);
    if (r < 0 && r != -EAGAIN)
        snprintf(why, sizeof why, "%s", qc_error_message(r));
    /* -EAGAIN: the table moved while it was read; its waiters plan again. */
    while (w) {
        struct meta_waiter *next = w->next;
        w->next = NULL;
        w->ready(w, r == -EAGAIN ? 0 : r, why);
        w = next;
    }
    if (r == 0)
        image_meta_unpin(&m->need);
    free(m->buf);
    free(m);
}

int metaread_wait(struct executor *x, struct meta_waiter *w)
{
    const struct meta_need *n = &x->img->need;
    struct meta_read *m;

    if (n->kind == NEED_SPACE)
        return growth_wait(x, w);
    if (!(m = find_read(x, n))) {
        if (!(m = calloc(1, sizeof *m)))
            return -ENOMEM;
        if (!(m->buf = alloc_aligned(4096, n->len))) {
            free(m);
            return -ENOMEM;
        }
        m->x = x;
        m->need = *n;
        m->iov = (struct iovec){ m->buf, n->len };
        m->aio.done = read_done;
        aio_prep_readv(&m->aio, n->fd, &m->iov, 1, n->off);
        m->next = x->meta_reads;
        x->meta_reads = m;
        aio_queue(x->aio, &m->aio);
    }
    w->next = m->waiters;
    m->waiters = w;
    return 0;
}
