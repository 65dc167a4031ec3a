#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "aio.h"

#define REAP_BATCH 64
/* Small batches: the disk starts on the first requests while the kernel
 * takes the next ones (one large io_submit keeps it idle meanwhile). */
#define SUBMIT_BATCH 8

int aio_ctx_init(struct aio_ctx *a, unsigned depth)
{
    int r;

    memset(a, 0, sizeof *a);
    a->depth = depth;
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->efd < 0)
        return -errno;
    if ((r = io_setup((int)depth, &a->ctx)) < 0) {
        close(a->efd);
        a->efd = -1;
        return r;
    }
    a->fdsync_async = true;
    return 0;
}

void aio_ctx_destroy(struct aio_ctx *a)
{
    if (a->ctx)
        io_destroy(a->ctx);
    if (a->efd >= 0)
        close(a->efd);
    a->ctx = 0;
    a->efd = -1;
}

void aio_prep_readv(struct aio_op *op, int fd, struct iovec *iov, int niov, uint64_t off)
{
    io_prep_preadv(&op->iocb, fd, iov, niov, (long long)off);
}

void aio_prep_writev(struct aio_op *op, int fd, struct iovec *iov, int niov, uint64_t off)
{
    io_prep_pwritev(&op->iocb, fd, iov, niov, (long long)off);
}

void aio_prep_fdsync(struct aio_op *op, int fd)
{
    io_prep_fdsync(&op->iocb, fd);
}

void aio_queue(struct aio_ctx *a, struct aio_op *op)
{
    op->next = NULL;
    if (a->queue_tail)
        a->queue_tail->next = op;
    else
        a->queue_head = op;
    a->queue_tail = op;
}

static struct aio_op *dequeue(struct aio_ctx *a)
{
    struct aio_op *op = a->queue_head;

    if (op) {
        a->queue_head = op->next;
        if (!a->queue_head)
            a->queue_tail = NULL;
    }
    return op;
}

/* Older kernels refuse IOCB_CMD_FDSYNC: run it in place instead. */
static void run_fdsync_inline(struct aio_op *op)
{
    long res = fdatasync(op->iocb.aio_fildes) < 0 ? -errno : 0;
    op->done(op, res);
}

static int submit_batch(struct aio_ctx *a)
{
    struct iocb *batch[SUBMIT_BATCH];
    struct aio_op *ops[SUBMIT_BATCH];
    int n = 0, r;

    while (n < SUBMIT_BATCH && a->inflight + (unsigned)n < a->depth && a->queue_head) {
        struct aio_op *op = dequeue(a);
        if (op->iocb.aio_lio_opcode == IO_CMD_FDSYNC && !a->fdsync_async) {
            run_fdsync_inline(op);
            continue;
        }
        io_set_eventfd(&op->iocb, a->efd);
        op->iocb.data = op;
        ops[n] = op;
        batch[n++] = &op->iocb;
    }
    if (n == 0)
        return 0;
    r = io_submit(a->ctx, n, batch);
    if (r == -EINVAL && ops[0]->iocb.aio_lio_opcode == IO_CMD_FDSYNC) {
        a->fdsync_async = false;
        r = 0;
    }
    if (r < 0 && r != -EAGAIN) {
        /* The first op is bad: fail it alone, requeue the rest. */
        for (int i = n - 1; i >= 1; i--) {
            ops[i]->next = a->queue_head;
            a->queue_head = ops[i];
            if (!a->queue_tail)
                a->queue_tail = ops[i];
        }
        ops[0]->done(ops[0], r);
        return 1;
    }
    if (r < 0)
        r = 0;
    a->inflight += (unsigned)r;
    /* Put back what the kernel did not take, in order. */
    for (int i = n - 1; i >= r; i--) {
        ops[i]->next = a->queue_head;
        a->queue_head = ops[i];
        if (!a->queue_tail)
            a->queue_tail = ops[i];
    }
    return r;
}

int aio_submit(struct aio_ctx *a)
{
    int r;

    while (a->queue_head && a->inflight < a->depth)
        if ((r = submit_batch(a)) <= 0)
            break;
    return 0;
}

int aio_reap(struct aio_ctx *a)
{
    struct io_event ev[REAP_BATCH];
    struct timespec zero = { 0, 0 };
    uint64_t count;
    int total = 0, n;

    if (read(a->efd, &count, sizeof count) < 0 && errno != EAGAIN)
        return -errno;
    while (a->inflight > 0 && (n = io_getevents(a->ctx, 0, REAP_BATCH, ev, &zero)) > 0) {
        a->inflight -= (unsigned)n;
        for (int i = 0; i < n; i++) {
            struct aio_op *op = ev[i].data;
            op->done(op, (long)ev[i].res);
        }
        total += n;
    }
    return total;
}
