/* The ring behind the NBD export: shared submission, a completion thread,
 * and reconnection when the ring goes away (see ring_conn.h). */
#include "config.h"

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <semaphore.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ring_conn.h"

#define REAP_BATCH 32
/* Asleep on the response doorbell, the completion thread still looks at
 * the ring this often: a server that stops while requests are in flight
 * says so in the qcowd page, and an idle client sees that only by looking. */
#define REAP_TIMEOUT_BUSY_MS 200
#define REAP_TIMEOUT_IDLE_MS 1000
#define RETRY_FIRST_MS 20
#define RETRY_MAX_MS 1000
#define OPEN_BUSY_WAIT_MS 5000
/* Rings lost in a row under one request before it gives up. */
#define MAX_RING_LOSSES 100

/* Returned inside this file for "the ring went away: send it again". */
#define RING_GONE (-ESHUTDOWN)

/* A request waiting for its answer, on the submitting thread's stack.  It
 * sleeps on its own semaphore, posted after the completion thread has let
 * go of the lock: a woken caller does not queue at once for the lock its
 * waker holds (a condition variable would have it do so, and the futex
 * round trips of that hand-over were most of the plugin's cost). */
struct ring_waiter {
    sem_t answered;
    int result;
    struct ring_waiter *prev, *next;    /* rc->in_flight */
};

const char *error_text(int err)
{
    const char *text = strerrordesc_np(err);

    return text ? text : "unknown error";
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wake_reaper(struct ring_conn *rc)
{
    uint64_t one = 1;

    if (write(rc->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: a wake-up is pending already. */
    }
}

/* ---- the list of requests in flight (lock held) -------------------------- */

static void waiter_link(struct ring_conn *rc, struct ring_waiter *w)
{
    w->prev = NULL;
    w->next = rc->in_flight;
    if (w->next)
        w->next->prev = w;
    rc->in_flight = w;
}

/* Take w off the list with its result; it is woken by sem_post(). */
static void waiter_answer(struct ring_conn *rc, struct ring_waiter *w, int result)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        rc->in_flight = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->result = result;
}

/* The ring of generation gen failed: everything in flight on it will be
 * sent again on the next ring. */
static void mark_lost(struct ring_conn *rc, uint64_t gen, int why)
{
    if (gen != rc->gen || rc->lost || !rc->ring)
        return;
    nbdkit_debug("qcowd: ring of '%s' lost (%s): reconnecting", rc->name, error_text(-why));
    rc->lost = true;
    rc->down_since_ns = now_ns();
    while (rc->in_flight) {
        struct ring_waiter *w = rc->in_flight;
        waiter_answer(rc, w, RING_GONE);
        sem_post(&w->answered);
    }
    pthread_cond_broadcast(&rc->changed);
}

static bool ring_failure(int err)
{
    return err == -ESHUTDOWN || err == -EPROTO || err == -ECONNRESET || err == -EPIPE;
}

/* ---- connecting ---------------------------------------------------------- */

/* A ring for the same export: same size, same writability. */
static int check_same_disk(const struct ring_conn *rc, const struct qcowring_geometry *g)
{
    if (g->capacity_sectors != rc->geo.capacity_sectors ||
        ((g->features ^ rc->geo.features) & QCOWRING_F_READ_ONLY)) {
        nbdkit_error("qcowd: '%s' came back with a different size or writability", rc->name);
        return -EIO;
    }
    return 0;
}

/* Connect, retrying until deadline_ns (at least once). */
static int connect_until(struct ring_conn *rc, uint64_t deadline_ns, struct qcowring **out)
{
    unsigned delay_ms = RETRY_FIRST_MS;
    int r;

    for (;;) {
        r = qcowring_connect(rc->socket_path, rc->name, out);
        if (r == 0 || now_ns() >= deadline_ns || rc->stopping)
            return r;
        usleep(delay_ms * 1000);
        delay_ms = delay_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : delay_ms * 2;
    }
}

/* Replace a lost ring (lock held on entry and exit; dropped while
 * connecting).  Waits until no caller holds a request of the old ring. */
static int reconnect(struct ring_conn *rc)
{
    struct qcowring *old, *fresh = NULL;
    struct qcowring_geometry g;
    uint64_t deadline;
    int r;

    rc->reconnecting = true;
    while (rc->held)
        pthread_cond_wait(&rc->changed, &rc->lock);
    old = rc->ring;
    rc->ring = NULL;
    if (!rc->down_since_ns)
        rc->down_since_ns = now_ns();
    deadline = rc->down_since_ns + (uint64_t)rc->retry_s * 1000000000u;
    pthread_mutex_unlock(&rc->lock);
    if (old)
        qcowring_close(old);    /* gives the old ring back to qcowd first */
    r = connect_until(rc, deadline, &fresh);
    if (r == 0) {
        qcowring_get_geometry(fresh, &g);
        if ((r = check_same_disk(rc, &g)) < 0)
            qcowring_close(fresh);
    }
    pthread_mutex_lock(&rc->lock);
    rc->reconnecting = false;
    if (r == 0) {
        rc->ring = fresh;
        rc->lost = false;
        rc->gen++;
        rc->down_since_ns = 0;
        rc->reconnects++;
        nbdkit_debug("qcowd: '%s' reconnected (%llu so far)", rc->name,
                     (unsigned long long)rc->reconnects);
        wake_reaper(rc);
    } else {
        nbdkit_error("qcowd: cannot get the ring of '%s' back: %s", rc->name, error_text(-r));
    }
    pthread_cond_broadcast(&rc->changed);
    return r;
}

/* A working ring and its generation (lock held). */
static int usable_ring(struct ring_conn *rc, uint64_t *gen)
{
    for (;;) {
        if (rc->stopping)
            return -ESHUTDOWN;
        if (rc->ring && !rc->lost) {
            *gen = rc->gen;
            return 0;
        }
        if (rc->reconnecting) {
            pthread_cond_wait(&rc->changed, &rc->lock);
            continue;
        }
        if (reconnect(rc) < 0)
            return -EIO;        /* the reason is in nbdkit's log */
    }
}

/* ---- one request ---------------------------------------------------------- */

struct ring_op {
    int op;
    uint64_t offset, len;
    size_t buf_len;
    void *dst;                  /* READ */
    const void *src;            /* WRITE, FLUSH with data */
    struct qcowring_map_extent *ext;    /* MAP */
    unsigned max_ext;
    uint64_t *covered;
};

static void release(struct ring_conn *rc, struct qcowring *ring, struct qcowring_req *q)
{
    qcowring_req_free(ring, q);     /* a no-op for one still in flight on a lost ring */
    if (--rc->held == 0 || rc->reconnecting || rc->slot_waiters)
        pthread_cond_broadcast(&rc->changed);
}

/* A slot and buffer on the current ring, waiting while the ring is full. */
static int take_slot(struct ring_conn *rc, const struct ring_op *o, uint64_t gen,
                     struct qcowring_req **q)
{
    int r;

    while ((r = qcowring_req_alloc(rc->ring, o->buf_len, q)) == -EAGAIN) {
        rc->slot_waiters++;
        pthread_cond_wait(&rc->changed, &rc->lock);
        rc->slot_waiters--;
        if (gen != rc->gen || rc->lost || !rc->ring)
            return RING_GONE;
    }
    if (ring_failure(r)) {
        mark_lost(rc, gen, r);
        return RING_GONE;
    }
    if (r == 0)
        rc->held++;
    return r;
}

/* Copy outside the lock: the ring cannot be closed while a request is held. */
static void copy_unlocked(struct ring_conn *rc, void *to, const void *from, size_t n)
{
    pthread_mutex_unlock(&rc->lock);
    memcpy(to, from, n);
    pthread_mutex_lock(&rc->lock);
}

/* Post the request (lock held) and wait for its answer with the lock
 * dropped; the lock is not held on return.  The answer (data, extents) is
 * taken from the buffer before the lock is taken again to free it. */
static int submit_and_wait(struct ring_conn *rc, const struct ring_op *o, uint64_t gen,
                           struct qcowring_req *q)
{
    struct ring_waiter w;
    int r;

    if (gen != rc->gen || rc->lost) {
        pthread_mutex_unlock(&rc->lock);
        return RING_GONE;
    }
    r = qcowring_submit(rc->ring, q, o->op, o->offset, o->len, &w);
    if (r < 0) {
        if (ring_failure(r))
            mark_lost(rc, gen, r);
        pthread_mutex_unlock(&rc->lock);
        return ring_failure(r) ? RING_GONE : r;
    }
    struct qcowring *ring = rc->ring;
    sem_init(&w.answered, 0, 0);
    waiter_link(rc, &w);
    /* The doorbell is rung with the lock let go: the system call, and the
     * server it may wake on this CPU, do not hold up the other callers. */
    bool ring_doorbell = false;
    if ((r = qcowring_publish(ring)) < 0)
        mark_lost(rc, gen, r);
    else
        ring_doorbell = r > 0;
    pthread_mutex_unlock(&rc->lock);
    if (ring_doorbell && (r = qcowring_ring_doorbell(ring)) < 0) {
        pthread_mutex_lock(&rc->lock);
        mark_lost(rc, gen, r);
        pthread_mutex_unlock(&rc->lock);
    }
    while (sem_wait(&w.answered) < 0)
        ;                       /* EINTR */
    sem_destroy(&w.answered);
    if (w.result == 0 && o->dst)
        memcpy(o->dst, qcowring_req_buf(q), o->len);
    if (w.result == 0 && o->ext &&
        (w.result = qcowring_map_answer(q, o->len, o->ext, o->max_ext, o->covered)) < 0)
        nbdkit_error("qcowd: a bad map answer from the worker of '%s'", rc->name);
    return w.result;
}

/* One try on the current ring (lock held): RING_GONE to try again. */
static int attempt(struct ring_conn *rc, const struct ring_op *o)
{
    struct qcowring_req *q;
    struct qcowring *ring;
    uint64_t gen;
    int r;

    if ((r = usable_ring(rc, &gen)) < 0 || (r = take_slot(rc, o, gen, &q)) < 0)
        return r;
    ring = rc->ring;
    if (o->src)
        copy_unlocked(rc, qcowring_req_buf(q), o->src, o->len);
    r = submit_and_wait(rc, o, gen, q);
    pthread_mutex_lock(&rc->lock);
    release(rc, ring, q);
    return r;
}

static int run(struct ring_conn *rc, const struct ring_op *o)
{
    unsigned losses = 0;
    int r;

    pthread_mutex_lock(&rc->lock);
    while ((r = attempt(rc, o)) == RING_GONE && ++losses < MAX_RING_LOSSES)
        ;
    pthread_mutex_unlock(&rc->lock);
    return r == RING_GONE ? -EIO : r;
}

uint64_t ring_conn_chunk(const struct ring_conn *rc)
{
    uint64_t quarter = (uint64_t)rc->geo.data_pages * QCOWRING_PAGE_SIZE / 4;
    uint64_t chunk = rc->geo.max_request_bytes < quarter ? rc->geo.max_request_bytes : quarter;

    chunk &= ~(uint64_t)(QCOWRING_PAGE_SIZE - 1);
    return chunk ? chunk : QCOWRING_PAGE_SIZE;
}

int ring_conn_io(struct ring_conn *rc, int op, void *dst, const void *src, uint64_t offset,
                 uint64_t len)
{
    struct ring_op o = { .op = op, .offset = offset, .len = len, .dst = dst, .src = src,
                         .buf_len = (dst || src) ? (size_t)len : 0 };

    return run(rc, &o);
}

int ring_conn_map(struct ring_conn *rc, uint64_t offset, uint64_t len,
                  struct qcowring_map_extent *out, unsigned max, uint64_t *covered)
{
    struct ring_op o = { .op = QCOWRING_OP_MAP, .offset = offset, .len = len,
                         .buf_len = QCOWRING_MAP_MAX_PAGES * QCOWRING_PAGE_SIZE,
                         .ext = out, .max_ext = max, .covered = covered };

    return run(rc, &o);
}

/* ---- the completion thread ------------------------------------------------- */

/* Hand the answers to their callers, woken once the lock is let go (held
 * on entry and exit). */
static void deliver(struct ring_conn *rc, const struct qcowring_completion *c, unsigned n)
{
    struct ring_waiter *answered[REAP_BATCH];

    assert(n <= REAP_BATCH);
    for (unsigned i = 0; i < n; i++) {
        answered[i] = c[i].user_data;
        waiter_answer(rc, answered[i], c[i].result);
    }
    pthread_mutex_unlock(&rc->lock);
    for (unsigned i = 0; i < n; i++)
        sem_post(&answered[i]->answered);
    pthread_mutex_lock(&rc->lock);
}

/* Sleep (lock dropped) until the ring or the wake-up eventfd fires. */
static void sleep_on(struct ring_conn *rc, int ring_fd, int timeout_ms)
{
    struct pollfd p[2] = { { .fd = rc->wake_fd, .events = POLLIN },
                           { .fd = ring_fd, .events = POLLIN } };
    uint64_t count;

    pthread_mutex_unlock(&rc->lock);
    if (poll(p, ring_fd >= 0 ? 2 : 1, timeout_ms) > 0 && (p[0].revents & POLLIN) &&
        read(rc->wake_fd, &count, sizeof count) < 0) {
        /* EAGAIN: someone else read it. */
    }
    pthread_mutex_lock(&rc->lock);
}

/* Requests are in flight: look again for a while (yielding the CPU, the
 * lock dropped) before sleeping: a wake-up costs more than a quick answer.
 * True when something happened meanwhile. */
static bool spin_for_answers(struct ring_conn *rc, struct qcowring_completion *c)
{
    uint64_t until = now_ns() + (uint64_t)rc->spin_us * 1000u;

    while (now_ns() < until) {
        pthread_mutex_unlock(&rc->lock);
        sched_yield();
        pthread_mutex_lock(&rc->lock);
        if (!rc->ring || rc->lost || rc->stopping)
            return true;
        int n = qcowring_reap(rc->ring, c, REAP_BATCH);
        if (n > 0)
            deliver(rc, c, (unsigned)n);
        else if (n < 0)
            mark_lost(rc, rc->gen, n);
        if (n != 0)
            return true;
    }
    return false;
}

static void *reaper_main(void *opaque)
{
    struct ring_conn *rc = opaque;
    struct qcowring_completion c[REAP_BATCH];

    pthread_mutex_lock(&rc->lock);
    while (!rc->stopping) {
        if (!rc->ring || rc->lost) {
            sleep_on(rc, -1, REAP_TIMEOUT_IDLE_MS);
            continue;
        }
        int n = qcowring_reap(rc->ring, c, REAP_BATCH);
        if (n > 0) {
            deliver(rc, c, (unsigned)n);
        } else if (n < 0) {
            mark_lost(rc, rc->gen, n);
        } else if (!(rc->in_flight && rc->spin_us && spin_for_answers(rc, c))) {
            bool busy = rc->in_flight != NULL;
            sleep_on(rc, qcowring_fd(rc->ring), busy ? REAP_TIMEOUT_BUSY_MS
                                                      : REAP_TIMEOUT_IDLE_MS);
        }
    }
    pthread_mutex_unlock(&rc->lock);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------ */

int ring_conn_open(struct ring_conn *rc, const char *socket_path, const char *name,
                   unsigned retry_s)
{
    int r;

    *rc = (struct ring_conn){ .socket_path = socket_path, .name = name, .retry_s = retry_s,
                              .wake_fd = -1 };
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    /* Held for a few hundred nanoseconds by many threads at once: spin a
     * little before sleeping in the kernel. */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&rc->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&rc->changed, NULL);
    rc->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rc->wake_fd < 0)
        return -errno;
    /* A ring another client still holds (e.g. the nbdkit this one replaces,
     * whose connection qcowd has not seen close yet) is waited for a while. */
    uint64_t deadline = now_ns() + (uint64_t)OPEN_BUSY_WAIT_MS * 1000000u;
    while ((r = qcowring_connect(socket_path, name, &rc->ring)) == -EBUSY || r == -EAGAIN) {
        if (now_ns() > deadline)
            break;
        usleep(RETRY_FIRST_MS * 1000);
    }
    if (r < 0)
        return r;
    qcowring_get_geometry(rc->ring, &rc->geo);
    return 0;
}

int ring_conn_start(struct ring_conn *rc)
{
    int r = pthread_create(&rc->reaper, NULL, reaper_main, rc);

    if (r)
        return -r;
    rc->reaper_running = true;
    return 0;
}

void ring_conn_close(struct ring_conn *rc)
{
    pthread_mutex_lock(&rc->lock);
    rc->stopping = true;
    wake_reaper(rc);
    pthread_cond_broadcast(&rc->changed);
    pthread_mutex_unlock(&rc->lock);
    if (rc->reaper_running)
        pthread_join(rc->reaper, NULL);
    rc->reaper_running = false;
    if (rc->ring)
        qcowring_close(rc->ring);
    rc->ring = NULL;
    if (rc->wake_fd >= 0)
        close(rc->wake_fd);
    rc->wake_fd = -1;
}
