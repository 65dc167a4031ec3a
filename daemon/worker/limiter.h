/* The worker's side of I/O limits: a request the buckets (throttle.h) do
 * not let start yet is held here, with every request taken after it, in
 * the order the ring gave them, and a timerfd in the worker's epoll loop
 * says when the first may start.  Nothing spins, the ring's client only
 * sees a later answer, and a large request is never overtaken by small
 * ones.  A flush without data passes at once (it makes durable what has
 * completed, and held writes have not); a barrier without data costs
 * nothing but keeps its place.
 *
 * The buckets are the image's own, or, in a limit group, a page of
 * memory qcowd shares with every worker of the group, where each worker is
 * a member with a slot: members with requests waiting take turns
 * (throttle_admit_member), and one whose fellows wait without taking
 * anything for a quantum (paused, or stopped) stops waiting for them. */
#ifndef QCOWD_WORKER_LIMITER_H
#define QCOWD_WORKER_LIMITER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io_limits.h"
#include "ring_server.h"
#include "throttle.h"

struct limiter {
    struct io_limits limits;
    bool active;                    /* any limit, or a group: else nothing is held */
    struct throttle bucket;
    struct throttle_state local;    /* the image's own buckets */
    struct throttle_state *state;   /* &local, or the group's page */
    void *group_page;               /* mapped, or NULL */
    size_t group_page_size;
    int slot;                       /* our member slot in the group, or -1 */
    bool waiting;                   /* our bit is set in the group's page */
    uint64_t admitted;              /* requests we let through in the group */
    uint64_t others_admitted;       /* the other members', when last seen */
    uint64_t others_since;          /* when that last changed (0: not yet seen) */
    int timer_fd;
    uint64_t timer_at;              /* when the timer fires, 0: disarmed */
    struct ring_io **queue;         /* held requests, oldest at head */
    uint64_t *held_at;
    unsigned cap, head, count;
    uint64_t delayed;               /* requests that were held */
    uint64_t delay_ns;              /* the time they were held, summed */
    uint64_t throttled_ns;          /* time with at least one request held */
    uint64_t held_since;
};

/* Up to `ring_size` requests can be held.  limits_json: the limits as
 * io_limits_to_json() writes them (NULL: none); group_fd and group_slot:
 * the group's page and our slot in it when they name a group (-1
 * otherwise; the descriptor is not taken over).  0 or -errno with a reason
 * in err. */
int limiter_init(struct limiter *l, unsigned ring_size, const char *limits_json, int group_fd,
                 int group_slot, char *err, size_t errlen);
void limiter_destroy(struct limiter *l);

/* Watch this in the epoll loop; call limiter_timer_expired() when it fires. */
int limiter_timer_fd(const struct limiter *l);
void limiter_timer_expired(struct limiter *l);

/* A request taken from the ring: false when it may start now (the caller
 * starts it), true when it is held (limiter_release() starts it later). */
bool limiter_hold(struct limiter *l, struct ring_io *io, uint64_t now);

/* Start, through start(), the held requests whose turn has come (every one
 * with `all`: the worker is stopping), and set the timer for the next. */
void limiter_release(struct limiter *l, uint64_t now, bool all,
                     void (*start)(void *opaque, struct ring_io *io), void *opaque);

bool limiter_idle(const struct limiter *l);

/* New limits (a whole set, as in limiter_init), effective at once: what the
 * image's own buckets owe is carried over; a group's page is qcowd's to
 * carry over.  0 or -errno with a reason in err (the old limits stay). */
int limiter_set(struct limiter *l, json_object *limits, int group_fd, int group_slot,
                uint64_t now, char *err, size_t errlen);

/* {"held", "delayed", "delay-us", "throttled-us", "io-limits"} */
json_object *limiter_stats_json(const struct limiter *l, uint64_t now);

#endif
