/* Random mixed I/O through the asynchronous executor, checked against an
 * in-memory shadow: every read must return what the shadow held when the
 * read was issued.  At the end the shadow is written to a raw file so the
 * calling script can compare the image with it using qemu-img.
 *
 * exec_random IMAGE SHADOW_OUT [-n OPS] [-q QD] [-s SEED] [-m MAXLEN] [-d] [-k KEY]
 *             [-c L2_CACHE_BYTES]
 *
 * A small -c (1: the fewest tables a layer keeps) makes most plans wait for
 * L2 tables, read asynchronously.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "exec.h"
#include "util.h"
#include "../lib/xorshift.h"

struct test_req {
    struct blk_req req;
    struct iovec iov[16];
    uint8_t *buf;
    uint8_t *expect;            /* reads: the shadow's bytes at issue time */
    int status;
    bool done;
};

static uint64_t rng_state;
static unsigned completed, failures, inflight;

static uint64_t rnd(void)
{
    return xorshift64(&rng_state);
}

static void on_complete(struct blk_req *req, int status)
{
    struct test_req *t = (struct test_req *)req;

    t->status = status;
    t->done = true;
    inflight--;
    completed++;
    if (status != 0) {
        fprintf(stderr, "request %s at %" PRIu64 " len %" PRIu64 " failed: %s\n",
                blk_op_name(req->op), req->off, req->len, qc_error_message(status));
        failures++;
    } else if (req->op == BLK_READ && memcmp(t->buf, t->expect, req->len) != 0) {
        uint64_t i = 0;
        while (t->buf[i] == t->expect[i])
            i++;
        fprintf(stderr, "read at %" PRIu64 " len %" PRIu64 ": mismatch at byte %" PRIu64 "\n",
                req->off, req->len, req->off + i);
        failures++;
    }
    free(t->buf);
    free(t->expect);
    free(t);
}

/* Split buf into up to 16 pieces at random sector boundaries. */
static unsigned split_iov(struct iovec *iov, uint8_t *buf, uint64_t len)
{
    unsigned n = 0;
    uint64_t done = 0;

    while (done < len) {
        uint64_t left = len - done;
        uint64_t piece = (rnd() % 16 + 1) * 4096;
        uint64_t take = (n == 15) ? left : MIN(left, piece);
        iov[n++] = (struct iovec){ buf + done, take };
        done += take;
    }
    return n;
}

static struct test_req *make_req(uint8_t *shadow, uint64_t size, uint64_t maxlen)
{
    struct test_req *t = calloc(1, sizeof *t);
    uint64_t sectors = size / 512, roll = rnd() % 100;
    uint64_t len = (rnd() % (maxlen / 512) + 1) * 512;

    if (len > size)
        len = size;
    t->req.op = roll < 55 ? BLK_WRITE : roll < 95 ? BLK_READ : BLK_FLUSH;
    t->req.off = (rnd() % (sectors - len / 512 + 1)) * 512;
    t->req.complete = on_complete;
    if (t->req.op == BLK_FLUSH)
        return t;
    t->req.len = len;
    t->buf = alloc_aligned(4096, len);
    if (t->req.op == BLK_WRITE) {
        for (uint64_t i = 0; i < len; i += 8) {
            uint64_t v = rnd();
            memcpy(t->buf + i, &v, 8);
        }
        memcpy(shadow + t->req.off, t->buf, len);
    } else {
        t->expect = malloc(len);
        memcpy(t->expect, shadow + t->req.off, len);
        memset(t->buf, 0xee, len);
    }
    t->req.niov = split_iov(t->iov, t->buf, len);
    t->req.iov = t->iov;
    return t;
}

static void pump(struct aio_ctx *aio)
{
    struct pollfd p = { .fd = aio->efd, .events = POLLIN };

    aio_submit(aio);
    if (aio->inflight && poll(&p, 1, 10000) <= 0) {
        fprintf(stderr, "no completion within 10 s\n");
        exit(1);
    }
    aio_reap(aio);
}

int main(int argc, char **argv)
{
    struct image_open_opts o = { 0 };
    struct exec_opts xo = { 0 };
    unsigned ops = 2000, qd = 32;
    uint64_t maxlen = 256 * 1024;
    struct image *img;
    struct aio_ctx aio;
    struct executor *x;
    uint8_t *shadow;
    int c, r;

    rng_state = 0x9e3779b97f4a7c15u;
    while ((c = getopt(argc, argv, "n:q:s:m:dk:c:")) != -1) {
        switch (c) {
        case 'n': ops = (unsigned)atoi(optarg); break;
        case 'q': qd = (unsigned)atoi(optarg); break;
        case 's': rng_state = strtoull(optarg, NULL, 0) | 1; break;
        case 'm': maxlen = strtoull(optarg, NULL, 0); break;
        case 'd': o.direct = true; break;
        case 'c': o.l2_cache_bytes = strtoull(optarg, NULL, 0); break;
        case 'k': o.key = (const uint8_t *)optarg; o.key_len = strlen(optarg); break;
        default: return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: exec_random IMAGE SHADOW_OUT [options]\n");
        return 2;
    }
    if ((r = image_open(argv[optind], &o, &img)) < 0) {
        fprintf(stderr, "%s\n", qc_error_message(r));
        return 1;
    }
    shadow = malloc(img->size);
    if ((r = image_read(img, shadow, align_down(img->size, 512), 0)) < 0) {
        fprintf(stderr, "initial read: %s\n", qc_error_message(r));
        return 1;
    }
    if ((r = aio_ctx_init(&aio, 1024, 1024)) < 0 || (r = executor_new(img, &aio, &xo, &x)) < 0) {
        fprintf(stderr, "setup: %s\n", strerror(-r));
        return 1;
    }
    for (unsigned issued = 0; issued < ops || inflight > 0;) {
        while (issued < ops && inflight < qd) {
            inflight++;
            issued++;
            executor_submit(x, &make_req(shadow, align_down(img->size, 512), maxlen)->req);
        }
        pump(&aio);
    }
    /* A background writeback may still run: the executor must be idle. */
    while (!executor_idle(x))
        pump(&aio);
    uint64_t size = img->size;
    executor_free(x);
    aio_ctx_destroy(&aio);
    if ((r = image_close(img)) < 0) {
        fprintf(stderr, "close: %s\n", qc_error_message(r));
        return 1;
    }
    FILE *f = fopen(argv[optind + 1], "w");
    if (!f || fwrite(shadow, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write the shadow\n", argv[optind + 1]);
        return 1;
    }
    free(shadow);
    printf("%u requests, %u failures\n", completed, failures);
    return failures ? 1 : 0;
}
