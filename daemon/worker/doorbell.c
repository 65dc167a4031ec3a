/* Doorbell writes that a hostile peer cannot turn into a hang: see
 * doorbell.h for the design. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "doorbell.h"

#ifndef sigev_notify_thread_id          /* glibc < 2.38 */
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* One per thread that rings.  The signal handler finds it through the
 * timer's sigev_value, not through thread-local storage. */
struct guard {
    bool ready;                         /* setup_thread() ran */
    bool no_timer;                      /* timer_create failed: ring_unguarded */
    timer_t timer;
    volatile sig_atomic_t armed;
    volatile sig_atomic_t ringing;      /* inside the write: fd and out are valid */
    volatile sig_atomic_t fd;
    volatile sig_atomic_t rings;        /* doorbells so far (wraps) */
    sig_atomic_t rings_at_tick;
    sigjmp_buf out;
    unsigned long interrupted;
};

static _Thread_local struct guard guard;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t guard_key;

/* Can fd be rung now?  poll() reports POLLOUT exactly when a write of 1
 * would not block (the counter is below its maximum). */
static bool ringable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };

    return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

static void on_tick(int sig, siginfo_t *si, void *ctx)
{
    struct guard *g = si->si_value.sival_ptr;
    struct itimerspec off = { { 0, 0 }, { 0, 0 } };
    int saved = errno;

    (void)sig;
    (void)ctx;
    if (si->si_code != SI_TIMER || !g)
        return;
    if (g->ringing) {
        if (!ringable(g->fd))
            siglongjmp(g->out, 1);      /* SA_NODEFER: the signal stays unblocked */
        errno = saved;
        return;
    }
    if (g->rings == g->rings_at_tick && timer_settime(g->timer, 0, &off, NULL) == 0)
        g->armed = 0;
    g->rings_at_tick = g->rings;
    errno = saved;
}

static void guard_free(void *p)
{
    struct guard *g = p;

    if (g->ready && !g->no_timer)
        timer_delete(g->timer);
    g->ready = false;
}

/* Timers are not inherited: a child starts without one. */
static void forget_in_child(void)
{
    guard = (struct guard){ 0 };
}

static void setup_process(void)
{
    struct sigaction sa = { .sa_sigaction = on_tick,
                            .sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER };

    sigemptyset(&sa.sa_mask);
    sigaction(DOORBELL_GUARD_SIGNAL, &sa, NULL);
    pthread_key_create(&guard_key, guard_free);
    pthread_atfork(NULL, NULL, forget_in_child);
}

static void setup_thread(struct guard *g)
{
    struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID,
                            .sigev_signo = DOORBELL_GUARD_SIGNAL,
                            .sigev_value.sival_ptr = g };
    sigset_t set;

    pthread_once(&once, setup_process);
    sigemptyset(&set);
    sigaddset(&set, DOORBELL_GUARD_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    sev.sigev_notify_thread_id = gettid();
    g->no_timer = timer_create(CLOCK_MONOTONIC, &sev, &g->timer) < 0;
    g->ready = true;
    if (!g->no_timer)
        pthread_setspecific(guard_key, g);
}

static int arm(struct guard *g)
{
    struct itimerspec every = { { 0, DOORBELL_GUARD_NS }, { 0, DOORBELL_GUARD_NS } };

    if (timer_settime(g->timer, 0, &every, NULL) < 0)
        return -errno;
    g->rings_at_tick = g->rings;
    g->armed = 1;
    return 0;
}

static int write_one(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);

    if (n == (ssize_t)sizeof one)
        return 0;
    return n < 0 ? -errno : -EIO;
}

/* Without a timer: a look first, so only a peer that saturates the counter
 * between the look and the write (and made it blocking) can still block us. */
static int ring_unguarded(int fd)
{
    return ringable(fd) ? write_one(fd) : -EAGAIN;
}

void doorbell_prepare(void)
{
    if (!guard.ready)
        setup_thread(&guard);
}

int doorbell_ring(int fd)
{
    struct guard *g = &guard;
    int r;

    if (!g->ready)
        setup_thread(g);
    if (g->no_timer)
        return ring_unguarded(fd);
    g->fd = fd;
    g->rings++;
    if (sigsetjmp(g->out, 0)) {
        g->ringing = 0;
        g->interrupted++;
        return -EAGAIN;
    }
    /* From here until the write returns no tick disarms the timer, and a
     * tick that finds the doorbell saturated jumps back above. */
    g->ringing = 1;
    atomic_signal_fence(memory_order_seq_cst);
    if (!g->armed && arm(g) < 0) {
        g->ringing = 0;
        return ring_unguarded(fd);
    }
    r = write_one(fd);
    atomic_signal_fence(memory_order_seq_cst);
    g->ringing = 0;
    return r == -EINTR ? -EAGAIN : r;
}

unsigned long doorbell_interrupted(void)
{
    return guard.interrupted;
}
