/* Hybrid waiting in the worker: before sleeping in epoll_wait(), look for
 * a short time at the two places work comes from, without a system call:
 * the ring's request producer index and the tail of the kernel's AIO
 * completion ring (mapped into our address space by io_setup()).  Off
 * unless the image was attached with poll-us (see doc/ring.md). */
#include "config.h"

#include "busypoll.h"

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

static bool aio_completions_ready(const struct aio_ctx *a)
{
    const struct kernel_aio_ring *k = (const struct kernel_aio_ring *)a->ctx;

    if (a->inflight == 0 || !k || k->magic != KERNEL_AIO_RING_MAGIC)
        return false;
    return __atomic_load_n(&k->tail, __ATOMIC_ACQUIRE) !=
           __atomic_load_n(&k->head, __ATOMIC_RELAXED);
}

static bool work_ready(const void *arg)
{
    const struct busy_poll *p = arg;

    return aio_completions_ready(p->aio) || (p->rs && ring_server_requests_pending(p->rs));
}

bool busy_poll_for_work(struct busy_poll *p)
{
    return spin_wait(&p->spin, work_ready, p);
}
