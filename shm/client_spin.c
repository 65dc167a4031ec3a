/* Hybrid waiting in the client: before sleeping on the response eventfd,
 * look at rsp_prod for a short time (libqcowring; see doc/ring.md).  When
 * the client and its worker run on different CPUs, every sleep costs a
 * cross-CPU wake-up (tens of microseconds in a VM), far more than a fast
 * backend takes to answer. */
#include "config.h"

#include <errno.h>

#include "client_internal.h"

#define SPIN_DEFAULT_US 50

void ring_spin_init(struct qcowring *r)
{
    r->spin = (struct spin){ .budget_ns = (uint64_t)SPIN_DEFAULT_US * 1000 };
}

int qcowring_set_spin(struct qcowring *r, unsigned usec)
{
    if (usec > 1000000)
        return -EINVAL;
    r->spin = (struct spin){ .budget_ns = (uint64_t)usec * 1000 };
    return 0;
}

static bool responses_pending(const void *arg)
{
    const struct qcowring *r = arg;

    return qcowring_load_acquire(&r->sring->rsp_prod) != r->rsp_cons;
}

bool ring_spin_for_responses(struct qcowring *r)
{
    return r->in_flight > 0 && spin_wait(&r->spin, responses_pending, r);
}
