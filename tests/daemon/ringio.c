/* I/O through an image attached to a running qcowd, with libqcowring's
 * qcowring_connect(): what a real client does.
 *
 *   ringio SOCKET NAME write OFFSET LENGTH < data
 *   ringio SOCKET NAME read OFFSET LENGTH > data
 *   ringio SOCKET NAME flush
 *   ringio SOCKET NAME discard OFFSET LENGTH
 *   ringio SOCKET NAME geometry      (capacity, features, discard unit)
 *   ringio SOCKET NAME random SHADOW_OUT [-n OPS] [-q QD] [-s SEED] [-m MAXLEN]
 *                             [-K KILL_AT] [-w WORKER_PID] [-G BYTES -M MARK]
 *                             [-M MARK -S STOP]
 *   ringio SOCKET NAME load [-q QD] [-t SECONDS] [-b BYTES] [-W]
 *   ringio SOCKET NAME order OP...
 *   ringio SOCKET NAME attach PATH [ro|FORMAT...]  (qcowring_attach)
 *   ringio SOCKET NAME detach                     (qcowring_detach)
 *
 * random: seeded random writes and reads at queue depth QD, reads checked
 * against an in-memory shadow; with -K, the worker (pid from -w) is killed
 * with SIGKILL after KILL_AT requests: every request must still complete
 * without error.  At the end a flush, then the shadow goes to SHADOW_OUT.
 * With -G (online resize): after the first half of the requests, create
 * the file MARK and go on with requests over the old size until the
 * capacity reaches BYTES (qcowring_refresh_capacity, at most a minute),
 * then the second half over the whole new size; SHADOW_OUT has the new
 * size (what the disk gained reads as zeros).  With -S instead (live
 * snapshots): after the first half, create MARK and go on until the file
 * STOP exists (at most 5 minutes), then the second half.
 *
 * load: keep QD random reads (writes with -W) of BYTES in flight for
 * SECONDS, then print what this client achieved, measured by itself:
 * "ops N seconds S iops X from T0 to T1" (S from the first submission, at
 * T0 on CLOCK_MONOTONIC, to the last completion, at T1).  Any failed
 * request fails the run.
 *
 * order: submit the OPs all at once, in order, then print the indexes of
 * the OPs in the order they completed ("order: 0 2 1", each index printed
 * as it completes).  An OP is r:LEN (read at offset 0), w:LEN (write at
 * offset 0), f (a flush without data), b (a barrier without data), d:LEN
 * (discard); r, w and d take @OFFSET after the length, and r takes =XX
 * after that: every byte read must be XX (hex).  Any failure fails the run.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qcowring-client.h"
#include "../lib/xorshift.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;
static unsigned failures;

static uint64_t rnd(void)
{
    return xorshift64(&rng);
}

static int die(const char *what, int err)
{
    fprintf(stderr, "ringio: %s: %s\n", what, strerror(-err));
    return 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;

    errno = 0;
    *v = strtoull(s, &end, 0);
    return errno || end == s || *end ? -EINVAL : 0;
}

static int cmd_write(struct qcowring *ring, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    int r;

    if (!buf || fread(buf, 1, len, stdin) != len)
        return die("stdin", -EIO);
    r = qcowring_pwrite(ring, buf, len, off);
    free(buf);
    return r < 0 ? die("write", r) : 0;
}

static int cmd_read(struct qcowring *ring, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    int r = buf ? qcowring_pread(ring, buf, len, off) : -ENOMEM;

    if (r < 0)
        return die("read", r);
    if (fwrite(buf, 1, len, stdout) != len)
        return die("stdout", -EIO);
    free(buf);
    return 0;
}

static int cmd_discard(struct qcowring *ring, uint64_t off, uint64_t len)
{
    int r = qcowring_discard(ring, off, len);

    return r < 0 ? die("discard", r) : 0;
}

static double seconds_now(void);

struct pending {
    int op;
    uint64_t off, len;
    uint8_t *expect;
};

static void check(struct qcowring *ring, const struct qcowring_completion *c)
{
    struct pending *p = c->user_data;

    if (c->result != 0) {
        fprintf(stderr, "ringio: op %d at %" PRIu64 " failed: %s\n", p->op, p->off,
                strerror(-c->result));
        failures++;
    } else if (p->op == QCOWRING_OP_READ &&
               memcmp(qcowring_req_buf(c->req), p->expect, p->len) != 0) {
        fprintf(stderr, "ringio: read at %" PRIu64 " len %" PRIu64 " returned wrong data\n",
                p->off, p->len);
        failures++;
    }
    qcowring_req_free(ring, c->req);
    free(p->expect);
    free(p);
}

static int issue(struct qcowring *ring, uint8_t *shadow, uint64_t size, uint64_t maxlen)
{
    uint64_t len = (rnd() % (maxlen / 512) + 1) * 512;
    struct pending *p = calloc(1, sizeof *p);
    struct qcowring_req *req;
    int r;

    len = len > size ? size : len;
    p->op = rnd() % 100 < 60 ? QCOWRING_OP_WRITE : QCOWRING_OP_READ;
    p->off = (rnd() % ((size - len) / 512 + 1)) * 512;
    p->len = len;
    if ((r = qcowring_req_alloc(ring, len, &req)) < 0) {
        free(p);
        return r;
    }
    uint8_t *buf = qcowring_req_buf(req);
    if (p->op == QCOWRING_OP_WRITE) {
        for (uint64_t i = 0; i < len; i += 8) {
            uint64_t v = rnd();
            memcpy(buf + i, &v, 8);
        }
        memcpy(shadow + p->off, buf, len);
    } else {
        p->expect = malloc(len);
        memcpy(p->expect, shadow + p->off, len);
    }
    return qcowring_submit(ring, req, p->op, p->off, len, p);
}

struct random_opts {
    unsigned ops, qd, kill_at;
    uint64_t maxlen;
    pid_t worker;
    uint64_t grow_to;           /* -G: the capacity to wait for */
    const char *mark;           /* -M: created when waiting starts */
    const char *stop;           /* -S: the file to wait for */
};

static int run_random(struct qcowring *ring, uint8_t *shadow, uint64_t size,
                      const struct random_opts *o)
{
    struct qcowring_completion c[64];
    unsigned issued = 0;
    int r, n;

    while (issued < o->ops || qcowring_in_flight(ring) > 0) {
        while (issued < o->ops && qcowring_in_flight(ring) < o->qd) {
            if ((r = issue(ring, shadow, size, o->maxlen)) == -EAGAIN)
                break;
            if (r < 0)
                return r;
            if (++issued == o->kill_at && o->worker > 0) {
                qcowring_kick(ring);
                kill(o->worker, SIGKILL);
            }
        }
        if ((r = qcowring_wait(ring, 60000)) < 0)
            return r;
        if (r == 0 && qcowring_in_flight(ring) > 0)
            return -ETIMEDOUT;
        while ((n = qcowring_reap(ring, c, 64)) > 0)
            for (int i = 0; i < n; i++)
                check(ring, &c[i]);
    }
    return 0;
}

/* -S: requests go on until the file o->stop exists. */
static int run_until_stopped(struct qcowring *ring, uint8_t *shadow, uint64_t size,
                             const struct random_opts *o)
{
    struct random_opts more = *o;
    double give_up = seconds_now() + 300;
    FILE *f = fopen(o->mark, "w");
    int r;

    if (!f || fclose(f))
        return -EIO;
    more.ops = 8;
    more.kill_at = 0;
    while (access(o->stop, F_OK) != 0) {
        if (seconds_now() > give_up)
            return -ETIMEDOUT;
        if ((r = run_random(ring, shadow, size, &more)) < 0)
            return r;
    }
    return 0;
}

/* -G: requests go on over the old size until the disk has grown. */
static int run_until_grown(struct qcowring *ring, uint8_t **shadow, uint64_t *size,
                           const struct random_opts *o)
{
    struct random_opts more = *o;
    struct qcowring_geometry g;
    double give_up = seconds_now() + 60;
    FILE *f = fopen(o->mark, "w");
    uint8_t *grown;
    int r;

    if (!f || fclose(f))
        return -EIO;
    more.ops = 8;
    more.kill_at = 0;
    for (;;) {
        if ((r = qcowring_refresh_capacity(ring)) < 0)
            return r;
        qcowring_get_geometry(ring, &g);
        if (g.capacity_sectors * 512 >= o->grow_to)
            break;
        if (seconds_now() > give_up)
            return -ETIMEDOUT;
        if ((r = run_random(ring, *shadow, *size, &more)) < 0)
            return r;
    }
    if (!(grown = realloc(*shadow, g.capacity_sectors * 512)))
        return -ENOMEM;
    memset(grown + *size, 0, g.capacity_sectors * 512 - *size);
    printf("capacity %" PRIu64 " -> %" PRIu64 "\n", *size, g.capacity_sectors * 512);
    *shadow = grown;
    *size = g.capacity_sectors * 512;
    return 0;
}

static int cmd_random(struct qcowring *ring, int argc, char **argv)
{
    struct random_opts o = { .ops = 2000, .qd = 32, .maxlen = 262144 };
    struct qcowring_geometry g;
    uint8_t *shadow;
    FILE *f;
    int c, r;

    optind = 1;
    while ((c = getopt(argc, argv, "n:q:s:m:K:w:G:M:S:")) != -1) {
        switch (c) {
        case 'n': o.ops = (unsigned)atoi(optarg); break;
        case 'q': o.qd = (unsigned)atoi(optarg); break;
        case 's': rng = strtoull(optarg, NULL, 0) | 1; break;
        case 'm': o.maxlen = strtoull(optarg, NULL, 0); break;
        case 'K': o.kill_at = (unsigned)atoi(optarg); break;
        case 'w': o.worker = (pid_t)atoi(optarg); break;
        case 'G': o.grow_to = strtoull(optarg, NULL, 0); break;
        case 'M': o.mark = optarg; break;
        case 'S': o.stop = optarg; break;
        default: return 2;
        }
    }
    if (optind != argc - 1 || (o.grow_to && !o.mark) || (o.stop && (!o.mark || o.grow_to)))
        return 2;
    qcowring_get_geometry(ring, &g);
    if (o.maxlen > g.max_request_bytes)
        o.maxlen = g.max_request_bytes;
    uint64_t size = g.capacity_sectors * 512;
    if (!(shadow = malloc(size)))
        return die("memory", -ENOMEM);
    if ((r = qcowring_pread(ring, shadow, size, 0)) < 0)
        return die("initial read", r);
    unsigned total = o.ops;
    if (o.grow_to || o.stop) {
        struct random_opts half = o;
        half.ops = o.ops / 2;
        o.ops -= half.ops;
        if ((r = run_random(ring, shadow, size, &half)) < 0 ||
            (r = o.stop ? run_until_stopped(ring, shadow, size, &o)
                        : run_until_grown(ring, &shadow, &size, &o)) < 0)
            return die("random I/O while waiting", r);
    }
    if ((r = run_random(ring, shadow, size, &o)) < 0 || (r = qcowring_flush(ring)) < 0)
        return die("random I/O", r);
    if (!(f = fopen(argv[optind], "w")) || fwrite(shadow, 1, size, f) != size || fclose(f))
        return die(argv[optind], -EIO);
    free(shadow);
    printf("%u requests, %u failures\n", total, failures);
    return failures ? 1 : 0;
}

static int cmd_geometry(struct qcowring *ring)
{
    struct qcowring_geometry g;

    qcowring_get_geometry(ring, &g);
    printf("capacity-sectors %" PRIu64 "\ndiscard %s\ndiscard-secure %s\n"
           "discard-granularity %" PRIu32 "\ndiscard-alignment %" PRIu32 "\n",
           g.capacity_sectors, (g.features & QCOWRING_F_DISCARD) ? "yes" : "no",
           (g.features & QCOWRING_F_DISCARD_SECURE) ? "yes" : "no", g.discard_granularity,
           g.discard_alignment);
    return 0;
}

/* ---- load ------------------------------------------------------------------ */

static double seconds_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct load_opts {
    unsigned qd;
    double seconds;
    uint64_t bytes;
    int op;
};

static int load_submit(struct qcowring *ring, const struct load_opts *o, uint64_t size)
{
    struct qcowring_req *req;
    uint64_t off = rnd() % (size / o->bytes) * o->bytes;
    int r = qcowring_req_alloc(ring, o->bytes, &req);

    if (r < 0)
        return r;
    if (o->op == QCOWRING_OP_WRITE)
        memset(qcowring_req_buf(req), (int)(off >> 12), o->bytes);
    return qcowring_submit(ring, req, o->op, off, o->bytes, NULL);
}

static int run_load(struct qcowring *ring, const struct load_opts *o, uint64_t size,
                    uint64_t *ops, double *start, double *last)
{
    struct qcowring_completion c[64];
    double end = (*start = *last = seconds_now()) + o->seconds;

    int r, n;

    *ops = 0;
    while (qcowring_in_flight(ring) > 0 || seconds_now() < end) {
        while (seconds_now() < end && qcowring_in_flight(ring) < o->qd)
            if ((r = load_submit(ring, o, size)) == -EAGAIN)
                break;
            else if (r < 0)
                return r;
        if ((r = qcowring_wait(ring, 60000)) < 0)
            return r;
        if (r == 0 && qcowring_in_flight(ring) > 0)
            return -ETIMEDOUT;
        while ((n = qcowring_reap(ring, c, 64)) > 0)
            for (int i = 0; i < n; i++) {
                if (c[i].result != 0) {
                    fprintf(stderr, "ringio: load: a request failed: %s\n",
                            strerror(-c[i].result));
                    failures++;
                }
                qcowring_req_free(ring, c[i].req);
                ++*ops;
                *last = seconds_now();
            }
    }
    return 0;
}

static int cmd_load(struct qcowring *ring, int argc, char **argv)
{
    struct load_opts o = { .qd = 32, .seconds = 10, .bytes = 4096, .op = QCOWRING_OP_READ };
    struct qcowring_geometry g;
    uint64_t ops;
    double start, last, elapsed;
    int c, r;

    optind = 1;
    while ((c = getopt(argc, argv, "q:t:b:W")) != -1) {
        switch (c) {
        case 'q': o.qd = (unsigned)atoi(optarg); break;
        case 't': o.seconds = atof(optarg); break;
        case 'b': o.bytes = strtoull(optarg, NULL, 0); break;
        case 'W': o.op = QCOWRING_OP_WRITE; break;
        default: return 2;
        }
    }
    qcowring_get_geometry(ring, &g);
    if (optind != argc || o.qd == 0 || o.bytes == 0 || o.bytes % 512 ||
        o.bytes > g.max_request_bytes || o.bytes > g.capacity_sectors * 512)
        return 2;
    if ((r = run_load(ring, &o, g.capacity_sectors * 512, &ops, &start, &last)) < 0)
        return die("load", r);
    elapsed = last - start;
    printf("ops %" PRIu64 " seconds %.6f iops %.1f from %.6f to %.6f\n", ops, elapsed,
           elapsed > 0 ? (double)ops / elapsed : 0.0, start, last);
    return failures ? 1 : 0;
}

/* ---- order ----------------------------------------------------------------- */

static int parse_op(const char *s, int *op, uint64_t *len);

/* "r:LEN[@OFF][=XX]" etc.: the offset and the expected byte (-1: any). */
static int parse_op_at(const char *s, int *op, uint64_t *len, uint64_t *off, int *expect)
{
    char head[64], *at, *eq;

    snprintf(head, sizeof head, "%s", s);
    *off = 0;
    *expect = -1;
    if ((eq = strchr(head, '='))) {
        char *end;
        unsigned long v = strtoul(eq + 1, &end, 16);
        if (head[0] != 'r' || *end || v > 255 || end == eq + 1)
            return -EINVAL;
        *expect = (int)v;
        *eq = '\0';
    }
    if ((at = strchr(head, '@'))) {
        if (parse_u64(at + 1, off) < 0 || *off % 512)
            return -EINVAL;
        *at = '\0';
    }
    return parse_op(head, op, len);
}

static bool all_bytes(const uint8_t *p, uint64_t len, int expect)
{
    for (uint64_t i = 0; i < len; i++)
        if (p[i] != expect)
            return false;
    return true;
}

static int parse_op(const char *s, int *op, uint64_t *len)
{
    static const struct { char c; int op; bool has_len; } ops[] = {
        { 'r', QCOWRING_OP_READ, true }, { 'w', QCOWRING_OP_WRITE, true },
        { 'd', QCOWRING_OP_DISCARD, true }, { 'f', QCOWRING_OP_FLUSH_DISKCACHE, false },
        { 'b', QCOWRING_OP_WRITE_BARRIER, false },
    };

    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (s[0] != ops[i].c)
            continue;
        *op = ops[i].op;
        *len = 0;
        if (!ops[i].has_len)
            return s[1] ? -EINVAL : 0;
        return s[1] == ':' && parse_u64(s + 2, len) == 0 && *len && *len % 512 == 0 ? 0
                                                                                   : -EINVAL;
    }
    return -EINVAL;
}

static int cmd_order(struct qcowring *ring, int argc, char **argv)
{
    struct qcowring_completion c[64];
    struct qcowring_req *req;
    uint64_t len, off, lens[64];
    int op, r, n, expect[64];

    if (argc - 1 > 64)
        return 2;
    for (int i = 1; i < argc; i++) {
        if (parse_op_at(argv[i], &op, &len, &off, &expect[i - 1]) < 0)
            return 2;
        lens[i - 1] = len;
        bool buffered = op == QCOWRING_OP_READ || op == QCOWRING_OP_WRITE;
        if ((r = qcowring_req_alloc(ring, buffered ? len : 0, &req)) < 0)
            return die("request", r);
        if (op == QCOWRING_OP_WRITE)
            memset(qcowring_req_buf(req), 0x5a, len);
        if ((r = qcowring_submit(ring, req, op, off, len, (void *)(intptr_t)(i - 1))) < 0)
            return die("submit", r);
    }
    printf("order:");
    while (qcowring_in_flight(ring) > 0) {
        if ((r = qcowring_wait(ring, 60000)) <= 0)
            return die("wait", r ? r : -ETIMEDOUT);
        while ((n = qcowring_reap(ring, c, 64)) > 0)
            for (int i = 0; i < n; i++) {
                int k = (int)(intptr_t)c[i].user_data;
                printf(" %d", k);
                fflush(stdout);
                if (c[i].result != 0) {
                    fprintf(stderr, "ringio: order: op %d failed: %s\n", k,
                            strerror(-c[i].result));
                    failures++;
                } else if (expect[k] >= 0 &&
                           !all_bytes(qcowring_req_buf(c[i].req), lens[k], expect[k])) {
                    fprintf(stderr, "ringio: order: op %d read other bytes than %02x\n", k,
                            expect[k]);
                    failures++;
                }
                qcowring_req_free(ring, c[i].req);
            }
    }
    printf("\n");
    return failures ? 1 : 0;
}

/* attach: "ro" for read-only, anything else is the format.  The exit
 * status is the errno, for the tests to tell refusals apart. */
static int cmd_attach(const char *sock, const char *name, int argc, char **argv)
{
    const char *format = NULL;
    unsigned flags = 0;
    int r;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "ro") == 0)
            flags |= QCOWRING_ATTACH_READ_ONLY;
        else
            format = argv[i];
    }
    if ((r = qcowring_attach(sock, argv[0], name, format, flags)) < 0) {
        fprintf(stderr, "ringio: attach %s: %s\n", argv[0], strerror(-r));
        return -r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct qcowring *ring;
    uint64_t off, len;
    int r;

    if (argc < 4) {
        fprintf(stderr, "usage: ringio SOCKET NAME "
                        "read|write|discard|flush|geometry|random|load|order|attach|detach ...\n");
        return 2;
    }
    if (strcmp(argv[3], "attach") == 0 && argc >= 5)
        return cmd_attach(argv[1], argv[2], argc - 4, argv + 4);
    if (strcmp(argv[3], "detach") == 0) {
        r = qcowring_detach(argv[1], argv[2]);
        return r < 0 ? die("detach", r) : 0;
    }
    if ((r = qcowring_connect(argv[1], argv[2], &ring)) < 0)
        return die("connect", r);
    if (strcmp(argv[3], "random") == 0) {
        r = cmd_random(ring, argc - 3, argv + 3);
    } else if (strcmp(argv[3], "load") == 0) {
        r = cmd_load(ring, argc - 3, argv + 3);
    } else if (strcmp(argv[3], "order") == 0) {
        r = cmd_order(ring, argc - 3, argv + 3);
    } else if (strcmp(argv[3], "flush") == 0) {
        r = (r = qcowring_flush(ring)) < 0 ? die("flush", r) : 0;
    } else if (strcmp(argv[3], "geometry") == 0) {
        r = cmd_geometry(ring);
    } else if (argc == 6 && parse_u64(argv[4], &off) == 0 && parse_u64(argv[5], &len) == 0) {
        r = strcmp(argv[3], "write") == 0 ? cmd_write(ring, off, len)
          : strcmp(argv[3], "read") == 0 ? cmd_read(ring, off, len)
          : strcmp(argv[3], "discard") == 0 ? cmd_discard(ring, off, len) : 2;
    } else {
        r = 2;
    }
    qcowring_close(ring);
    return r;
}
