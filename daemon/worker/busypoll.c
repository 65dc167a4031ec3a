/* Hybrid waiting in the worker: busy-wait briefly for the next request or
 * disk completion before sleeping in epoll_wait().
 *
 * A sleeping worker is woken by an eventfd, and across CPUs that wake-up
 * costs tens of microseconds in a VM: more than a fast disk takes, and
 * per round trip.  The spin looks at two places without a system call: the
 * ring's request producer index and the tail of the kernel's AIO completion
 * ring (mapped in our address space by io_setup()).  It backs off while it
 * keeps missing, so an idle worker sleeps. */
#include "config.h"

#include <sched.h>
#include <time.h>

#include "busypoll.h"

#define SPIN_MISS_STREAK 8      /* misses in a row before backing off */
#define SPIN_BACKOFF_WAITS 64   /* waits without spinning after that */
#define SPIN_CHECKS_PER_ROUND 32

/* The head of the completion ring io_setup() maps (linux/fs/aio.c); stable
 * ABI since 2.6, identified by its magic number. */
struct kernel_aio_ring {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
};
#define KERNEL_AIO_RING_MAGIC 0xa10a10a1u

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

static bool aio_completions_ready(const struct aio_ctx *a)
{
    const struct kernel_aio_ring *k = (const struct kernel_aio_ring *)a->ctx;

    if (a->inflight == 0 || !k || k->magic != KERNEL_AIO_RING_MAGIC)
        return false;
    return __atomic_load_n(&k->tail, __ATOMIC_ACQUIRE) != __atomic_load_n(&k->head, __ATOMIC_RELAXED);
}

static bool work_ready(const struct busy_poll *s)
{
    return aio_completions_ready(s->aio) ||
           (s->rs && ring_server_requests_pending(s->rs));
}

static bool spin_rounds(const struct busy_poll *s, uint64_t deadline)
{
    do {
        for (int i = 0; i < SPIN_CHECKS_PER_ROUND; i++) {
            if (work_ready(s))
                return true;
            cpu_relax();
        }
        sched_yield();
    } while (mono_ns() < deadline);
    return work_ready(s);
}

bool busy_poll_for_work(struct busy_poll *s)
{
    if (s->spin_ns == 0)
        return false;
    if (s->skip > 0) {
        s->skip--;
        return false;
    }
    if (spin_rounds(s, mono_ns() + s->spin_ns)) {
        s->misses = 0;
        s->hits++;
        return true;
    }
    if (++s->misses >= SPIN_MISS_STREAK) {
        s->misses = 0;
        s->skip = SPIN_BACKOFF_WAITS;
    }
    return false;
}
