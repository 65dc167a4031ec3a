/* Per-image I/O limits: token buckets kept as the generic cell rate
 * algorithm (GCRA).  A bucket is one 64-bit word, its "theoretical arrival
 * time" (TAT, nanoseconds on CLOCK_MONOTONIC): a request that costs c units
 * of a limit of r units per second moves the TAT on by c/r seconds, and a
 * request may start while TAT - now <= tau, the bucket's burst tolerance.
 * So a bucket is full when its TAT is in the past, and what it lets through
 * in any window of t seconds is at most r * t + r * tau + one request.
 *
 * A request that finds every bucket conforming starts at once, and is
 * charged its whole cost even if that takes a bucket past its tolerance
 * (the next request then waits for the debt): a request larger than the
 * bucket still runs, and a large request never waits longer than a small
 * one would at the same moment, so the worker can serve in order.
 *
 * One word per bucket makes a bucket shareable between processes with
 * atomic compare-and-swap (a limit group: struct throttle_state in shared
 * memory).  The members of a group take turns: each counts what it was
 * charged, and one that is more than a quantum ahead of another member
 * with requests waiting lets that one go first.  Everything here is a pure
 * function of its arguments and the state: the caller passes the clock. */
#ifndef QCOWD_THROTTLE_H
#define QCOWD_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

/* The limits, in the order of their names in io_limits.c. */
enum throttle_limit {
    THROTTLE_IOPS_TOTAL,
    THROTTLE_IOPS_READ,
    THROTTLE_IOPS_WRITE,
    THROTTLE_BPS_TOTAL,
    THROTTLE_BPS_READ,
    THROTTLE_BPS_WRITE,
    THROTTLE_LIMITS
};

enum throttle_dir { THROTTLE_DIR_READ, THROTTLE_DIR_WRITE };

/* Largest rate (units per second) and burst length (seconds) accepted. */
#define THROTTLE_MAX_RATE (UINT64_C(1) << 50)
#define THROTTLE_MAX_BURST_LENGTH 86400u
/* Members of a limit group, and how far (in time charged) one may get
 * ahead of another that waits. */
#define THROTTLE_GROUP_MAX_MEMBERS 64
#define THROTTLE_FAIR_QUANTUM_NS UINT64_C(100000000)
/* A member that lets others go first asks again after this at the least. */
#define THROTTLE_YIELD_MIN_NS UINT64_C(1000000)
/* Without a burst rate a bucket holds this much of its rate: small bursts
 * pass at once, and a worker woken late catches up. */
#define THROTTLE_DEFAULT_TOLERANCE_NS UINT64_C(100000000)
/* While bursting, the burst rate is kept over windows this long. */
#define THROTTLE_BURST_TOLERANCE_NS UINT64_C(100000000)

struct throttle_rate {
    uint64_t avg;           /* units per second; 0: no limit */
    uint64_t max;           /* burst rate (>= avg), 0: none */
    uint32_t max_length;    /* seconds a full bucket lasts at the burst rate
                             * (0 means 1) */
};

struct throttle_config {
    struct throttle_rate rate[THROTTLE_LIMITS];
    uint64_t iops_size;     /* bytes: a larger request counts as
                             * ceil(bytes / iops_size) operations; 0: one */
};

/* A bucket pair per limit: [0] the average rate with its burst, [1] the
 * burst rate (used only when max is set); and for a group, which members
 * have requests waiting and what each was charged (nanoseconds of the
 * buckets' time). */
#define THROTTLE_STATE_MAGIC UINT64_C(0x71636f7774687231)   /* "qcowthr1" */
struct throttle_state {
    uint64_t magic;
    uint64_t tat[THROTTLE_LIMITS][2];
    uint64_t waiting;                               /* bit per member */
    uint64_t admitted;                              /* requests, all members */
    uint64_t used_ns[THROTTLE_GROUP_MAX_MEMBERS];
};

/* What the buckets need, worked out once from a config. */
struct throttle {
    struct throttle_config cfg;
    uint64_t tau_ns[THROTTLE_LIMITS][2];
};

void throttle_init(struct throttle *t, const struct throttle_config *cfg);
void throttle_state_init(struct throttle_state *st);

/* True when the config limits anything. */
bool throttle_config_any(const struct throttle_config *cfg);
bool throttle_config_equal(const struct throttle_config *a, const struct throttle_config *b);

/* Units of limit `l` a request of `bytes` costs (0: the limit does not
 * apply to it). */
uint64_t throttle_units(const struct throttle_config *cfg, enum throttle_limit l,
                        enum throttle_dir dir, uint64_t bytes);

/* Nanoseconds to pass `units` at `rate` units per second, rounded up. */
uint64_t throttle_cost_ns(uint64_t units, uint64_t rate);

/* May a request start at `now`?  0: yes, and it has been charged to every
 * bucket it concerns.  Otherwise the nanoseconds to wait before asking
 * again (nothing is charged).  Shared state is read and updated
 * atomically; between processes a request can find the buckets conforming
 * just before another one is charged, which at most lets each process's
 * one request through early: its cost is still counted. */
uint64_t throttle_admit(const struct throttle *t, struct throttle_state *st,
                        enum throttle_dir dir, uint64_t bytes, uint64_t now);

/* The same for member `slot` of a group.  A member more than
 * THROTTLE_FAIR_QUANTUM_NS ahead of the least charged other member that
 * waits yields: the nanoseconds until it may ask again (its lead beyond the
 * quantum, THROTTLE_YIELD_MIN_NS at the least), nothing charged.  When the
 * caller has seen the others stalled (waiting, yet taking nothing: a paused
 * or stopped worker), they forfeit their turns instead: those behind are
 * brought up to a quantum behind it.  Admitted, the request's cost (the
 * largest of the buckets') is added to the member's share, and the request
 * to `admitted`. */
uint64_t throttle_admit_member(const struct throttle *t, struct throttle_state *st, unsigned slot,
                               bool others_stalled, enum throttle_dir dir, uint64_t bytes,
                               uint64_t now);

/* Member `slot` starts or stops waiting.  One that starts is brought up to
 * the least charged of the members already waiting: being idle earns no
 * credit. */
void throttle_member_wait(struct throttle_state *st, unsigned slot, bool waiting);

/* The least charged of the members other than `slot` that wait; false when
 * none does. */
bool throttle_others_least(const struct throttle_state *st, unsigned slot, uint64_t *least);

/* The limits change from `from` to `to`: keep what every bucket owes in
 * units, so a change neither forgives a debt nor doubles it.  A limit that
 * is new starts with a full bucket. */
void throttle_state_rescale(struct throttle_state *st, const struct throttle_config *from,
                            const struct throttle_config *to, uint64_t now);

#endif
