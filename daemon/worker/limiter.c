/* Held requests and the timer that releases them: see limiter.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "limiter.h"

/* What a request costs: none (a flush without data passes at once; a
 * barrier without data only keeps its place), or bytes read or written.
 * MAP reads metadata and DISCARD writes it: one operation, no bytes. */
enum cost_kind { COST_NONE_PASS, COST_NONE_ORDERED, COST_CHARGED };

static enum cost_kind cost_of(const struct ring_io *io, enum throttle_dir *dir, uint64_t *bytes)
{
    *bytes = io->length;
    switch (io->op) {
    case RING_IO_READ:
        *dir = THROTTLE_DIR_READ;
        return COST_CHARGED;
    case RING_IO_MAP:
        *dir = THROTTLE_DIR_READ;
        *bytes = 0;
        return COST_CHARGED;
    case RING_IO_DISCARD:
        *dir = THROTTLE_DIR_WRITE;
        *bytes = 0;
        return COST_CHARGED;
    case RING_IO_WRITE:
        *dir = THROTTLE_DIR_WRITE;
        return COST_CHARGED;
    case RING_IO_FLUSH:
    case RING_IO_BARRIER:
        *dir = THROTTLE_DIR_WRITE;
        if (io->length)
            return COST_CHARGED;
        return io->op == RING_IO_FLUSH ? COST_NONE_PASS : COST_NONE_ORDERED;
    }
    return COST_NONE_PASS;
}

/* Other members of the group wait, yet none of them has let a request
 * through for a quantum: they take nothing (paused, stopped, starved). */
static bool others_stalled(struct limiter *l, uint64_t now)
{
    uint64_t least, others;

    if (!throttle_others_least(l->state, (unsigned)l->slot, &least))
        return false;
    others = __atomic_load_n(&l->state->admitted, __ATOMIC_ACQUIRE) - l->admitted;
    if (others != l->others_admitted || !l->others_since) {
        l->others_admitted = others;
        l->others_since = now;
        return false;
    }
    return now - l->others_since > THROTTLE_FAIR_QUANTUM_NS;
}

/* 0: io may start now (charged); else the nanoseconds until it may. */
static uint64_t admit(struct limiter *l, const struct ring_io *io, uint64_t now)
{
    enum throttle_dir dir;
    uint64_t bytes;

    if (cost_of(io, &dir, &bytes) != COST_CHARGED)
        return 0;
    if (l->slot < 0)
        return throttle_admit(&l->bucket, l->state, dir, bytes, now);
    uint64_t wait = throttle_admit_member(&l->bucket, l->state, (unsigned)l->slot,
                                          others_stalled(l, now), dir, bytes, now);
    if (wait == 0)
        l->admitted++;
    return wait;
}

/* Our bit in the group's page: set while requests are held. */
static void set_waiting(struct limiter *l, bool waiting)
{
    if (l->slot >= 0 && l->waiting != waiting)
        throttle_member_wait(l->state, (unsigned)l->slot, waiting);
    l->waiting = waiting && l->slot >= 0;
}

/* ---- limits and the group's page ---------------------------------------- */

static void unmap_group(struct limiter *l)
{
    if (l->group_page)
        munmap(l->group_page, l->group_page_size);
    l->group_page = NULL;
    l->group_page_size = 0;
}

/* The page qcowd made for the group: big enough, and its magic. */
static int map_group(int fd, void **page, size_t *size, char *err, size_t errlen)
{
    struct stat st;
    void *p;

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct throttle_state)) {
        snprintf(err, errlen, "the limit group's memory is missing or too small");
        return -EINVAL;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        snprintf(err, errlen, "cannot map the limit group's memory: %s", strerror(e));
        return -e;
    }
    if (__atomic_load_n(&((struct throttle_state *)p)->magic, __ATOMIC_ACQUIRE) !=
        THROTTLE_STATE_MAGIC) {
        munmap(p, (size_t)st.st_size);
        snprintf(err, errlen, "the limit group's memory is not a qcowd limit group");
        return -EINVAL;
    }
    *page = p;
    *size = (size_t)st.st_size;
    return 0;
}

/* Switch to new limits: a group's page when they name one, else the
 * image's own buckets (carried over when they were in use already). */
static int apply(struct limiter *l, const struct io_limits *next, int group_fd, int group_slot,
                 uint64_t now, char *err, size_t errlen)
{
    void *page = NULL;
    size_t size = 0;
    int r;

    if (next->group[0] && (group_slot < 0 || group_slot >= THROTTLE_GROUP_MAX_MEMBERS)) {
        snprintf(err, errlen, "no member slot in the limit group");
        return -EINVAL;
    }
    if (next->group[0] && (r = map_group(group_fd, &page, &size, err, errlen)) < 0)
        return r;
    set_waiting(l, false);
    l->slot = -1;
    if (page) {
        unmap_group(l);
        l->group_page = page;
        l->group_page_size = size;
        l->state = page;
        l->slot = group_slot;
        l->admitted = 0;
        l->others_since = 0;
        /* A predecessor that died may have left our bit set. */
        throttle_member_wait(l->state, (unsigned)l->slot, false);
        set_waiting(l, l->count > 0);
    } else if (l->state == &l->local) {
        throttle_state_rescale(&l->local, &l->limits.cfg, &next->cfg, now);
    } else {
        unmap_group(l);
        throttle_state_init(&l->local);
        l->state = &l->local;
    }
    l->limits = *next;
    l->active = throttle_config_any(&next->cfg) || l->slot >= 0;
    throttle_init(&l->bucket, &next->cfg);
    l->timer_at = 0;            /* recomputed by the next release */
    return 0;
}

int limiter_set(struct limiter *l, json_object *limits, int group_fd, int group_slot,
                uint64_t now, char *err, size_t errlen)
{
    struct io_limits next = { 0 };
    int r;

    if ((r = io_limits_merge(&next, limits, err, errlen)) < 0)
        return r;
    return apply(l, &next, group_fd, group_slot, now, err, errlen);
}

int limiter_init(struct limiter *l, unsigned ring_size, const char *limits_json, int group_fd,
                 int group_slot, char *err, size_t errlen)
{
    struct io_limits next = { 0 };
    int r;

    memset(l, 0, sizeof *l);
    throttle_state_init(&l->local);
    l->state = &l->local;
    l->slot = -1;
    l->cap = ring_size;
    l->queue = calloc(ring_size, sizeof *l->queue);
    l->held_at = calloc(ring_size, sizeof *l->held_at);
    l->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!l->queue || !l->held_at || l->timer_fd < 0) {
        snprintf(err, errlen, "cannot set up I/O limits: %s", strerror(errno ? errno : ENOMEM));
        return -ENOMEM;
    }
    if (limits_json && (r = io_limits_parse(limits_json, &next, err, errlen)) < 0)
        return r;
    return apply(l, &next, group_fd, group_slot, 0, err, errlen);
}

void limiter_destroy(struct limiter *l)
{
    if (l->group_page)
        set_waiting(l, false);
    unmap_group(l);
    if (l->timer_fd >= 0)
        close(l->timer_fd);
    l->timer_fd = -1;
    free(l->queue);
    free(l->held_at);
    l->queue = NULL;
    l->held_at = NULL;
}

/* ---- holding and releasing ------------------------------------------------ */

int limiter_timer_fd(const struct limiter *l)
{
    return l->timer_fd;
}

void limiter_timer_expired(struct limiter *l)
{
    uint64_t expirations;

    if (read(l->timer_fd, &expirations, sizeof expirations) < 0) {
        /* EAGAIN: already read. */
    }
    l->timer_at = 0;
}

bool limiter_idle(const struct limiter *l)
{
    return l->count == 0;
}

static void push(struct limiter *l, struct ring_io *io, uint64_t now)
{
    unsigned tail = (l->head + l->count) % l->cap;

    /* The ring server hands out at most its ring size of requests. */
    if (l->count == 0) {
        l->held_since = now;
        set_waiting(l, true);
    }
    l->queue[tail] = io;
    l->held_at[tail] = now;
    l->count++;
}

static struct ring_io *pop(struct limiter *l, uint64_t now)
{
    struct ring_io *io = l->queue[l->head];

    l->delayed++;
    l->delay_ns += now - l->held_at[l->head];
    l->head = (l->head + 1) % l->cap;
    if (--l->count == 0) {
        l->throttled_ns += now - l->held_since;
        set_waiting(l, false);
    }
    return io;
}

bool limiter_hold(struct limiter *l, struct ring_io *io, uint64_t now)
{
    enum throttle_dir dir;
    uint64_t bytes;
    enum cost_kind kind;

    if (!l->active && l->count == 0)
        return false;
    kind = cost_of(io, &dir, &bytes);
    if (kind == COST_NONE_PASS)
        return false;
    if (l->count == 0 && (kind == COST_NONE_ORDERED || admit(l, io, now) == 0))
        return false;
    if (l->count == l->cap)
        return false;           /* cannot happen: see push() */
    push(l, io, now);
    return true;
}

static void set_timer(struct limiter *l, uint64_t at)
{
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)(at / 1000000000u),
                                            .tv_nsec = (long)(at % 1000000000u) } };

    if (l->timer_at == at)
        return;
    if (timerfd_settime(l->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        l->timer_at = at;
}

void limiter_release(struct limiter *l, uint64_t now, bool all,
                     void (*start)(void *opaque, struct ring_io *io), void *opaque)
{
    uint64_t wait = 0;

    while (l->count > 0 && (all || (wait = admit(l, l->queue[l->head], now)) == 0))
        start(opaque, pop(l, now));
    if (l->count > 0)
        set_timer(l, now + wait);
    else if (l->timer_at)
        set_timer(l, 0);        /* disarm */
}

json_object *limiter_stats_json(const struct limiter *l, uint64_t now)
{
    json_object *o = json_object_new_object();
    uint64_t throttled = l->throttled_ns + (l->count ? now - l->held_since : 0);

    json_object_object_add(o, "held", json_object_new_int64(l->count));
    json_object_object_add(o, "delayed", json_object_new_int64((int64_t)l->delayed));
    json_object_object_add(o, "delay-us", json_object_new_int64((int64_t)(l->delay_ns / 1000)));
    json_object_object_add(o, "throttled-us", json_object_new_int64((int64_t)(throttled / 1000)));
    json_object_object_add(o, "io-limits", io_limits_to_json(&l->limits));
    return o;
}
