#include "config.h"

#include <sched.h>
#include <time.h>

#include "spin.h"

#define SPIN_MISS_STREAK 8      /* misses in a row before backing off */
#define SPIN_BACKOFF_WAITS 64   /* waits without spinning after that */
#define SPIN_LOOKS_PER_ROUND 32 /* looks between two sched_yield() */

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

static bool spin_rounds(bool (*ready)(const void *), const void *arg, uint64_t deadline)
{
    do {
        for (int i = 0; i < SPIN_LOOKS_PER_ROUND; i++) {
            if (ready(arg))
                return true;
            cpu_relax();
        }
        sched_yield();
    } while (mono_ns() < deadline);
    return ready(arg);
}

bool spin_wait(struct spin *s, bool (*ready)(const void *), const void *arg)
{
    if (s->budget_ns == 0)
        return false;
    if (s->skip > 0) {
        s->skip--;
        return false;
    }
    if (spin_rounds(ready, arg, mono_ns() + s->budget_ns)) {
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
