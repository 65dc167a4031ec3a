/* A thin layer over libaio for the worker's event loop.
 *
 * Operations are queued, then submitted in batches; a full kernel queue
 * (-EAGAIN) or a partial submit leaves the rest queued for the next round, so
 * a busy disk is back-pressure, never an error.  Completions are signalled on
 * an eventfd (io_set_eventfd) that the loop polls. */
#ifndef QCOWD_AIO_H
#define QCOWD_AIO_H

#include <libaio.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct aio_op;
typedef void (*aio_done_fn)(struct aio_op *op, long res);

struct aio_op {
    struct iocb iocb;           /* first: io_event.obj points here */
    aio_done_fn done;           /* res: bytes transferred or -errno */
    void *opaque;
    struct aio_op *next;        /* in the not-yet-submitted queue */
};

struct aio_ctx {
    io_context_t ctx;
    int efd;                    /* becomes readable when operations complete */
    unsigned depth;             /* kernel queue size */
    unsigned inflight;          /* submitted, not reaped */
    struct aio_op *queue_head, *queue_tail;
    bool fdsync_async;          /* the kernel takes IOCB_CMD_FDSYNC */
};

int aio_ctx_init(struct aio_ctx *a, unsigned depth);
void aio_ctx_destroy(struct aio_ctx *a);

void aio_prep_readv(struct aio_op *op, int fd, struct iovec *iov, int niov, uint64_t off);
void aio_prep_writev(struct aio_op *op, int fd, struct iovec *iov, int niov, uint64_t off);
void aio_prep_fdsync(struct aio_op *op, int fd);

/* Queue op; it is submitted by the next aio_submit(). */
void aio_queue(struct aio_ctx *a, struct aio_op *op);

/* Submit as much of the queue as the kernel takes.  Returns 0 or -errno for
 * a failure that is not back-pressure (those ops complete with the error). */
int aio_submit(struct aio_ctx *a);

/* Reap completions and run their callbacks.  Returns how many ran. */
int aio_reap(struct aio_ctx *a);

static inline bool aio_idle(const struct aio_ctx *a)
{
    return a->inflight == 0 && a->queue_head == NULL;
}

#endif
