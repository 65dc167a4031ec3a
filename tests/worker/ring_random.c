/* Random mixed I/O through a real worker and its shared-memory ring, with
 * libqcowring's asynchronous interface, checked against an in-memory shadow.
 * At the end the worker is stopped (or, with -K, a flush is completed and the
 * worker is killed with SIGKILL) and the shadow is written to SHADOW_OUT so
 * the calling script can compare the image with qemu-img.
 *
 * ring_random WORKER IMAGE SHADOW_OUT [-n OPS] [-q QD] [-s SEED] [-m MAXLEN]
 *             [-k KEY] [-w] [-K] [-f FORMAT]
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "worker_spawn.h"
#include "../lib/xorshift.h"

struct pending {
    int op;
    uint64_t off, len;
    uint8_t *expect;            /* reads: the shadow's bytes when issued */
};

static uint64_t rng = 0x9e3779b97f4a7c15u;
static unsigned failures;

static uint64_t rnd(void)
{
    return xorshift64(&rng);
}

static void fill_random(uint8_t *p, uint64_t len)
{
    for (uint64_t i = 0; i < len; i += 8) {
        uint64_t v = rnd();
        memcpy(p + i, &v, 8);
    }
}

static void check_completion(struct qcowring *ring, const struct qcowring_completion *c)
{
    struct pending *p = c->user_data;

    if (c->result != 0) {
        fprintf(stderr, "op %d at %" PRIu64 " len %" PRIu64 " failed: %s\n", p->op, p->off,
                p->len, strerror(-c->result));
        failures++;
    } else if (p->op == QCOWRING_OP_READ &&
               memcmp(qcowring_req_buf(c->req), p->expect, p->len) != 0) {
        const uint8_t *got = qcowring_req_buf(c->req);
        uint64_t i = 0;
        while (got[i] == p->expect[i])
            i++;
        fprintf(stderr, "read at %" PRIu64 " len %" PRIu64 ": mismatch at byte %" PRIu64 "\n",
                p->off, p->len, p->off + i);
        failures++;
    }
    qcowring_req_free(ring, c->req);
    free(p->expect);
    free(p);
}

static int reap_all(struct qcowring *ring)
{
    struct qcowring_completion c[64];
    int n, total = 0;

    while ((n = qcowring_reap(ring, c, 64)) > 0) {
        for (int i = 0; i < n; i++)
            check_completion(ring, &c[i]);
        total += n;
    }
    return n < 0 ? n : total;
}

/* Issue one random request; -EAGAIN when the ring has no room now. */
static int issue(struct qcowring *ring, uint8_t *shadow, uint64_t size, uint64_t maxlen)
{
    uint64_t roll = rnd() % 100, len = (rnd() % (maxlen / 512) + 1) * 512;
    struct pending *p = calloc(1, sizeof *p);
    struct qcowring_req *req;
    int r;

    len = len > size ? size : len;
    p->op = roll < 50 ? QCOWRING_OP_WRITE : roll < 95 ? QCOWRING_OP_READ
                                                       : QCOWRING_OP_FLUSH_DISKCACHE;
    p->off = (rnd() % ((size - len) / 512 + 1)) * 512;
    p->len = p->op == QCOWRING_OP_FLUSH_DISKCACHE ? 0 : len;
    if ((r = qcowring_req_alloc(ring, p->len, &req)) < 0) {
        free(p);
        return r;
    }
    if (p->op == QCOWRING_OP_WRITE) {
        fill_random(qcowring_req_buf(req), len);
        memcpy(shadow + p->off, qcowring_req_buf(req), len);
    } else if (p->op == QCOWRING_OP_READ) {
        p->expect = malloc(len);
        memcpy(p->expect, shadow + p->off, len);
        memset(qcowring_req_buf(req), 0xee, len);
    }
    return qcowring_submit(ring, req, p->op, p->op == QCOWRING_OP_FLUSH_DISKCACHE ? 0 : p->off,
                           p->len, p);
}

static int run(struct qcowring *ring, uint8_t *shadow, uint64_t size, unsigned ops, unsigned qd,
               uint64_t maxlen)
{
    unsigned issued = 0;
    int r;

    while (issued < ops || qcowring_in_flight(ring) > 0) {
        while (issued < ops && qcowring_in_flight(ring) < qd) {
            if ((r = issue(ring, shadow, size, maxlen)) == -EAGAIN)
                break;
            if (r < 0)
                return r;
            issued++;
        }
        if ((r = qcowring_wait(ring, 20000)) < 0)
            return r;
        if (r == 0 && qcowring_in_flight(ring) > 0)
            return -ETIMEDOUT;
        if ((r = reap_all(ring)) < 0)
            return r;
    }
    return 0;
}

static int write_file(const char *path, const uint8_t *data, uint64_t len)
{
    FILE *f = fopen(path, "w");

    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write\n", path);
        return -EIO;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct worker_spawn_opts so = { .stderr_fd = -1, .image_fd = -1 };
    unsigned ops = 2000, qd = 32;
    uint64_t maxlen = 256 * 1024;
    bool kill_after_flush = false;
    int client_spin = -1;
    struct qcowring_geometry g;
    struct worker_proc wp;
    struct qcowring *ring;
    uint8_t *shadow;
    uint64_t size;
    int c, r;

    while ((c = getopt(argc, argv, "n:q:s:m:k:wKf:p:S:")) != -1) {
        switch (c) {
        case 'n': ops = (unsigned)atoi(optarg); break;
        case 'q': qd = (unsigned)atoi(optarg); break;
        case 's': rng = strtoull(optarg, NULL, 0) | 1; break;
        case 'm': maxlen = strtoull(optarg, NULL, 0); break;
        case 'k': so.key = optarg; break;
        case 'w': so.writeback = true; break;
        case 'K': kill_after_flush = true; break;
        case 'f': so.format = optarg; break;
        case 'p': so.poll_us = (unsigned)atoi(optarg); break;
        case 'S': client_spin = atoi(optarg); break;
        default: return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "usage: ring_random WORKER IMAGE SHADOW_OUT [options]\n");
        return 2;
    }
    so.worker_path = argv[optind];
    so.image = argv[optind + 1];
    if ((r = worker_spawn(&so, 30000, &wp)) < 0) {
        fprintf(stderr, "spawn: %s\n", qc_error_message(r));
        return 1;
    }
    if ((r = qcowring_open_fds(wp.ring.memfd, wp.ring.req_eventfd, wp.ring.rsp_eventfd, &ring)) < 0) {
        fprintf(stderr, "open ring: %s\n", strerror(-r));
        return 1;
    }
    if (client_spin >= 0 && (r = qcowring_set_spin(ring, (unsigned)client_spin)) < 0) {
        fprintf(stderr, "set spin: %s\n", strerror(-r));
        return 1;
    }
    qcowring_get_geometry(ring, &g);
    size = g.capacity_sectors * 512;
    shadow = malloc(size);
    /* The starting contents, read through the ring itself. */
    if ((r = qcowring_pread(ring, shadow, size, 0)) < 0) {
        fprintf(stderr, "initial read: %s\n", strerror(-r));
        return 1;
    }
    if (maxlen > g.max_request_bytes)
        maxlen = g.max_request_bytes;
    r = run(ring, shadow, size, ops, qd, maxlen);
    if (r == 0 && kill_after_flush)
        r = qcowring_flush(ring);
    if (r < 0) {
        fprintf(stderr, "I/O: %s\n", strerror(-r));
        failures++;
    }
    qcowring_close(ring);
    if (kill_after_flush) {
        kill(wp.pid, SIGKILL);
        waitpid(wp.pid, NULL, 0);
        worker_proc_release(&wp);
    } else if ((r = worker_stop(&wp, 30000)) != 0) {
        fprintf(stderr, "worker exited with status %d\n", r);
        failures++;
    }
    if (write_file(argv[optind + 2], shadow, size) < 0)
        failures++;
    free(shadow);
    printf("%u requests, %u failures\n", ops, failures);
    return failures ? 1 : 0;
}
