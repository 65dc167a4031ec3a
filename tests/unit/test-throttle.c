/* The I/O limit buckets (daemon/common/throttle.c) and the limits' names
 * (io_limits.c), with a simulated clock: exact counts, the window bound,
 * large requests, bursts, iops-size, reads and writes, rate changes, a
 * bucket shared by two workers, and what the protocol refuses. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "io_limits.h"
#include "throttle.h"
#include "unit.h"
#include "../lib/xorshift.h"

#define MS UINT64_C(1000000)
#define S UINT64_C(1000000000)

static struct throttle_config iops(enum throttle_limit l, uint64_t avg)
{
    struct throttle_config c = { 0 };

    c.rate[l].avg = avg;
    return c;
}

/* Far more than any test lets through: a bucket that lets everything
 * through ends the loops. */
#define RUNAWAY 10000000

/* A client that always has one more request of `bytes`: take what the
 * buckets allow, sleep exactly as long as they say, until `until`. */
static uint64_t greedy(const struct throttle *t, struct throttle_state *st, enum throttle_dir dir,
                       uint64_t bytes, uint64_t from, uint64_t until)
{
    uint64_t now = from, n = 0, w;

    while (now <= until && n < RUNAWAY) {
        if ((w = throttle_admit(t, st, dir, bytes, now)) == 0)
            n++;
        else
            now += w;
    }
    return n;
}

/* 1000 IOPS for 10 s: the 0.1 s bucket at once (101, the last one
 * overdrawing), then exactly one per millisecond. */
static void test_exact_rate(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 1000);
    struct throttle t;
    struct throttle_state st;

    throttle_init(&t, &c);
    throttle_state_init(&st);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, 0), 101);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 1, 10 * S), 10000);
    /* Writes count the same toward a total. */
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_WRITE, 512, 10 * S + 1, 11 * S), 1000);
}

/* Random sizes at random moments under a byte limit: in every window the
 * bytes let through stay within rate * window + the bucket + one request. */
static void test_window_bound(void)
{
    enum { N = 3000 };
    struct throttle_config c = iops(THROTTLE_BPS_TOTAL, 10u << 20);
    struct throttle t;
    struct throttle_state st;
    static uint64_t at[N], size[N];
    uint64_t rng = 42, now = 0, max_size = 0;
    unsigned n = 0, violations = 0;

    throttle_init(&t, &c);
    throttle_state_init(&st);
    while (n < N) {
        uint64_t bytes = (xorshift64(&rng) % 256 + 1) * 4096, w;
        while ((w = throttle_admit(&t, &st, THROTTLE_DIR_WRITE, bytes, now)) != 0)
            now += w;
        at[n] = now;
        size[n++] = bytes;
        max_size = bytes > max_size ? bytes : max_size;
        /* Mostly busy, sometimes idle for a while. */
        now += xorshift64(&rng) % 50 ? xorshift64(&rng) % (20 * MS) : xorshift64(&rng) % (3 * S);
    }
    for (unsigned i = 0; i < N; i++) {
        uint64_t sum = 0;
        for (unsigned j = i; j < N; j++) {
            sum += size[j];
            /* bytes in [at[i], at[j]] */
            double bound = (double)(10u << 20) * ((double)(at[j] - at[i]) / S + 0.1) +
                           (double)max_size + 1;
            violations += (double)sum > bound;
        }
    }
    CHECK_U64(violations, 0);
}

/* An idle bucket fills up to its size and no further. */
static void test_idle(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 1000);
    struct throttle t;
    struct throttle_state st;

    throttle_init(&t, &c);
    throttle_state_init(&st);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 5 * S, 5 * S), 101);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 100 * S, 100 * S), 101);
    /* Half a bucket after 50 ms. */
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 100 * S + 50 * MS, 100 * S + 50 * MS), 50);
}

/* A request larger than the bucket still runs (when the bucket is not in
 * debt) and the next one pays for it; large and small requests wait the
 * same at the same moment, so serving in order starves neither. */
static void test_large_requests(void)
{
    struct throttle_config c = iops(THROTTLE_BPS_TOTAL, 1000000);
    struct throttle t;
    struct throttle_state st;
    uint64_t small, large;

    throttle_init(&t, &c);
    throttle_state_init(&st);
    CHECK_U64(throttle_admit(&t, &st, THROTTLE_DIR_READ, 4u << 20, 0), 0);
    /* 4 MiB at 1 MB/s: 4.194304 s owed, 0.1 s of it tolerated. */
    small = throttle_admit(&t, &st, THROTTLE_DIR_READ, 512, 0);
    large = throttle_admit(&t, &st, THROTTLE_DIR_READ, 8u << 20, 0);
    CHECK_U64(small, 4194304 * UINT64_C(1000) - 100 * MS);
    CHECK_U64(large, small);
    CHECK_U64(throttle_admit(&t, &st, THROTTLE_DIR_READ, 8u << 20, small), 0);
}

/* 100 IOPS with bursts of 1000 IOPS for 2 s: the burst rate first (its
 * own 0.1 s bucket at once), then the average; over 10 s the total is
 * what the average bucket holds plus 10 s of its rate. */
static void test_burst(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 100);
    struct throttle t;
    struct throttle_state st;

    c.rate[THROTTLE_IOPS_TOTAL].max = 1000;
    c.rate[THROTTLE_IOPS_TOTAL].max_length = 2;
    throttle_init(&t, &c);
    /* (1000 - 100) * 2 s of operations, at 100 per second: 18 s. */
    CHECK_U64(t.tau_ns[THROTTLE_IOPS_TOTAL][0], 18 * S);
    throttle_state_init(&st);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, S), 101 + 1000);
    throttle_state_init(&st);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, 10 * S), 2801);
    /* Afterwards, the average. */
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 10 * S + 1, 20 * S), 1000);
}

static void test_iops_size(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 100);
    struct throttle t;
    struct throttle_state st;

    c.iops_size = 4096;
    CHECK_U64(throttle_units(&c, THROTTLE_IOPS_TOTAL, THROTTLE_DIR_READ, 4096), 1);
    CHECK_U64(throttle_units(&c, THROTTLE_IOPS_TOTAL, THROTTLE_DIR_READ, 4097), 2);
    CHECK_U64(throttle_units(&c, THROTTLE_IOPS_TOTAL, THROTTLE_DIR_READ, 0), 1);
    throttle_init(&t, &c);
    throttle_state_init(&st);
    /* A fresh bucket: floor((10 s + 0.1 s) / 40 ms) + 1 of 4 operations. */
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 16384, 0, 10 * S), 253);
}

/* Separate limits for reads and writes, and a total on top. */
static void test_directions(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_READ, 100);
    struct throttle t;
    struct throttle_state st;

    throttle_init(&t, &c);
    throttle_state_init(&st);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, S), 111);
    for (unsigned i = 0; i < 10000; i++)
        CHECK_U64(throttle_admit(&t, &st, THROTTLE_DIR_WRITE, 4096, S), 0);
    c.rate[THROTTLE_IOPS_TOTAL].avg = 50;
    throttle_init(&t, &c);
    throttle_state_init(&st);
    /* Reads pay 20 ms each to the total: floor(10.1 s / 20 ms) + 1. */
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, 10 * S), 506);
    /* Writes, which the read limit does not concern, only the total. */
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_WRITE, 4096, 10 * S + 1, 20 * S), 500);
    CHECK_U64(throttle_units(&c, THROTTLE_IOPS_WRITE, THROTTLE_DIR_WRITE, 4096), 0);
    CHECK_U64(throttle_units(&c, THROTTLE_IOPS_READ, THROTTLE_DIR_WRITE, 4096), 0);
}

/* A change of rate keeps what is owed, in operations. */
static void test_rescale(void)
{
    struct throttle_config slow = iops(THROTTLE_IOPS_TOTAL, 100), fast = slow, none = { 0 };
    struct throttle t;
    struct throttle_state st;

    fast.rate[THROTTLE_IOPS_TOTAL].avg = 1000;
    throttle_init(&t, &slow);
    throttle_state_init(&st);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, 0), 11);
    /* 11 operations owed: 110 ms at 100/s, 11 ms at 1000/s. */
    throttle_state_rescale(&st, &slow, &fast, 0);
    CHECK_U64(st.tat[THROTTLE_IOPS_TOTAL][0], 11 * MS);
    throttle_init(&t, &fast);
    CHECK_U64(greedy(&t, &st, THROTTLE_DIR_READ, 4096, 0, 0), 90);
    throttle_state_rescale(&st, &fast, &slow, 0);
    CHECK_U64(st.tat[THROTTLE_IOPS_TOTAL][0], 1010 * MS);
    /* Removed, then set again: a full bucket. */
    throttle_state_rescale(&st, &slow, &none, 0);
    throttle_state_rescale(&st, &none, &slow, 0);
    CHECK_U64(st.tat[THROTTLE_IOPS_TOTAL][0], 0);
    /* A full bucket stays full. */
    throttle_state_init(&st);
    st.tat[THROTTLE_IOPS_TOTAL][0] = 5 * S;
    throttle_state_rescale(&st, &slow, &fast, 6 * S);
    CHECK_U64(st.tat[THROTTLE_IOPS_TOTAL][0], 5 * S);
}

/* Two workers of a group charge one state: together they get what one
 * would. */
static void test_shared(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 1000);
    struct throttle a, b;
    struct throttle_state st;
    uint64_t now = 0, n[2] = { 0, 0 }, w;
    unsigned turn = 0;

    throttle_init(&a, &c);
    throttle_init(&b, &c);
    throttle_state_init(&st);
    while (now <= 10 * S && n[0] + n[1] < RUNAWAY) {
        if ((w = throttle_admit(turn ? &b : &a, &st, THROTTLE_DIR_READ, 4096, now)) == 0)
            n[turn] ++, turn ^= 1;
        else
            now += w;
    }
    uint64_t na = n[0], nb = n[1];
    CHECK_U64(na + nb, 10101);
    CHECK(na > 4000 && nb > 4000);
}

/* Two members of a group, both always with a request waiting, asking in
 * the same order whenever they are due at the same moment (the one that
 * always wins such ties is what an unfair scheduler would favour).
 * fair: through throttle_admit_member; else throttle_admit. */
static void run_members(const struct throttle *t, struct throttle_state *st, bool fair,
                        bool stalled, uint64_t until, uint64_t n[2], bool active1)
{
    uint64_t next[2] = { 0, 0 }, w;

    n[0] = n[1] = 0;
    while (n[0] + n[1] < RUNAWAY) {
        unsigned m = active1 && next[1] < next[0] ? 1 : 0;
        uint64_t now = next[m];
        if (now > until)
            break;
        w = fair ? throttle_admit_member(t, st, m, stalled, THROTTLE_DIR_READ, 4096, now)
                 : throttle_admit(t, st, THROTTLE_DIR_READ, 4096, now);
        if (w == 0)
            n[m]++;
        else
            next[m] = now + w;
    }
}

static void test_members(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 1000);
    struct throttle t;
    struct throttle_state st;
    uint64_t n[2];

    throttle_init(&t, &c);
    /* Without turns, the member that wins ties takes everything. */
    throttle_state_init(&st);
    run_members(&t, &st, false, false, 10 * S, n, true);
    CHECK_U64(n[0] + n[1], 10101);
    CHECK(n[1] < 200);
    /* With turns: the same total, shared within a quantum (100 ops). */
    throttle_state_init(&st);
    throttle_member_wait(&st, 0, true);
    throttle_member_wait(&st, 1, true);
    run_members(&t, &st, true, false, 10 * S, n, true);
    CHECK_U64(n[0] + n[1], 10101);
    CHECK(n[0] >= 4950 && n[1] >= 4950);
    CHECK(st.used_ns[0] + st.used_ns[1] == 10101 * MS);
}

/* A member that waits without taking (a paused worker) holds the others
 * back for a quantum; once they see it stalled, it forfeits its turns. */
static void test_stalled_member(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 1000);
    struct throttle t;
    struct throttle_state st;
    uint64_t n[2];

    throttle_init(&t, &c);
    throttle_state_init(&st);
    throttle_member_wait(&st, 0, true);
    throttle_member_wait(&st, 1, true);
    run_members(&t, &st, true, false, 10 * S, n, false);
    CHECK_U64(n[1], 0);
    CHECK_U64(n[0], 101);           /* its lead reached the quantum at once */
    CHECK_U64(throttle_admit_member(&t, &st, 0, false, THROTTLE_DIR_READ, 4096, 10 * S),
              THROTTLE_YIELD_MIN_NS);
    run_members(&t, &st, true, true, 20 * S, n, false);
    CHECK(n[0] >= 10000);
    CHECK(st.used_ns[1] + THROTTLE_FAIR_QUANTUM_NS >= st.used_ns[0] - MS);
}

/* A member that was idle gets no credit for it when it starts waiting. */
static void test_idle_member(void)
{
    struct throttle_config c = iops(THROTTLE_IOPS_TOTAL, 1000);
    struct throttle t;
    struct throttle_state st;
    uint64_t n[2];

    throttle_init(&t, &c);
    throttle_state_init(&st);
    throttle_member_wait(&st, 0, true);
    run_members(&t, &st, true, false, 10 * S, n, false);
    CHECK_U64(n[0], 10101);
    throttle_member_wait(&st, 1, true);
    CHECK_U64(st.used_ns[1], st.used_ns[0]);
    run_members(&t, &st, true, false, 20 * S, n, true);
    CHECK(n[0] >= 4900 && n[1] >= 4900);
    throttle_member_wait(&st, 1, false);
    CHECK_U64(st.waiting, 1);
}

static void test_costs(void)
{
    CHECK_U64(throttle_cost_ns(1, 3), 333333334);
    CHECK_U64(throttle_cost_ns(3, 3), S);
    CHECK_U64(throttle_cost_ns(4096, 1000000), 4096000);
    CHECK(throttle_cost_ns(UINT64_C(1) << 62, 1) >= UINT64_C(1) << 60);    /* saturates */
    struct throttle_config c = iops(THROTTLE_BPS_TOTAL, THROTTLE_MAX_RATE);
    struct throttle t;
    c.rate[THROTTLE_BPS_TOTAL].avg = 1;
    c.rate[THROTTLE_BPS_TOTAL].max = THROTTLE_MAX_RATE;
    c.rate[THROTTLE_BPS_TOTAL].max_length = THROTTLE_MAX_BURST_LENGTH;
    throttle_init(&t, &c);
    CHECK(t.tau_ns[THROTTLE_BPS_TOTAL][0] >= UINT64_C(1) << 60);
}

/* ---- names and JSON -------------------------------------------------------- */

static int merge_text(struct io_limits *l, const char *text, char *err, size_t len)
{
    json_object *o = json_tokener_parse(text);
    int r;

    REQUIRE(o);
    r = io_limits_merge(l, o, err, len);
    json_object_put(o);
    return r;
}

static bool same(const struct io_limits *a, const struct io_limits *b)
{
    return throttle_config_equal(&a->cfg, &b->cfg) && strcmp(a->group, b->group) == 0;
}

static const char *to_text(const struct io_limits *l)
{
    static char buf[512];
    json_object *o = io_limits_to_json(l);

    snprintf(buf, sizeof buf, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return buf;
}

static void test_json(void)
{
    struct io_limits l = { 0 }, back;
    char err[160];

    CHECK(merge_text(&l, "{\"iops-total\": 1000, \"bps-write\": 4194304, \"group\": \"db\"}", err,
                     sizeof err) == 0);
    CHECK_U64(l.cfg.rate[THROTTLE_IOPS_TOTAL].avg, 1000);
    CHECK_U64(l.cfg.rate[THROTTLE_BPS_WRITE].avg, 4194304);
    CHECK(strcmp(l.group, "db") == 0);
    CHECK(merge_text(&l, "{\"iops-total-max\": 5000, \"iops-total-max-length\": 30}", err,
                     sizeof err) == 0);
    CHECK(strcmp(to_text(&l), "{\"iops-total\":1000,\"iops-total-max\":5000,"
                              "\"iops-total-max-length\":30,\"bps-write\":4194304,"
                              "\"group\":\"db\"}") == 0);
    CHECK(io_limits_parse(to_text(&l), &back, err, sizeof err) == 0);
    CHECK(same(&back, &l));
    /* 0 removes a limit with its burst; "" leaves the group. */
    CHECK(merge_text(&l, "{\"iops-total\": 0, \"group\": \"\"}", err, sizeof err) == 0);
    CHECK(strcmp(to_text(&l), "{\"bps-write\":4194304}") == 0);
    /* A burst's length defaults to 1 s. */
    CHECK(merge_text(&l, "{\"bps-read\": 100, \"bps-read-max\": 200}", err, sizeof err) == 0);
    CHECK(strstr(to_text(&l), "\"bps-read-max-length\":1") != NULL);
}

static void refused(const char *text, const char *why)
{
    struct io_limits l = { 0 }, before;
    char err[160] = "";

    CHECK(merge_text(&l, "{\"iops-read\": 10}", err, sizeof err) == 0);
    before = l;
    unit_checks++;
    if (merge_text(&l, text, err, sizeof err) != -EINVAL || !strstr(err, why)) {
        fprintf(stderr, "%s: not refused with '%s' (said '%s')\n", text, why, err);
        unit_failures++;
    }
    CHECK(same(&l, &before));
}

static void test_refused(void)
{
    refused("{\"iops\": 5}", "unknown limit 'iops'");
    refused("{\"iops-total-maximum\": 5}", "unknown limit");
    refused("{\"iops-total\": -1}", "'iops-total' must be an integer from 0 to");
    refused("{\"iops-total\": \"5\"}", "must be an integer");
    refused("{\"iops-total\": 1.5}", "must be an integer");
    refused("{\"bps-total\": 1125899906842625}", "must be an integer from 0 to 1125899906842624");
    refused("{\"iops-write-max\": 50}", "'iops-write-max' needs 'iops-write'");
    refused("{\"iops-read-max\": 5}", "'iops-read-max' (5) is below 'iops-read' (10)");
    refused("{\"iops-read-max-length\": 5}", "'iops-read-max-length' needs 'iops-read-max'");
    refused("{\"iops-read-max\": 50, \"iops-read-max-length\": 86401}", "from 0 to 86400");
    refused("{\"group\": \"a/b\"}", "'group' must be");
    refused("{\"group\": 7}", "'group' must be");
    refused("{\"iops-size\": 2147483648}", "'iops-size'");
    refused("[1]", "must be an object");
}

int main(void)
{
    test_exact_rate();
    test_window_bound();
    test_idle();
    test_large_requests();
    test_burst();
    test_iops_size();
    test_directions();
    test_rescale();
    test_shared();
    test_members();
    test_stalled_member();
    test_idle_member();
    test_costs();
    test_json();
    test_refused();
    return unit_result("test-throttle");
}
