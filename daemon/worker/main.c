/* qcowd-worker: serves one image over a shared-memory ring.  Normally
 * spawned by qcowd; tests and benchmarks run it directly with a control
 * socket of their own. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "doorbell.h"
#include "error.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "worker.h"
#ifdef QCOWD_TEST_HOOKS
#include "faultpoint_env.h"
#endif

#define DEFAULT_RING_ORDER 2        /* 4 pages: 128 requests in flight */
#define DEFAULT_DATA_PAGES 8192     /* 32 MiB of buffers */
#define DEFAULT_MAX_INDIRECT 256    /* 1 MiB per request */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: qcowd-worker [OPTION]... IMAGE\n"
        "Serve one disk image over a qcowd shared-memory ring (see qcowd(8)).\n\n"
        "  -f, --format=FMT        image format: auto (default), qcow, raw\n"
        "  -r, --read-only         open the image read-only\n"
        "      --cache=MODE        none (O_DIRECT, default) or writeback (page cache)\n"
        "      --l2-cache=SIZE     L2 tables cached per qcow layer, in bytes (K, M, G\n"
        "                          suffixes; default 16M; at least 4 tables are kept)\n"
        "      --key-fd=FD         read the encryption password from FD (up to a newline)\n"
        "      --name=NAME         name used in messages\n"
        "      --ring-order=N      ring pages = 2^N (default %d)\n"
        "      --data-pages=N      4 KiB data pages (default %d)\n"
        "      --max-indirect=N    segments per indirect request (default %d)\n"
        "      --image-fd=FD       the image is already open as FD (IMAGE then only names\n"
        "                          it and locates relative backing files)\n"
        "      --control-fd=FD     SOCK_SEQPACKET to the supervisor\n"
        "      --rendezvous=FD,SECS  a bound SOCK_SEQPACKET socket: when the supervisor\n"
        "                          goes away, serve on for SECS seconds, and let a new one\n"
        "                          (of the same user) adopt this worker there\n"
        "      --caller=UID:GID[:G1,G2...]\n"
        "                          open backing files with these rights (the caller's)\n"
        "      --backing-dir=DIR   backing files must be inside DIR (repeatable)\n"
        "      --user=UID:GID      once the image is open, run as this user (as root)\n"
        "      --ring-fds=M,Q,S,J  serve an existing ring: its memfd, request and response\n"
        "                          eventfds, and its journal\n"
        "      --null              complete I/O without touching the image (ring benchmark)\n"
        "      --paused            start paused: take no request until told to resume\n"
        "      --poll-us=USEC      busy-poll this long for work before sleeping\n"
        "                          (default %d; 0 sleeps at once)\n"
        "      --io-limits=JSON    I/O limits, as qcowd's \"io-limits\" object\n"
        "      --limit-group=FD,SLOT  the page of the limit group the limits name,\n"
        "                          and this worker's member slot in it\n"
        "      --log-level=LEVEL   error, warning, info (default), debug\n"
        "  -h, --help              show this help\n",
        DEFAULT_RING_ORDER, DEFAULT_DATA_PAGES, DEFAULT_MAX_INDIRECT, WORKER_POLL_DEFAULT_US);
}

static int parse_uint(const char *s, unsigned max, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int parse_fd(const char *s, int *fd)
{
    uint32_t v;
    int r = parse_uint(s, INT_MAX, &v);

    if (r == 0)
        *fd = (int)v;
    return r;
}

static int parse_ring_fds(const char *s, struct worker_opts *o)
{
    struct qcowring_fds *fds = &o->adopt;

    return sscanf(s, "%d,%d,%d,%d", &fds->memfd, &fds->req_eventfd, &fds->rsp_eventfd,
                  &o->adopt_journal_fd) == 4 && fds->memfd >= 0 && fds->req_eventfd >= 0 &&
                   fds->rsp_eventfd >= 0 && o->adopt_journal_fd >= 0
               ? 0 : -EINVAL;
}

static int parse_rendezvous(const char *s, struct worker_opts *o)
{
    char tail;

    return sscanf(s, "%d,%u%c", &o->rendezvous_fd, &o->orphan_wait_s, &tail) == 2 &&
                   o->rendezvous_fd >= 0 && o->orphan_wait_s <= 86400
               ? 0 : -EINVAL;
}

static int parse_limit_group(const char *s, struct worker_opts *o)
{
    char tail;

    return sscanf(s, "%d,%d%c", &o->limit_group_fd, &o->limit_group_slot, &tail) == 2 &&
                   o->limit_group_fd >= 0 && o->limit_group_slot >= 0
               ? 0 : -EINVAL;
}

static int read_key(int fd, uint8_t *key, size_t cap, size_t *len)
{
    size_t n = 0;

    while (n < cap) {
        ssize_t r = read(fd, key + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0 || key[n] == '\n')
            break;
        n++;
    }
    close(fd);
    *len = n;
    return n ? 0 : -EINVAL;
}

enum { OPT_CACHE = 256, OPT_KEY_FD, OPT_NAME, OPT_RING_ORDER, OPT_DATA_PAGES, OPT_MAX_INDIRECT,
       OPT_CONTROL_FD, OPT_RING_FDS, OPT_NULL, OPT_PAUSED, OPT_LOG_LEVEL, OPT_POLL_US,
       OPT_LIMITS, OPT_LIMIT_GROUP, OPT_IMAGE_FD, OPT_CALLER, OPT_BACKING_DIR, OPT_USER,
       OPT_L2_CACHE, OPT_RENDEZVOUS };

static const struct option long_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "read-only", no_argument, NULL, 'r' },
    { "cache", required_argument, NULL, OPT_CACHE },
    { "l2-cache", required_argument, NULL, OPT_L2_CACHE },
    { "key-fd", required_argument, NULL, OPT_KEY_FD },
    { "name", required_argument, NULL, OPT_NAME },
    { "ring-order", required_argument, NULL, OPT_RING_ORDER },
    { "data-pages", required_argument, NULL, OPT_DATA_PAGES },
    { "max-indirect", required_argument, NULL, OPT_MAX_INDIRECT },
    { "control-fd", required_argument, NULL, OPT_CONTROL_FD },
    { "rendezvous", required_argument, NULL, OPT_RENDEZVOUS },
    { "image-fd", required_argument, NULL, OPT_IMAGE_FD },
    { "caller", required_argument, NULL, OPT_CALLER },
    { "backing-dir", required_argument, NULL, OPT_BACKING_DIR },
    { "user", required_argument, NULL, OPT_USER },
    { "ring-fds", required_argument, NULL, OPT_RING_FDS },
    { "null", no_argument, NULL, OPT_NULL },
    { "paused", no_argument, NULL, OPT_PAUSED },
    { "poll-us", required_argument, NULL, OPT_POLL_US },
    { "io-limits", required_argument, NULL, OPT_LIMITS },
    { "limit-group", required_argument, NULL, OPT_LIMIT_GROUP },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static uint8_t key_buf[1024];

static int parse_option(int c, const char *arg, struct worker_opts *o)
{
    int level, fd = -1;
    size_t len = 0;

    switch (c) {
    case 'f': return image_format_parse(arg, &o->open.format);
    case 'r': o->open.read_only = true; return 0;
    case OPT_CACHE:
        if (strcmp(arg, "none") && strcmp(arg, "writeback"))
            return -EINVAL;
        o->open.direct = strcmp(arg, "none") == 0;
        return 0;
    case OPT_L2_CACHE:
        return parse_size(arg, &o->open.l2_cache_bytes) < 0 || o->open.l2_cache_bytes == 0
                   ? -EINVAL : 0;
    case OPT_KEY_FD:
        if (parse_fd(arg, &fd) < 0 || read_key(fd, key_buf, sizeof key_buf, &len) < 0)
            return -EINVAL;
        o->open.key = key_buf;
        o->open.key_len = len;
        return 0;
    case OPT_NAME: o->name = arg; return 0;
    case OPT_RING_ORDER: return parse_uint(arg, QCOWRING_MAX_RING_PAGE_ORDER, &o->ring_page_order);
    case OPT_DATA_PAGES: return parse_uint(arg, 1u << 20, &o->data_pages);
    case OPT_MAX_INDIRECT: return parse_uint(arg, 4096, &o->max_indirect);
    case OPT_CONTROL_FD: return parse_fd(arg, &o->ctl_fd);
    case OPT_RENDEZVOUS: return parse_rendezvous(arg, o);
    case OPT_IMAGE_FD: return parse_fd(arg, &o->image_fd);
    case OPT_CALLER:
        o->backing.as_caller = true;
        return identity_parse(arg, &o->backing.caller);
    case OPT_USER: return sandbox_parse_user(arg, &o->sandbox);
    case OPT_BACKING_DIR:
        if (o->backing.ndirs == BACKING_MAX_DIRS || arg[0] != '/')
            return -EINVAL;
        o->backing.dirs[o->backing.ndirs++] = arg;
        return 0;
    case OPT_RING_FDS: return parse_ring_fds(arg, o);
    case OPT_NULL: o->null_backend = true; return 0;
    case OPT_PAUSED: o->start_paused = true; return 0;
    case OPT_POLL_US: return parse_uint(arg, 1000000, &o->poll_us);
    case OPT_LIMITS: o->limits = arg; return 0;
    case OPT_LIMIT_GROUP: return parse_limit_group(arg, o);
    case OPT_LOG_LEVEL:
        if ((level = log_level_parse(arg)) < 0)
            return -EINVAL;
        log_set_level((enum log_level)level);
        return 0;
    }
    return -EINVAL;
}

int main(int argc, char **argv)
{
    struct worker_opts o = { .poll_us = WORKER_POLL_DEFAULT_US,
                             .ring_page_order = DEFAULT_RING_ORDER,
                             .data_pages = DEFAULT_DATA_PAGES,
                             .max_indirect = DEFAULT_MAX_INDIRECT, .ctl_fd = -1,
                             .rendezvous_fd = -1,
                             .image_fd = -1,
                             .adopt = { -1, -1, -1 }, .adopt_journal_fd = -1,
                             .limit_group_fd = -1, .limit_group_slot = -1,
                             .open.direct = true };
    struct worker w;
    int c, r;

    log_init("qcowd-worker");
    while ((c = getopt_long(argc, argv, "f:rh", long_options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?' || parse_option(c, optarg, &o) < 0) {
            if (c != '?')
                fprintf(stderr, "qcowd-worker: invalid value in '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    o.path = argv[optind];
#ifdef QCOWD_TEST_HOOKS
    faultpoint_from_env();
#endif
    /* Everything that needs rights (opening the chain, the ring, libaio)
     * happens in worker_init; then the sandbox (sandbox.h). */
    r = worker_init(&w, &o);
    if (r == 0) {
        doorbell_prepare();
        r = sandbox_enter(&o.sandbox);
    }
    if (r < 0) {
        const char *why = qc_error_message(r);
        log_error("%s", why);
        worker_send_failed(o.ctl_fd, w.fail_class ? w.fail_class : worker_failure_class(r), why);
        worker_destroy(&w);
        return 1;
    }
    if (worker_send_ready(&w, o.adopt.memfd < 0) < 0)
        log_warning("%s: cannot report to the supervisor", w.name);
    log_info("%s: serving (%" PRIu64 " bytes)", w.name, w.img->size);
    r = worker_run(&w);
    worker_destroy(&w);
    return r < 0 ? 1 : 0;
}
