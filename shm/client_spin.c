/* Hybrid waiting: busy-wait briefly for responses before sleeping on the
 * response eventfd (libqcowring).
 *
 * When the client and its worker run on different CPUs, every sleep costs a
 * cross-CPU wake-up (tens of microseconds in a VM), far more than a fast
 * backend takes to answer.  A short spin catches those answers.  The spin
 * backs off when it keeps missing (a slow disk), and yields the CPU on every
 * round so that a worker sharing this CPU is not starved by it. */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include "client_internal.h"

#define SPIN_DEFAULT_US 50
#define SPIN_MISS_STREAK 8      /* misses in a row before backing off */
#define SPIN_BACKOFF_WAITS 64   /* waits without spinning after that */
#define SPIN_CHECKS_PER_ROUND 32

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

void ring_spin_init(struct qcowring *r)
{
    r->spin_ns = (uint64_t)SPIN_DEFAULT_US * 1000;
}

int qcowring_set_spin(struct qcowring *r, unsigned usec)
{
    if (usec > 1000000)
        return -EINVAL;
    r->spin_ns = (uint64_t)usec * 1000;
    r->spin_misses = r->spin_skip = 0;
    return 0;
}

static bool responses_pending(const struct qcowring *r)
{
    return qcowring_load_acquire(&r->sring->rsp_prod) != r->rsp_cons;
}

static bool spin_rounds(const struct qcowring *r, uint64_t deadline)
{
    do {
        for (int i = 0; i < SPIN_CHECKS_PER_ROUND; i++) {
            if (responses_pending(r))
                return true;
            cpu_relax();
        }
        sched_yield();
    } while (mono_ns() < deadline);
    return responses_pending(r);
}

bool ring_spin_for_responses(struct qcowring *r)
{
    if (r->spin_ns == 0 || r->in_flight == 0)
        return false;
    if (r->spin_skip > 0) {
        r->spin_skip--;
        return false;
    }
    if (spin_rounds(r, mono_ns() + r->spin_ns)) {
        r->spin_misses = 0;
        return true;
    }
    if (++r->spin_misses >= SPIN_MISS_STREAK) {
        r->spin_misses = 0;
        r->spin_skip = SPIN_BACKOFF_WAITS;
    }
    return false;
}
