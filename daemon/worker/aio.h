/* A thin layer over libaio for the worker's event loop.
 *
 * Operations are queued, then submitted in batches; a full kernel queue
 * (-EAGAIN) or a partial submit leaves the rest queued for the next round, so
 * a busy disk is back-pressure, never an error.  Completions are signalled on
 * an eventfd (io_set_eventfd) that the loop polls.
 *
 * Kernel AIO slots are a host-wide budget (fs.aio-max-nr, see aio_budget.h),
 * so the depth is elastic: the layer holds one small context (min_depth
 * slots) for good, adds contexts while operations wait for a slot (up to
 * max_depth, as far as the budget allows: fewer slots mean a smaller depth,
 * never an error), and gives an added context back once it has had nothing
 * in flight for a second.  A context of n slots costs n in fs.aio-nr. */
#ifndef QCOWD_AIO_H
#define QCOWD_AIO_H

#include <libaio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct aio_op;
typedef void (*aio_done_fn)(struct aio_op *op, long res);
typedef long (*aio_blocking_fn)(struct aio_op *op);

struct aio_op {
    struct iocb iocb;           /* first: io_event.obj points here */
    aio_done_fn done;           /* res: bytes transferred or -errno */
    void *opaque;
    struct aio_op *next;        /* in the not-yet-submitted queue */
    aio_blocking_fn blocking;   /* aio_offload(): runs on the helper thread */
    long res;                   /* aio_offload(): what blocking() returned */
};

#define AIO_MAX_CONTEXTS 12

/* Blocking calls the kernel cannot run asynchronously (aio_offload): one
 * helper thread, started on first use, runs them in order. */
struct aio_helper {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct aio_op *todo, *todo_tail;    /* waiting for the thread */
    struct aio_op *done;                /* finished, newest first */
    bool done_ready;                    /* done is not empty (read without the lock) */
    bool started, stop;
    pthread_t thread;
    unsigned pending;                   /* offloaded, not yet reaped (loop only) */
};

/* One kernel context (io_setup). */
struct aio_kctx {
    io_context_t ctx;
    unsigned size;              /* slots: what io_setup was asked for */
    unsigned inflight;
    uint64_t last_used_ns;      /* when an operation last went into it */
};

/* How the depth moved (for stats). */
struct aio_depth_stats {
    uint64_t grown;             /* contexts added */
    uint64_t released;          /* contexts given back */
    uint64_t limited;           /* times the host's budget gave less than wanted */
    unsigned peak;              /* the most slots held at once */
};

struct aio_ctx {
    struct aio_kctx kctx[AIO_MAX_CONTEXTS];   /* [0] is never given back */
    unsigned nkctx;
    int efd;                    /* becomes readable when operations complete */
    unsigned depth;             /* slots held: the sum of the contexts' sizes */
    unsigned min_depth, max_depth;
    unsigned inflight;          /* submitted, not reaped */
    unsigned queued;            /* waiting in the queue */
    struct aio_op *queue_head, *queue_tail;
    bool fdsync_async;          /* the kernel takes IOCB_CMD_FDSYNC */
    struct aio_helper helper;
    uint64_t next_grow_ns;      /* after a refusal, no new attempt before this */
    struct aio_depth_stats stats;
};

/* Set up with min_depth slots held for good (the host's budget must have
 * them: -EAGAIN otherwise) and room to grow to max_depth. */
int aio_ctx_init(struct aio_ctx *a, unsigned min_depth, unsigned max_depth);

/* Destroy every context, waiting for the kernel (tens of milliseconds). */
void aio_ctx_destroy(struct aio_ctx *a);

/* At process exit: stop the helper thread (waiting for a call it still
 * runs), give the slots back to the budget's ledger and close the eventfd,
 * leaving the contexts to the exit (which does not wait). */
void aio_ctx_abandon(struct aio_ctx *a);

void aio_prep_readv(struct aio_op *op, int fd, struct iovec *iov, int niov, uint64_t off);
void aio_prep_writev(struct aio_op *op, int fd, struct iovec *iov, int niov, uint64_t off);
void aio_prep_fdsync(struct aio_op *op, int fd);

/* Queue op; it is submitted by the next aio_submit(). */
void aio_queue(struct aio_ctx *a, struct aio_op *op);

/* Run op->blocking(op) on the helper thread (a system call the kernel has
 * no asynchronous form of: fallocate, ftruncate, and fdatasync where
 * IOCB_CMD_FDSYNC is refused); op->done(op, its result) runs later in
 * aio_reap(), on the loop, like a completion of the kernel's.  The eventfd
 * wakes the loop for both. */
void aio_offload(struct aio_ctx *a, struct aio_op *op);

/* Submit as much of the queue as the contexts take, adding a context when
 * operations wait and the budget allows.  Returns 0 or -errno for a
 * failure that is not back-pressure (those ops complete with the error). */
int aio_submit(struct aio_ctx *a);

/* Reap completions and run their callbacks.  Returns how many ran. */
int aio_reap(struct aio_ctx *a);

/* Give back added contexts that have been unused for a while.  Cheap;
 * call it every round of the loop. */
void aio_release_idle(struct aio_ctx *a, uint64_t now_ns);

/* Added contexts still held: the loop should come back to release them. */
static inline bool aio_has_extra(const struct aio_ctx *a)
{
    return a->nkctx > 1;
}

/* A completion is waiting in some context's ring (no system call). */
bool aio_completions_ready(const struct aio_ctx *a);

static inline bool aio_idle(const struct aio_ctx *a)
{
    return a->inflight == 0 && a->queue_head == NULL && a->helper.pending == 0;
}

#endif
