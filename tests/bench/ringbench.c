/* ringbench: a fio-like load generator for a qcowd ring.
 *
 * It starts a qcowd-worker on IMAGE (worker_spawn), or with --socket asks
 * a running qcowd for the ring of the image attached as IMAGE
 * (qcowring_connect), maps the ring with libqcowring and keeps --iodepth requests in flight with the
 * asynchronous interface for --runtime seconds (or one pass over --size
 * bytes for sequential jobs that are not --time-based), then prints IOPS,
 * MiB/s, latency percentiles and the CPU time of both processes.
 *
 *   ringbench [--rw read|write|randread|randwrite|randrw] [--bs 4k]
 *             [--iodepth 32] [--runtime 10] [--size BYTES] [--worker PATH]
 *             [--cache none|writeback] [--null] [--json] IMAGE
 *
 * Latency is measured per request from qcowring_submit() to the reap that
 * returned it (both in the client), so it includes the doorbells and the
 * worker's wake-ups: what a user of libqcowring sees. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "error.h"
#include "worker_spawn.h"
#include "../lib/xorshift.h"

#ifndef RINGBENCH_DEFAULT_WORKER
#define RINGBENCH_DEFAULT_WORKER "qcowd-worker"
#endif

#define REAP_BATCH 256

/* ---- options ---------------------------------------------------------- */

enum pattern { P_READ, P_WRITE, P_RANDREAD, P_RANDWRITE, P_RANDRW };
static const char *const pattern_names[] = { "read", "write", "randread", "randwrite", "randrw" };

struct opts {
    enum pattern rw;
    uint64_t bs;
    unsigned iodepth;
    double runtime;             /* seconds */
    double ramp;                /* seconds excluded from the figures */
    uint64_t size;              /* span in bytes; 0 = the whole image */
    uint64_t offset;            /* start of the span */
    bool time_based;            /* sequential: wrap instead of stopping */
    unsigned rwmixread;         /* percent of reads in randrw */
    uint64_t seed;
    const char *worker;
    bool writeback;
    bool null_backend;
    bool json;
    bool poll_mode;             /* spin on the ring instead of sleeping */
    bool end_fsync;             /* a flush at the end, inside the measured time */
    int spin_us;                /* qcowring_set_spin(); -1: the library's default */
    unsigned worker_poll_us;    /* qcowd-worker --poll-us */
    uint64_t l2_cache_bytes;    /* qcowd-worker --l2-cache; 0: its default */
    unsigned ring_order, data_pages, max_indirect;
    bool ring_order_given;
    const char *worker_log;     /* file for the worker's stderr */
    const char *socket;         /* connect to an attached image instead of spawning */
    unsigned worker_pid;        /* with --socket: the worker, for its CPU time */
    const char *image;
};

/* ---- latency histogram (log-linear, ~1.6% resolution) ----------------- */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_BUCKETS ((64 - SUB_BITS) * SUB + SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n, sum, min, max;
};

static unsigned hist_index(uint64_t v)
{
    unsigned msb;

    if (v < SUB)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    return (msb - SUB_BITS + 1) * SUB + (unsigned)((v >> (msb - SUB_BITS)) & (SUB - 1));
}

/* The middle of bucket i's range. */
static uint64_t hist_value(unsigned i)
{
    unsigned shift;
    uint64_t lo;

    if (i < SUB)
        return i;
    shift = i / SUB - 1;
    lo = (uint64_t)(SUB + i % SUB) << shift;
    return lo + ((1ull << shift) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->n++;
    h->sum += v;
    if (h->n == 1 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->n == 0)
        return 0;
    want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v < h->min ? h->min : v;
        }
    }
    return h->max;
}

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    return xorshift64(&rng_state);
}

/* "4k", "1M", "512", "1G": binary units. */
static int parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    }
    if (*end == 'i' && end[1] == 'B')
        end += 2;
    else if (*end == 'B' && shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_unsigned(const char *s, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0 || v > 86400)
        return -EINVAL;
    if (*end == 's')
        end++;
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* CPU time (user + system) of a process in seconds, from /proc. */
static double proc_cpu_seconds(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which is in parentheses. */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* How many of the worker's descriptors on the image file carry O_DIRECT:
 * evidence, from the outside, of the cache mode it really uses. */
static void image_fd_flags(pid_t pid, const char *image, int *nfds, int *ndirect)
{
    char real[PATH_MAX];
    struct stat want;

    *nfds = *ndirect = 0;
    if (!realpath(image, real) || stat(real, &want) < 0)
        return;
    for (int fd = 0; fd < 1024; fd++) {
        char path[64], line[128];
        struct stat st;
        unsigned long flags = 0;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
        if (stat(path, &st) < 0 || st.st_dev != want.st_dev || st.st_ino != want.st_ino)
            continue;
        snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, fd);
        if (!(f = fopen(path, "r")))
            continue;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        fclose(f);
        (*nfds)++;
        if (flags & O_DIRECT)
            (*ndirect)++;
    }
}

/* ---- the run ---------------------------------------------------------- */

struct job {
    const struct opts *o;
    struct qcowring *ring;
    uint64_t span_start, span_len;  /* bytes, bs-aligned */
    uint64_t nblocks;               /* span_len / bs */
    uint64_t next_seq;              /* sequential: next block */
    bool pass_done;                 /* sequential, not time based: all issued */
    uint64_t seq_stamp;
    /* measured interval */
    uint64_t t_start, t_end;
    uint64_t ios[2], bytes[2], errors;
    struct hist lat[2];             /* [0] reads, [1] writes */
    bool ramping;
};

/* Every request carries its start time in user_data's slot. */
struct inflight {
    uint64_t t_submit;
    bool write;
};

static bool pick_write(struct job *j)
{
    switch (j->o->rw) {
    case P_READ: case P_RANDREAD: return false;
    case P_WRITE: case P_RANDWRITE: return true;
    case P_RANDRW: return rnd() % 100 >= j->o->rwmixread;
    }
    return false;
}

static bool is_sequential(const struct opts *o)
{
    return o->rw == P_READ || o->rw == P_WRITE;
}

/* Next offset, or false when a one-pass sequential job has issued it all. */
static bool pick_offset(struct job *j, uint64_t *off)
{
    uint64_t blk;

    if (is_sequential(j->o)) {
        if (j->next_seq == j->nblocks) {
            if (!j->o->time_based) {
                j->pass_done = true;
                return false;
            }
            j->next_seq = 0;
        }
        blk = j->next_seq++;
    } else {
        blk = rnd() % j->nblocks;
    }
    *off = j->span_start + blk * j->o->bs;
    return true;
}

/* Non-zero data that differs per write: a stamp at the start of each 512 B. */
static void stamp(struct job *j, uint8_t *buf, uint64_t len, uint64_t off)
{
    uint64_t s = ++j->seq_stamp;

    for (uint64_t i = 0; i < len; i += 512) {
        uint64_t v[2] = { off + i, s };
        memcpy(buf + i, v, sizeof v);
    }
}

static struct inflight *slots;  /* one per ring entry, indexed by a counter */

static int issue_one(struct job *j, unsigned *slot_cursor, unsigned nslots)
{
    struct qcowring_req *req;
    struct inflight *in;
    uint64_t off;
    bool w;
    int r;

    if (!pick_offset(j, &off))
        return -ENODATA;
    if ((r = qcowring_req_alloc(j->ring, j->o->bs, &req)) < 0) {
        if (is_sequential(j->o))
            j->next_seq--;      /* retry the same block next time */
        return r;
    }
    w = pick_write(j);
    if (w)
        stamp(j, qcowring_req_buf(req), j->o->bs, off);
    /* Find a free bookkeeping slot (there are more than the ring holds). */
    do {
        in = &slots[*slot_cursor];
        *slot_cursor = (*slot_cursor + 1) % nslots;
    } while (in->t_submit != 0);
    in->write = w;
    in->t_submit = now_ns();
    r = qcowring_submit(j->ring, req, w ? QCOWRING_OP_WRITE : QCOWRING_OP_READ, off, j->o->bs,
                        in);
    if (r < 0) {
        in->t_submit = 0;
        qcowring_req_free(j->ring, req);
    }
    return r;
}

static void reset_counters(struct job *j, uint64_t t)
{
    memset(j->ios, 0, sizeof j->ios);
    memset(j->bytes, 0, sizeof j->bytes);
    memset(j->lat, 0, sizeof j->lat);
    j->errors = 0;
    j->t_start = t;
}

static void complete(struct job *j, const struct qcowring_completion *c, uint64_t t)
{
    struct inflight *in = c->user_data;
    int k = in->write ? 1 : 0;

    if (c->result != 0) {
        if (j->errors++ == 0)
            fprintf(stderr, "ringbench: %s failed: %s\n", in->write ? "write" : "read",
                    strerror(-c->result));
    } else {
        j->ios[k]++;
        j->bytes[k] += j->o->bs;
        hist_add(&j->lat[k], t > in->t_submit ? t - in->t_submit : 0);
    }
    in->t_submit = 0;
    qcowring_req_free(j->ring, c->req);
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int run(struct job *j)
{
    const struct opts *o = j->o;
    struct qcowring_completion done[REAP_BATCH];
    unsigned nslots = 4 * o->iodepth + 64, cursor = 0;
    uint64_t t0 = now_ns(), ramp_end = t0 + (uint64_t)(o->ramp * 1e9);
    uint64_t stop = ramp_end + (uint64_t)(o->runtime * 1e9);
    bool issuing = true;
    int r;

    if (!(slots = calloc(nslots, sizeof *slots)))
        return -ENOMEM;
    j->ramping = o->ramp > 0;
    reset_counters(j, t0);
    for (;;) {
        uint64_t t;

        while (issuing && qcowring_in_flight(j->ring) < o->iodepth) {
            r = issue_one(j, &cursor, nslots);
            if (r == -EAGAIN)
                break;
            if (r == -ENODATA) {
                issuing = false;
                break;
            }
            if (r < 0)
                return r;
        }
        if (qcowring_in_flight(j->ring) == 0 && !issuing)
            break;
        r = qcowring_reap(j->ring, done, REAP_BATCH);
        if (r == 0 && !o->poll_mode) {
            /* Armed: sleep until the worker answers. */
            if ((r = qcowring_wait(j->ring, 30000)) < 0)
                return r;
            if (r == 0 && qcowring_in_flight(j->ring) > 0)
                return -ETIMEDOUT;
            r = qcowring_reap(j->ring, done, REAP_BATCH);
        }
        if (r < 0)
            return r;
        t = now_ns();
        for (int i = 0; i < r; i++)
            complete(j, &done[i], t);
        if (j->ramping && t >= ramp_end) {
            j->ramping = false;
            reset_counters(j, t);
        }
        if (issuing && (t >= stop || interrupted))
            issuing = false;
    }
    if (o->end_fsync && (r = qcowring_flush(j->ring)) < 0)
        return r;
    j->t_end = now_ns();
    free(slots);
    return 0;
}

/* ---- output ----------------------------------------------------------- */

struct result {
    double secs, iops, mib_s;
    double cpu_client, cpu_worker;      /* fraction of one core */
    int image_fds, direct_fds;
};

static const char *cache_name(const struct opts *o)
{
    return o->null_backend ? "null" : o->writeback ? "writeback" : "none";
}

static json_object *lat_json(const struct hist *h)
{
    json_object *l = json_object_new_object();

    json_object_object_add(l, "n", json_object_new_int64((int64_t)h->n));
    json_object_object_add(l, "mean_us", json_object_new_double(
        h->n ? (double)h->sum / (double)h->n / 1e3 : 0));
    json_object_object_add(l, "min_us", json_object_new_double((double)h->min / 1e3));
    json_object_object_add(l, "p50_us", json_object_new_double((double)hist_quantile(h, 0.50) / 1e3));
    json_object_object_add(l, "p99_us", json_object_new_double((double)hist_quantile(h, 0.99) / 1e3));
    json_object_object_add(l, "p999_us", json_object_new_double((double)hist_quantile(h, 0.999) / 1e3));
    json_object_object_add(l, "max_us", json_object_new_double((double)h->max / 1e3));
    return l;
}

static void print_json(const struct job *j, const struct result *res, const struct hist *all)
{
    const struct opts *o = j->o;
    json_object *root = json_object_new_object();

    json_object_object_add(root, "image", json_object_new_string(o->image));
    json_object_object_add(root, "rw", json_object_new_string(pattern_names[o->rw]));
    json_object_object_add(root, "bs", json_object_new_int64((int64_t)o->bs));
    json_object_object_add(root, "iodepth", json_object_new_int((int)o->iodepth));
    json_object_object_add(root, "cache", json_object_new_string(cache_name(o)));
    json_object_object_add(root, "span_bytes", json_object_new_int64((int64_t)j->span_len));
    json_object_object_add(root, "seconds", json_object_new_double(res->secs));
    json_object_object_add(root, "ios", json_object_new_int64((int64_t)(j->ios[0] + j->ios[1])));
    json_object_object_add(root, "reads", json_object_new_int64((int64_t)j->ios[0]));
    json_object_object_add(root, "writes", json_object_new_int64((int64_t)j->ios[1]));
    json_object_object_add(root, "bytes", json_object_new_int64((int64_t)(j->bytes[0] + j->bytes[1])));
    json_object_object_add(root, "errors", json_object_new_int64((int64_t)j->errors));
    json_object_object_add(root, "iops", json_object_new_double(res->iops));
    json_object_object_add(root, "mib_s", json_object_new_double(res->mib_s));
    json_object_object_add(root, "lat", lat_json(all));
    if (j->lat[0].n && j->lat[1].n) {
        json_object_object_add(root, "lat_read", lat_json(&j->lat[0]));
        json_object_object_add(root, "lat_write", lat_json(&j->lat[1]));
    }
    json_object_object_add(root, "cpu_client", json_object_new_double(res->cpu_client));
    json_object_object_add(root, "cpu_worker", json_object_new_double(res->cpu_worker));
    json_object_object_add(root, "image_fds", json_object_new_int(res->image_fds));
    json_object_object_add(root, "image_fds_o_direct", json_object_new_int(res->direct_fds));
    printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
}

static void print_human(const struct job *j, const struct result *res, const struct hist *all)
{
    const struct opts *o = j->o;

    printf("ringbench: rw=%s bs=%" PRIu64 " iodepth=%u cache=%s span=%" PRIu64 " MiB image=%s\n",
           pattern_names[o->rw], o->bs, o->iodepth, cache_name(o), j->span_len >> 20, o->image);
    printf("  %.2f s: %" PRIu64 " I/Os (%" PRIu64 " reads, %" PRIu64 " writes), %" PRIu64
           " errors\n", res->secs, j->ios[0] + j->ios[1], j->ios[0], j->ios[1], j->errors);
    printf("  IOPS=%.0f  BW=%.1f MiB/s\n", res->iops, res->mib_s);
    printf("  lat (us): min=%.1f mean=%.1f p50=%.1f p99=%.1f p99.9=%.1f max=%.1f\n",
           (double)all->min / 1e3, all->n ? (double)all->sum / (double)all->n / 1e3 : 0,
           (double)hist_quantile(all, 0.5) / 1e3, (double)hist_quantile(all, 0.99) / 1e3,
           (double)hist_quantile(all, 0.999) / 1e3, (double)all->max / 1e3);
    printf("  cpu: client %.0f%%, worker %.0f%% of one core; worker image fds: %d, O_DIRECT: %d\n",
           res->cpu_client * 100, res->cpu_worker * 100, res->image_fds, res->direct_fds);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: ringbench [OPTION]... IMAGE\n"
        "       ringbench --socket=PATH [--worker-pid=PID] [OPTION]... NAME\n"
        "Drive a qcowd-worker's shared-memory ring and measure it (fio-like).\n\n"
        "      --socket=PATH      use the ring of the image a running qcowd serves as\n"
        "                         NAME (its own options apply; the worker options below\n"
        "                         do not)\n"
        "      --worker-pid=PID   with --socket: that image's worker, for its CPU time\n"
        "      --rw=MODE          read, write, randread (default), randwrite, randrw\n"
        "      --bs=BYTES         request size, multiple of 512 (default 4k)\n"
        "      --iodepth=N        requests kept in flight (default 32)\n"
        "      --runtime=SECONDS  measured time (default 10)\n"
        "      --ramp=SECONDS     warm-up not counted (default 0)\n"
        "      --size=BYTES       span of the offsets (default: the whole image)\n"
        "      --offset=BYTES     start of the span (default 0)\n"
        "      --time-based       sequential jobs wrap around the span instead of\n"
        "                         stopping after one pass (random jobs always run\n"
        "                         for --runtime)\n"
        "      --rwmixread=PCT    reads in randrw (default 50)\n"
        "      --seed=N           random offsets' seed\n"
        "      --worker=PATH      the qcowd-worker binary (default: $QCOWD_WORKER or\n"
        "                         %s)\n"
        "      --cache=MODE       none (O_DIRECT, default) or writeback\n"
        "      --null             null backend: the worker completes requests without I/O\n"
        "      --poll             spin on the ring instead of sleeping on the eventfd\n"
        "      --spin=USEC        busy-wait before sleeping (qcowring_set_spin();\n"
        "                         default: the library's, 0: sleep at once)\n"
        "      --worker-poll=USEC the worker busy-polls before sleeping (default 0)\n"
        "      --l2-cache=BYTES   the worker's L2 cache per qcow layer (worker default)\n"
        "      --end-fsync        flush when the I/O is done, inside the measured time\n"
        "                         (as fio's end_fsync=1)\n"
        "      --ring-order=N     ring pages = 2^N (worker default: 2, 128 slots)\n"
        "      --data-pages=N     data area pages (worker default)\n"
        "      --max-indirect=N   segments per indirect request (worker default)\n"
        "      --worker-log=FILE  the worker's stderr (default: inherited)\n"
        "      --json             one JSON object on stdout\n"
        "  -h, --help             this help\n",
        RINGBENCH_DEFAULT_WORKER);
}

enum { O_RW = 256, O_BS, O_IODEPTH, O_RUNTIME, O_RAMP, O_SIZE, O_OFFSET, O_TIME_BASED,
       O_RWMIX, O_SEED, O_WORKER, O_CACHE, O_NULL, O_POLL, O_RING_ORDER, O_DATA_PAGES,
       O_MAX_INDIRECT, O_WORKER_LOG, O_JSON, O_END_FSYNC, O_SPIN, O_WORKER_POLL, O_SOCKET,
       O_WORKER_PID, O_L2_CACHE };

static const struct option long_options[] = {
    { "rw", required_argument, NULL, O_RW },
    { "bs", required_argument, NULL, O_BS },
    { "iodepth", required_argument, NULL, O_IODEPTH },
    { "runtime", required_argument, NULL, O_RUNTIME },
    { "ramp", required_argument, NULL, O_RAMP },
    { "size", required_argument, NULL, O_SIZE },
    { "offset", required_argument, NULL, O_OFFSET },
    { "time-based", no_argument, NULL, O_TIME_BASED },
    { "rwmixread", required_argument, NULL, O_RWMIX },
    { "seed", required_argument, NULL, O_SEED },
    { "worker", required_argument, NULL, O_WORKER },
    { "cache", required_argument, NULL, O_CACHE },
    { "null", no_argument, NULL, O_NULL },
    { "poll", no_argument, NULL, O_POLL },
    { "spin", required_argument, NULL, O_SPIN },
    { "worker-poll", required_argument, NULL, O_WORKER_POLL },
    { "l2-cache", required_argument, NULL, O_L2_CACHE },
    { "ring-order", required_argument, NULL, O_RING_ORDER },
    { "data-pages", required_argument, NULL, O_DATA_PAGES },
    { "max-indirect", required_argument, NULL, O_MAX_INDIRECT },
    { "worker-log", required_argument, NULL, O_WORKER_LOG },
    { "json", no_argument, NULL, O_JSON },
    { "end-fsync", no_argument, NULL, O_END_FSYNC },
    { "socket", required_argument, NULL, O_SOCKET },
    { "worker-pid", required_argument, NULL, O_WORKER_PID },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int parse_option(int c, const char *arg, struct opts *o)
{
    switch (c) {
    case O_RW:
        for (unsigned i = 0; i < sizeof pattern_names / sizeof *pattern_names; i++)
            if (strcmp(arg, pattern_names[i]) == 0) {
                o->rw = (enum pattern)i;
                return 0;
            }
        return -EINVAL;
    case O_BS: return parse_bytes(arg, &o->bs);
    case O_IODEPTH: return parse_unsigned(arg, 8192, &o->iodepth);
    case O_RUNTIME: return parse_seconds(arg, &o->runtime);
    case O_RAMP: return parse_seconds(arg, &o->ramp);
    case O_SIZE: return parse_bytes(arg, &o->size);
    case O_OFFSET: return parse_bytes(arg, &o->offset);
    case O_TIME_BASED: o->time_based = true; return 0;
    case O_RWMIX: return parse_unsigned(arg, 100, &o->rwmixread);
    case O_SEED:
        if (parse_bytes(arg, &o->seed) < 0)
            return -EINVAL;
        return 0;
    case O_WORKER: o->worker = arg; return 0;
    case O_CACHE:
        if (strcmp(arg, "none") && strcmp(arg, "writeback"))
            return -EINVAL;
        o->writeback = strcmp(arg, "writeback") == 0;
        return 0;
    case O_NULL: o->null_backend = true; return 0;
    case O_POLL: o->poll_mode = true; return 0;
    case O_WORKER_POLL: return parse_unsigned(arg, 1000, &o->worker_poll_us);
    case O_L2_CACHE: return parse_bytes(arg, &o->l2_cache_bytes);
    case O_SPIN: {
        unsigned us = 0;
        int r = parse_unsigned(arg, 1000000, &us);
        o->spin_us = (int)us;
        return r;
    }
    case O_RING_ORDER:
        o->ring_order_given = true;
        return parse_unsigned(arg, QCOWRING_MAX_RING_PAGE_ORDER, &o->ring_order);
    case O_DATA_PAGES: return parse_unsigned(arg, 1u << 20, &o->data_pages);
    case O_MAX_INDIRECT: return parse_unsigned(arg, 4096, &o->max_indirect);
    case O_WORKER_LOG: o->worker_log = arg; return 0;
    case O_JSON: o->json = true; return 0;
    case O_END_FSYNC: o->end_fsync = true; return 0;
    case O_SOCKET: o->socket = arg; return 0;
    case O_WORKER_PID: return parse_unsigned(arg, INT_MAX, &o->worker_pid);
    }
    return -EINVAL;
}

static int setup_span(struct job *j, const struct qcowring_geometry *g)
{
    const struct opts *o = j->o;
    uint64_t cap = g->capacity_sectors * 512, len;

    if (o->bs == 0 || o->bs % 512) {
        fprintf(stderr, "ringbench: --bs must be a positive multiple of 512\n");
        return -EINVAL;
    }
    if (o->bs > g->max_request_bytes) {
        fprintf(stderr, "ringbench: --bs %" PRIu64 " is above the ring's largest request (%u)\n",
                o->bs, g->max_request_bytes);
        return -EINVAL;
    }
    if (o->iodepth == 0 || o->iodepth > g->ring_entries) {
        fprintf(stderr, "ringbench: --iodepth must be 1..%u (the ring's slots; see "
                "--ring-order)\n", g->ring_entries);
        return -EINVAL;
    }
    if ((uint64_t)o->iodepth * o->bs > (uint64_t)g->data_pages * 4096) {
        fprintf(stderr, "ringbench: iodepth x bs exceeds the data area (%u pages; see "
                "--data-pages)\n", g->data_pages);
        return -EINVAL;
    }
    if (o->offset % o->bs || o->offset >= cap) {
        fprintf(stderr, "ringbench: --offset must be a multiple of --bs inside the image\n");
        return -EINVAL;
    }
    len = o->size ? o->size : cap - o->offset;
    if (len > cap - o->offset)
        len = cap - o->offset;
    j->span_start = o->offset;
    j->nblocks = len / o->bs;
    j->span_len = j->nblocks * o->bs;
    if (j->nblocks == 0) {
        fprintf(stderr, "ringbench: the span is smaller than one block\n");
        return -EINVAL;
    }
    return 0;
}

/* Start our own worker on o->image and open its ring: 0, or the exit status. */
static int spawn_worker(const struct opts *o, int log_fd, struct worker_proc *wp,
                        struct qcowring **ring)
{
    struct worker_spawn_opts so = { .stderr_fd = -1, .image_fd = -1 };
    int r;

    so.worker_path = o->worker;
    so.image = o->image;
    so.writeback = o->writeback;
    so.null_backend = o->null_backend;
    so.read_only = o->rw == P_READ || o->rw == P_RANDREAD;
    so.ring_order = o->ring_order;
    so.ring_order_given = o->ring_order_given;
    so.data_pages = o->data_pages;
    so.max_indirect = o->max_indirect;
    so.poll_us = o->worker_poll_us;
    so.l2_cache_bytes = o->l2_cache_bytes;
    so.stderr_fd = log_fd;
    so.log_level = "warning";
    if ((r = worker_spawn(&so, 30000, wp)) < 0) {
        fprintf(stderr, "ringbench: cannot start %s: %s\n", o->worker, qc_error_message(r));
        return 1;
    }
    if (log_fd >= 0)
        close(log_fd);
    if ((r = qcowring_open_fds(wp->ring.memfd, wp->ring.req_eventfd, wp->ring.rsp_eventfd,
                               ring)) < 0) {
        fprintf(stderr, "ringbench: cannot open the ring: %s\n", strerror(-r));
        worker_stop(wp, 30000);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { .rw = P_RANDREAD, .bs = 4096, .iodepth = 32, .runtime = 10,
                      .rwmixread = 50, .seed = 1, .spin_us = -1 };
    struct qcowring_geometry g;
    struct worker_proc wp;
    struct job j = { .o = &o };
    struct result res = { 0 };
    struct hist *all;
    double cpu_w0, cpu_c0;
    int c, r, log_fd = -1, status = 0;

    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?' || parse_option(c, optarg, &o) < 0) {
            if (c != '?')
                fprintf(stderr, "ringbench: invalid value in '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    o.image = argv[optind];
    if (!o.worker)
        o.worker = getenv("QCOWD_WORKER") ? getenv("QCOWD_WORKER") : RINGBENCH_DEFAULT_WORKER;
    rng_state = (o.seed * 0x9e3779b97f4a7c15ull) | 1;

    if (o.worker_log &&
        (log_fd = open(o.worker_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "ringbench: %s: %s\n", o.worker_log, strerror(errno));
        return 1;
    }
    if (o.socket) {
        wp = (struct worker_proc){ .pid = (pid_t)o.worker_pid, .ctl_fd = -1,
                                   .ring = { -1, -1, -1 }, .journal_fd = -1 };
        if ((r = qcowring_connect(o.socket, o.image, &j.ring)) < 0) {
            fprintf(stderr, "ringbench: %s: cannot connect to '%s': %s\n", o.socket, o.image,
                    strerror(-r));
            return 1;
        }
    } else if ((r = spawn_worker(&o, log_fd, &wp, &j.ring)) != 0) {
        return r;
    }
    if (o.spin_us >= 0)
        qcowring_set_spin(j.ring, (unsigned)o.spin_us);
    qcowring_get_geometry(j.ring, &g);
    if (setup_span(&j, &g) < 0) {
        qcowring_close(j.ring);
        if (!o.socket)
            worker_stop(&wp, 30000);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!o.socket)
        image_fd_flags(wp.pid, o.image, &res.image_fds, &res.direct_fds);

    cpu_w0 = proc_cpu_seconds(wp.pid);
    cpu_c0 = self_cpu_seconds();
    r = run(&j);
    res.secs = (double)(j.t_end - j.t_start) / 1e9;
    if (res.secs > 0) {
        res.cpu_worker = (proc_cpu_seconds(wp.pid) - cpu_w0) / res.secs;
        res.cpu_client = (self_cpu_seconds() - cpu_c0) / res.secs;
    }
    if (r < 0) {
        fprintf(stderr, "ringbench: I/O: %s\n", strerror(-r));
        status = 1;
    }
    qcowring_close(j.ring);
    if (!o.socket && (r = worker_stop(&wp, 60000)) != 0) {
        fprintf(stderr, "ringbench: the worker exited with status %d\n", r);
        status = 1;
    }
    if (j.errors)
        status = 1;

    /* Both directions together for the headline figures. */
    if (!(all = malloc(sizeof *all)))
        return 1;
    *all = j.lat[0];
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        all->count[i] += j.lat[1].count[i];
    all->n += j.lat[1].n;
    all->sum += j.lat[1].sum;
    if (j.lat[1].n && (j.lat[0].n == 0 || j.lat[1].min < all->min))
        all->min = j.lat[1].min;
    if (j.lat[1].max > all->max)
        all->max = j.lat[1].max;
    if (res.secs > 0) {
        res.iops = (double)(j.ios[0] + j.ios[1]) / res.secs;
        res.mib_s = (double)(j.bytes[0] + j.bytes[1]) / res.secs / (1 << 20);
    }
    if (o.json)
        print_json(&j, &res, all);
    else
        print_human(&j, &res, all);
    free(all);
    return status;
}
