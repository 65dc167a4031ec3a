/* Token buckets as GCRA: see throttle.h. */
#include "config.h"

#include <string.h>

#include "throttle.h"

#define NS_PER_S UINT64_C(1000000000)
/* Times saturate here: centuries ahead, and far from wrapping. */
#define NS_CAP (UINT64_MAX / 4)

/* a * b / c rounded up (c > 0), saturating at NS_CAP. */
static uint64_t mul_div_up(uint64_t a, uint64_t b, uint64_t c)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 q = ((unsigned __int128)a * b + c - 1) / c;

    return q > NS_CAP ? NS_CAP : (uint64_t)q;
#else
    long double q = (long double)a * (long double)b / (long double)c;
    uint64_t n;

    if (q >= (long double)NS_CAP)
        return NS_CAP;
    n = (uint64_t)q;
    return (long double)n < q ? n + 1 : n;
#endif
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > NS_CAP - (b > NS_CAP ? NS_CAP : b) ? NS_CAP : a + b;
}

uint64_t throttle_cost_ns(uint64_t units, uint64_t rate)
{
    return rate ? mul_div_up(units, NS_PER_S, rate) : 0;
}

static uint32_t burst_length(const struct throttle_rate *r)
{
    return r->max_length ? r->max_length : 1;
}

/* The rate of bucket b (0: average, 1: burst) of a limit; 0 when unused. */
static uint64_t bucket_rate(const struct throttle_rate *r, unsigned b)
{
    if (b == 0)
        return r->avg;
    return r->avg && r->max ? r->max : 0;
}

/* The average bucket holds what a burst at max spends in max_length seconds
 * (it refills at avg meanwhile), and never less than 0.1 s of its rate. */
static uint64_t average_tolerance_ns(const struct throttle_rate *r)
{
    uint64_t tau = 0;

    if (r->max > r->avg)
        tau = mul_div_up(r->max - r->avg, burst_length(r) * NS_PER_S, r->avg);
    return tau > THROTTLE_DEFAULT_TOLERANCE_NS ? tau : THROTTLE_DEFAULT_TOLERANCE_NS;
}

void throttle_init(struct throttle *t, const struct throttle_config *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    for (unsigned l = 0; l < THROTTLE_LIMITS; l++) {
        const struct throttle_rate *r = &cfg->rate[l];
        if (!r->avg)
            continue;
        t->tau_ns[l][0] = average_tolerance_ns(r);
        t->tau_ns[l][1] = THROTTLE_BURST_TOLERANCE_NS;
    }
}

void throttle_state_init(struct throttle_state *st)
{
    memset(st, 0, sizeof *st);
    st->magic = THROTTLE_STATE_MAGIC;
}

bool throttle_config_any(const struct throttle_config *cfg)
{
    for (unsigned l = 0; l < THROTTLE_LIMITS; l++)
        if (cfg->rate[l].avg)
            return true;
    return false;
}

bool throttle_config_equal(const struct throttle_config *a, const struct throttle_config *b)
{
    for (unsigned l = 0; l < THROTTLE_LIMITS; l++) {
        const struct throttle_rate *x = &a->rate[l], *y = &b->rate[l];
        if (x->avg != y->avg || x->max != y->max ||
            (x->max && burst_length(x) != burst_length(y)))
            return false;
    }
    return a->iops_size == b->iops_size;
}

static bool is_bps(enum throttle_limit l)
{
    return l >= THROTTLE_BPS_TOTAL;
}

static bool applies(enum throttle_limit l, enum throttle_dir dir)
{
    switch (l) {
    case THROTTLE_IOPS_READ:
    case THROTTLE_BPS_READ:
        return dir == THROTTLE_DIR_READ;
    case THROTTLE_IOPS_WRITE:
    case THROTTLE_BPS_WRITE:
        return dir == THROTTLE_DIR_WRITE;
    default:
        return true;
    }
}

uint64_t throttle_units(const struct throttle_config *cfg, enum throttle_limit l,
                        enum throttle_dir dir, uint64_t bytes)
{
    if (!cfg->rate[l].avg || !applies(l, dir))
        return 0;
    if (is_bps(l))
        return bytes;
    if (cfg->iops_size && bytes > cfg->iops_size)
        return bytes / cfg->iops_size + (bytes % cfg->iops_size != 0);
    return 1;
}

static uint64_t load_tat(const struct throttle_state *st, unsigned l, unsigned b)
{
    return __atomic_load_n(&st->tat[l][b], __ATOMIC_ACQUIRE);
}

/* TAT = max(TAT, now) + cost, atomically. */
static void charge(struct throttle_state *st, unsigned l, unsigned b, uint64_t now, uint64_t cost)
{
    uint64_t old = load_tat(st, l, b), new;

    do
        new = sat_add(old > now ? old : now, cost);
    while (!__atomic_compare_exchange_n(&st->tat[l][b], &old, new, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE));
}

/* How long until bucket (l, b) conforms at now; 0 when it does. */
static uint64_t bucket_wait(const struct throttle *t, const struct throttle_state *st, unsigned l,
                            unsigned b, uint64_t now)
{
    uint64_t allowed = sat_add(now, t->tau_ns[l][b]), tat = load_tat(st, l, b);

    return tat > allowed ? tat - allowed : 0;
}

/* throttle_admit(), and the largest cost charged into *cost. */
static uint64_t admit(const struct throttle *t, struct throttle_state *st, enum throttle_dir dir,
                      uint64_t bytes, uint64_t now, uint64_t *cost)
{
    uint64_t units[THROTTLE_LIMITS], wait = 0;

    *cost = 0;
    for (unsigned l = 0; l < THROTTLE_LIMITS; l++) {
        units[l] = throttle_units(&t->cfg, l, dir, bytes);
        for (unsigned b = 0; b < 2 && units[l]; b++) {
            uint64_t w = bucket_rate(&t->cfg.rate[l], b) ? bucket_wait(t, st, l, b, now) : 0;
            wait = w > wait ? w : wait;
        }
    }
    if (wait)
        return wait;
    for (unsigned l = 0; l < THROTTLE_LIMITS; l++)
        for (unsigned b = 0; b < 2 && units[l]; b++) {
            uint64_t rate = bucket_rate(&t->cfg.rate[l], b), c;
            if (!rate)
                continue;
            c = throttle_cost_ns(units[l], rate);
            charge(st, l, b, now, c);
            *cost = c > *cost ? c : *cost;
        }
    return 0;
}

uint64_t throttle_admit(const struct throttle *t, struct throttle_state *st,
                        enum throttle_dir dir, uint64_t bytes, uint64_t now)
{
    uint64_t cost;

    return admit(t, st, dir, bytes, now, &cost);
}

/* ---- members of a group --------------------------------------------------- */

static uint64_t used(const struct throttle_state *st, unsigned slot)
{
    return __atomic_load_n(&st->used_ns[slot], __ATOMIC_ACQUIRE);
}

bool throttle_others_least(const struct throttle_state *st, unsigned slot, uint64_t *least)
{
    uint64_t others = __atomic_load_n(&st->waiting, __ATOMIC_ACQUIRE) & ~(UINT64_C(1) << slot);
    bool any = false;

    for (unsigned i = 0; others; i++, others >>= 1) {
        if (!(others & 1))
            continue;
        uint64_t u = used(st, i);
        *least = !any || u < *least ? u : *least;
        any = true;
    }
    return any;
}

void throttle_member_wait(struct throttle_state *st, unsigned slot, bool waiting)
{
    uint64_t bit = UINT64_C(1) << slot, least, old;

    if (!waiting) {
        __atomic_fetch_and(&st->waiting, ~bit, __ATOMIC_ACQ_REL);
        return;
    }
    old = used(st, slot);
    if (throttle_others_least(st, slot, &least))
        while (old < least && !__atomic_compare_exchange_n(&st->used_ns[slot], &old, least, false,
                                                           __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            ;
    __atomic_fetch_or(&st->waiting, bit, __ATOMIC_ACQ_REL);
}

/* The waiting members other than `slot` that are behind `floor` are
 * brought up to it. */
static void forfeit(struct throttle_state *st, unsigned slot, uint64_t floor)
{
    uint64_t others = __atomic_load_n(&st->waiting, __ATOMIC_ACQUIRE) & ~(UINT64_C(1) << slot);

    for (unsigned i = 0; others; i++, others >>= 1) {
        uint64_t old = used(st, i);
        while ((others & 1) && old < floor &&
               !__atomic_compare_exchange_n(&st->used_ns[i], &old, floor, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
            ;
    }
}

uint64_t throttle_admit_member(const struct throttle *t, struct throttle_state *st, unsigned slot,
                               bool others_stalled, enum throttle_dir dir, uint64_t bytes,
                               uint64_t now)
{
    uint64_t least, mine = used(st, slot), cost, wait;

    if (others_stalled && mine > THROTTLE_FAIR_QUANTUM_NS)
        forfeit(st, slot, mine - THROTTLE_FAIR_QUANTUM_NS);
    if (throttle_others_least(st, slot, &least) && mine > sat_add(least, THROTTLE_FAIR_QUANTUM_NS)) {
        wait = mine - least - THROTTLE_FAIR_QUANTUM_NS;
        return wait > THROTTLE_YIELD_MIN_NS ? wait : THROTTLE_YIELD_MIN_NS;
    }
    if ((wait = admit(t, st, dir, bytes, now, &cost)) == 0) {
        __atomic_fetch_add(&st->used_ns[slot], cost, __ATOMIC_ACQ_REL);
        __atomic_fetch_add(&st->admitted, 1, __ATOMIC_ACQ_REL);
    }
    return wait;
}

/* A debt of d ns at rate r0 is d * r0 / r1 ns at r1. */
static void rescale_bucket(struct throttle_state *st, unsigned l, unsigned b, uint64_t r0,
                           uint64_t r1, uint64_t now)
{
    uint64_t old = load_tat(st, l, b), new;

    do {
        if (!r0 || !r1)
            new = 0;                    /* no limit, or a new one: full */
        else if (old <= now)
            return;                     /* full: nothing owed */
        else
            new = sat_add(now, mul_div_up(old - now, r0, r1));
    } while (!__atomic_compare_exchange_n(&st->tat[l][b], &old, new, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
}

void throttle_state_rescale(struct throttle_state *st, const struct throttle_config *from,
                            const struct throttle_config *to, uint64_t now)
{
    for (unsigned l = 0; l < THROTTLE_LIMITS; l++)
        for (unsigned b = 0; b < 2; b++) {
            uint64_t r0 = bucket_rate(&from->rate[l], b), r1 = bucket_rate(&to->rate[l], b);
            if (r0 != r1)
                rescale_bucket(st, l, b, r0, r1, now);
        }
}
