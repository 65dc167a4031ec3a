/* daemon/worker/aio.h's helper thread: a blocking call offloaded to it
 * completes through aio_reap(), in order, and aio_ctx_abandon() (the
 * worker's way out) leaves no helper behind, idle or busy: the helper works
 * on the aio_ctx, which the worker keeps in main's frame, and a helper left
 * sleeping there woke on garbage at exit. */
#include "config.h"

#include <poll.h>
#include <time.h>

#include "aio.h"
#include "unit.h"

/* The process's threads, as /proc/self/status counts them. */
static unsigned threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned n = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %u", &n) == 1)
            break;
    fclose(f);
    return n;
}

struct call {
    struct aio_op op;
    long value;
    unsigned sleep_ms;
    int *order, *ran;
};

static long blocking_call(struct aio_op *op)
{
    struct call *c = (struct call *)op;
    struct timespec ts = { c->sleep_ms / 1000, (long)(c->sleep_ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
    return c->value;
}

static void call_done(struct aio_op *op, long res)
{
    struct call *c = (struct call *)op;

    CHECK(res == c->value);
    c->order[(*c->ran)++] = (int)c->value;
}

static void offload(struct aio_ctx *a, struct call *c, long value, unsigned sleep_ms,
                    int *order, int *ran)
{
    *c = (struct call){ .value = value, .sleep_ms = sleep_ms, .order = order, .ran = ran };
    c->op.blocking = blocking_call;
    c->op.done = call_done;
    aio_offload(a, &c->op);
}

/* Reap until `want` callbacks ran, waiting on the eventfd (5 s at most). */
static void reap_until(struct aio_ctx *a, const int *ran, int want)
{
    struct pollfd p = { .fd = a->efd, .events = POLLIN };

    for (int rounds = 0; *ran < want && rounds < 500; rounds++) {
        poll(&p, 1, 10);
        aio_reap(a);
    }
}

static void completes_in_order_then_leaves(void)
{
    struct aio_ctx a;
    struct call c[3];
    int order[3] = { 0 }, ran = 0, before = (int)threads();

    CHECK(aio_ctx_init(&a, 1, 8) == 0);
    offload(&a, &c[0], 1, 20, order, &ran);
    offload(&a, &c[1], 2, 0, order, &ran);
    offload(&a, &c[2], 3, 5, order, &ran);
    reap_until(&a, &ran, 3);
    CHECK(ran == 3);
    CHECK(order[0] == 1 && order[1] == 2 && order[2] == 3);
    CHECK_U64(threads(), before + 1);   /* the helper, idle now */
    aio_ctx_abandon(&a);
    CHECK_U64(threads(), before);       /* gone with the context */
}

static void abandon_waits_for_a_running_call(void)
{
    struct aio_ctx a;
    struct call c;
    int order[1] = { 0 }, ran = 0, before = (int)threads();

    CHECK(aio_ctx_init(&a, 1, 8) == 0);
    offload(&a, &c, 7, 200, order, &ran);
    aio_ctx_abandon(&a);                /* while the call sleeps on the helper */
    CHECK_U64(threads(), before);
    CHECK(ran == 0);                    /* abandoned: its callback never runs */
}

int main(void)
{
    completes_in_order_then_leaves();
    abandon_waits_for_a_running_call();
    return unit_result("test-aio-helper");
}
