/* Hybrid waiting in the worker: before sleeping in epoll_wait(), look for
 * a short time at the two places work comes from, without a system call:
 * the ring's request producer index and the tails of the kernel's AIO
 * completion rings (mapped into our address space by io_setup(); see
 * aio_completions_ready()).  Off
 * unless the image was attached with poll-us (see doc/ring.md). */
#include "config.h"

#include "busypoll.h"

static bool work_ready(const void *arg)
{
    const struct busy_poll *p = arg;

    return aio_completions_ready(p->aio) || (p->rs && ring_server_requests_pending(p->rs));
}

bool busy_poll_for_work(struct busy_poll *p)
{
    return spin_wait(&p->spin, work_ready, p);
}
