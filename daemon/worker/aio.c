#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "aio.h"
#include "aio_budget.h"
#include "stats.h"

#define REAP_BATCH 64
/* Small batches: the disk starts on the first requests while the kernel
 * takes the next ones (one large io_submit keeps it idle meanwhile). */
#define SUBMIT_BATCH 8
/* An added context unused this long is given back. */
#define RELEASE_AFTER_NS 1000000000ull
/* After the budget refused, wait this long before asking again. */
#define GROW_RETRY_NS 100000000ull
/* io_destroy() waits for RCU grace periods (30-40 ms here): it runs on a
 * short-lived thread of its own, so the loop never waits for it. */
#define DESTROY_STACK_BYTES (256u << 10)
#define HELPER_STACK_BYTES (256u << 10)
/* Tests only: behave as a kernel that refuses IOCB_CMD_FDSYNC. */
#define NO_AIO_FDSYNC_ENV "QCOWD_TEST_NO_AIO_FDSYNC"

/* The head of the completion ring io_setup() maps (linux/fs/aio.c): a
 * stable ABI since 2.6, recognised by its magic number. */
struct kernel_aio_ring {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
};
#define KERNEL_AIO_RING_MAGIC 0xa10a10a1u

/* ---- contexts ---------------------------------------------------------- */

static int add_context(struct aio_ctx *a, unsigned size)
{
    struct aio_kctx *k = &a->kctx[a->nkctx];
    int r;

    if ((r = aio_budget_take(size)) < 0)
        return r;
    *k = (struct aio_kctx){ .size = size, .last_used_ns = now_ns() };
    if ((r = io_setup((int)size, &k->ctx)) < 0) {
        aio_budget_give(size);
        return r;
    }
    a->nkctx++;
    a->depth += size;
    if (a->depth > a->stats.peak)
        a->stats.peak = a->depth;
    return 0;
}

struct doomed {
    unsigned n;
    io_context_t ctx[AIO_MAX_CONTEXTS];
};

static void *destroy_contexts(void *arg)
{
    struct doomed *d = arg;

    for (unsigned i = 0; i < d->n; i++)
        io_destroy(d->ctx[i]);
    free(d);
    return NULL;
}

/* A thread with a small stack that takes no signal (they stay the loop's). */
static int start_thread(pthread_t *t, bool detached, size_t stack, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int r;

    pthread_attr_init(&attr);
    if (detached)
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, stack);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return -r;
}

/* Nothing is in flight on them.  The kernel gives their slots back to
 * fs.aio-nr as soon as io_destroy() starts. */
static void destroy_in_background(struct doomed *d)
{
    pthread_t t;

    if (start_thread(&t, true, DESTROY_STACK_BYTES, destroy_contexts, d) < 0)
        destroy_contexts(d);
}

int aio_ctx_init(struct aio_ctx *a, unsigned min_depth, unsigned max_depth)
{
    int r;

    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->helper.lock, NULL);
    pthread_cond_init(&a->helper.wake, NULL);
    if (min_depth == 0)
        min_depth = 1;
    a->min_depth = min_depth;
    a->max_depth = max_depth > min_depth ? max_depth : min_depth;
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->efd < 0)
        return -errno;
    if ((r = add_context(a, min_depth)) < 0) {
        close(a->efd);
        a->efd = -1;
        return r;
    }
    a->fdsync_async = getenv(NO_AIO_FDSYNC_ENV) == NULL;
    return 0;
}

static void stop_helper(struct aio_helper *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    h->started = false;
}

void aio_ctx_destroy(struct aio_ctx *a)
{
    stop_helper(&a->helper);
    for (unsigned i = 0; i < a->nkctx; i++)
        io_destroy(a->kctx[i].ctx);
    aio_ctx_abandon(a);
}

void aio_ctx_abandon(struct aio_ctx *a)
{
    /* The helper thread works on *a, which may not outlive this call (the
     * worker's lives in main's frame): a helper left sleeping there wakes,
     * spuriously or when a sanitizer stops the world at exit, on whatever
     * the exit wrote over it.  An idle helper leaves at once; a blocking
     * call still running on it is waited for. */
    stop_helper(&a->helper);
    aio_budget_give(a->depth);
    a->depth = 0;
    a->nkctx = 0;
    if (a->efd >= 0)
        close(a->efd);
    a->efd = -1;
}

static unsigned round_up_pow2(unsigned v)
{
    unsigned p = 1;

    while (p < v && p < (1u << 30))
        p <<= 1;
    return p;
}

/* Operations wait and every context is full: add one, as large as the
 * wait asks (at least doubling the depth), as far as the budget allows. */
static bool grow(struct aio_ctx *a)
{
    uint64_t now = now_ns();
    unsigned want, room;
    bool short_of_slots;
    int r;

    if (a->depth >= a->max_depth || a->nkctx == AIO_MAX_CONTEXTS || now < a->next_grow_ns)
        return false;
    want = round_up_pow2(a->inflight + a->queued);
    if (want < 2 * a->depth)
        want = 2 * a->depth;
    if (want > a->max_depth)
        want = a->max_depth;
    want -= a->depth;
    room = aio_budget_growth_room();
    short_of_slots = room < want;
    if (short_of_slots)
        want = room;
    r = want ? add_context(a, want) : -EAGAIN;
    if (short_of_slots || r < 0)
        a->stats.limited++;
    if (r < 0) {
        a->next_grow_ns = now + GROW_RETRY_NS;
        return false;
    }
    a->stats.grown++;
    return true;
}

void aio_release_idle(struct aio_ctx *a, uint64_t now)
{
    struct doomed *d = NULL;

    for (unsigned i = a->nkctx; i-- > 1;) {
        struct aio_kctx *k = &a->kctx[i];
        if (k->inflight || now - k->last_used_ns < RELEASE_AFTER_NS)
            continue;
        if (!d && !(d = calloc(1, sizeof *d)))
            return;             /* keep them: try again next round */
        d->ctx[d->n++] = k->ctx;
        a->depth -= k->size;
        aio_budget_give(k->size);
        a->stats.released++;
        memmove(k, k + 1, (a->nkctx - i - 1) * sizeof *k);
        a->nkctx--;
    }
    if (d)
        destroy_in_background(d);
}

/* ---- operations -------------------------------------------------------- */

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
    a->queued++;
}

static struct aio_op *dequeue(struct aio_ctx *a)
{
    struct aio_op *op = a->queue_head;

    if (op) {
        a->queue_head = op->next;
        if (!a->queue_head)
            a->queue_tail = NULL;
        a->queued--;
    }
    return op;
}

static void requeue_front(struct aio_ctx *a, struct aio_op *op)
{
    op->next = a->queue_head;
    a->queue_head = op;
    if (!a->queue_tail)
        a->queue_tail = op;
    a->queued++;
}

/* ---- the helper thread ------------------------------------------------- */

static void helper_finished(struct aio_ctx *a, struct aio_op *op)
{
    struct aio_helper *h = &a->helper;
    uint64_t one = 1;

    pthread_mutex_lock(&h->lock);
    op->next = h->done;
    h->done = op;
    __atomic_store_n(&h->done_ready, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->lock);
    if (write(a->efd, &one, sizeof one) < 0) {
        /* Only a full counter (it cannot be: the loop reads it) fails. */
    }
}

static void *helper_main(void *arg)
{
    struct aio_ctx *a = arg;
    struct aio_helper *h = &a->helper;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        struct aio_op *op;
        while (!h->todo && !h->stop)
            pthread_cond_wait(&h->wake, &h->lock);
        if (!(op = h->todo))
            break;
        if (!(h->todo = op->next))
            h->todo_tail = NULL;
        pthread_mutex_unlock(&h->lock);
        op->res = op->blocking(op);
        helper_finished(a, op);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

void aio_offload(struct aio_ctx *a, struct aio_op *op)
{
    struct aio_helper *h = &a->helper;

    h->pending++;
    if (!h->started && start_thread(&h->thread, false, HELPER_STACK_BYTES, helper_main, a) == 0)
        h->started = true;
    if (!h->started) {
        /* No thread to be had: run it here, still completing in aio_reap(). */
        op->res = op->blocking(op);
        helper_finished(a, op);
        return;
    }
    op->next = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->todo_tail)
        h->todo_tail->next = op;
    else
        h->todo = op;
    h->todo_tail = op;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

/* Run the finished ones' callbacks, in the order they were offloaded. */
static int reap_helper(struct aio_ctx *a)
{
    struct aio_helper *h = &a->helper;
    struct aio_op *op, *fifo = NULL;
    int n = 0;

    if (!__atomic_load_n(&h->done_ready, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&h->lock);
    op = h->done;
    h->done = NULL;
    __atomic_store_n(&h->done_ready, false, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&h->lock);
    while (op) {
        struct aio_op *next = op->next;
        op->next = fifo;
        fifo = op;
        op = next;
    }
    for (; fifo; fifo = op, n++) {
        op = fifo->next;
        assert(h->pending > 0);
        h->pending--;
        fifo->done(fifo, fifo->res);
    }
    return n;
}

/* Older kernels refuse IOCB_CMD_FDSYNC: fdatasync on the helper thread. */
static long run_fdatasync(struct aio_op *op)
{
    return fdatasync(op->iocb.aio_fildes) < 0 ? -errno : 0;
}

/* One io_submit into k.  Returns how many operations left the queue, or
 * 0 when the kernel took none (try again later). */
static int submit_batch(struct aio_ctx *a, struct aio_kctx *k)
{
    struct iocb *batch[SUBMIT_BATCH];
    struct aio_op *ops[SUBMIT_BATCH];
    int n = 0, taken = 0, r;

    while (n < SUBMIT_BATCH && k->inflight + (unsigned)n < k->size && a->queue_head) {
        struct aio_op *op = dequeue(a);
        if (op->iocb.aio_lio_opcode == IO_CMD_FDSYNC && !a->fdsync_async) {
            op->blocking = run_fdatasync;
            aio_offload(a, op);
            taken++;
            continue;
        }
        io_set_eventfd(&op->iocb, a->efd);
        op->iocb.data = op;
        ops[n] = op;
        batch[n++] = &op->iocb;
    }
    if (n == 0)
        return taken;
    r = io_submit(k->ctx, n, batch);
    if (r == -EINVAL && ops[0]->iocb.aio_lio_opcode == IO_CMD_FDSYNC && a->fdsync_async) {
        a->fdsync_async = false;    /* the next round runs it in place */
        for (int i = n - 1; i >= 0; i--)
            requeue_front(a, ops[i]);
        return 1;
    }
    if (r < 0 && r != -EAGAIN && r != -EINTR) {
        /* The first op is bad: fail it alone, requeue the rest. */
        for (int i = n - 1; i >= 1; i--)
            requeue_front(a, ops[i]);
        ops[0]->done(ops[0], r);
        return taken + 1;
    }
    if (r < 0)
        r = 0;
    assert(r <= n);
    k->inflight += (unsigned)r;
    a->inflight += (unsigned)r;
    if (r > 0)
        k->last_used_ns = now_ns();
    /* Put back what the kernel did not take, in order. */
    for (int i = n - 1; i >= r; i--)
        requeue_front(a, ops[i]);
    return taken + r;
}

static struct aio_kctx *context_with_room(struct aio_ctx *a)
{
    for (unsigned i = 0; i < a->nkctx; i++)
        if (a->kctx[i].inflight < a->kctx[i].size)
            return &a->kctx[i];
    return NULL;
}

int aio_submit(struct aio_ctx *a)
{
    while (a->queue_head) {
        struct aio_kctx *k = context_with_room(a);
        if (!k) {
            if (!grow(a))
                break;
            k = &a->kctx[a->nkctx - 1];
        }
        if (submit_batch(a, k) <= 0)
            break;
    }
    return 0;
}

/* ---- completions ------------------------------------------------------- */

/* False only when k's ring is known to hold no event (no system call). */
static bool may_have_events(const struct aio_kctx *k)
{
    const struct kernel_aio_ring *ring = (const struct kernel_aio_ring *)k->ctx;

    if (k->inflight == 0)
        return false;
    if (!ring || ring->magic != KERNEL_AIO_RING_MAGIC)
        return true;
    return __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE) !=
           __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
}

bool aio_completions_ready(const struct aio_ctx *a)
{
    if (__atomic_load_n(&a->helper.done_ready, __ATOMIC_ACQUIRE))
        return true;
    for (unsigned i = 0; i < a->nkctx; i++) {
        const struct kernel_aio_ring *ring = (const struct kernel_aio_ring *)a->kctx[i].ctx;
        if (ring && ring->magic == KERNEL_AIO_RING_MAGIC && may_have_events(&a->kctx[i]))
            return true;
    }
    return false;
}

static int reap_context(struct aio_ctx *a, struct aio_kctx *k)
{
    struct io_event ev[REAP_BATCH];
    struct timespec zero = { 0, 0 };
    int total = 0, n;

    while (may_have_events(k) && (n = io_getevents(k->ctx, 0, REAP_BATCH, ev, &zero)) > 0) {
        assert((unsigned)n <= k->inflight && (unsigned)n <= a->inflight);
        k->inflight -= (unsigned)n;
        a->inflight -= (unsigned)n;
        for (int i = 0; i < n; i++) {
            struct aio_op *op = ev[i].data;
            op->done(op, (long)ev[i].res);
        }
        total += n;
    }
    return total;
}

int aio_reap(struct aio_ctx *a)
{
    uint64_t count;
    int total = 0;

    if (read(a->efd, &count, sizeof count) < 0 && errno != EAGAIN)
        return -errno;
    for (unsigned i = 0; i < a->nkctx; i++)
        total += reap_context(a, &a->kctx[i]);
    return total + reap_helper(a);
}
