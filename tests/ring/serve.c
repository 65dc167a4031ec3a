/* A test back end: ring_server + fake_disk. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "serve.h"

void test_geometry_from_params(struct ring_server_geometry *g, const struct qcowring_params *p)
{
    memset(g, 0, sizeof(*g));
    g->capacity_sectors = p->capacity_sectors;
    g->features = p->features | QCOWRING_F_PERSISTENT;
    g->ring_page_order = p->ring_page_order;
    g->data_pages = p->data_pages;
    g->max_indirect_segments = p->max_indirect_segments;
}

int test_server_open(struct test_server *ts, const struct qcowring_fds *fds,
                     const struct qcowring_params *params, struct fake_disk *disk,
                     uint32_t start_index)
{
    struct ring_server_config cfg;
    int err;

    memset(ts, 0, sizeof(*ts));
    memset(&cfg, 0, sizeof(cfg));
    test_geometry_from_params(&cfg.geo, params);
    err = ring_server_map(fds->memfd, &cfg.geo, &ts->base, &ts->size);
    if (err)
        return err;
    cfg.base = ts->base;
    cfg.map_size = ts->size;
    cfg.start_index = start_index;
    cfg.req_eventfd = fds->req_eventfd;
    cfg.rsp_eventfd = fds->rsp_eventfd;
    ts->disk = disk;
    ts->req_fd = fds->req_eventfd;
    ts->seed = 12345;
    return ring_server_new(&cfg, &ts->rs);
}

void test_server_close(struct test_server *ts)
{
    ring_server_free(ts->rs);
    if (ts->base)
        munmap(ts->base, ts->size);
    memset(ts, 0, sizeof(*ts));
}

static void shuffle(struct ring_io **ios, unsigned n, unsigned *seed)
{
    for (unsigned i = n; i > 1; i--) {
        unsigned j = (unsigned)rand_r(seed) % i;
        struct ring_io *t = ios[i - 1];
        ios[i - 1] = ios[j];
        ios[j] = t;
    }
}

static int serve_all(struct test_server *ts, struct ring_io **ios, unsigned n)
{
    shuffle(ios, n, &ts->seed);
    for (unsigned i = 0; i < n; i++) {
        int err = ring_server_respond_deferred(ts->rs, ios[i], fake_disk_serve(ts->disk, ios[i]));
        if (err)
            return err;
    }
    return ring_server_push_responses(ts->rs);
}

int test_server_step(struct test_server *ts)
{
    unsigned cap = ring_server_ring_size(ts->rs);
    struct ring_io **ios = calloc(cap, sizeof(*ios));
    unsigned total = 0, held = 0;
    int n, err = 0;

    if (!ios)
        return -ENOMEM;
    for (;;) {
        n = ring_server_poll_requests(ts->rs, ios + held, cap - held);
        if (n < 0) {
            err = n;
            break;
        }
        held += (unsigned)n;
        if (held == cap || (n == 0 && !ring_server_final_check(ts->rs))) {
            err = serve_all(ts, ios, held);
            total += held;
            if (err || held < cap)
                break;
            held = 0;
        }
    }
    free(ios);
    return err ? err : (int)total;
}

/* As the worker does: the request doorbell is watched edge-triggered and
 * never read (ring_server.h). */
static int serve_loop(struct test_server *ts, int ep, int stop_fd)
{
    struct epoll_event ev[2];

    for (;;) {
        int n = epoll_wait(ep, ev, 2, -1), err;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        for (int i = 0; i < n; i++)
            if (ev[i].data.fd == stop_fd)
                return 0;
        if ((err = test_server_step(ts)) < 0)
            return err;
    }
}

int test_server_run(struct test_server *ts, int stop_fd)
{
    struct epoll_event req = { .events = EPOLLIN | EPOLLET, .data.fd = ts->req_fd };
    struct epoll_event stop = { .events = EPOLLIN, .data.fd = stop_fd };
    int ep = epoll_create1(EPOLL_CLOEXEC), err;

    if (ep < 0)
        return -errno;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ts->req_fd, &req) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &stop) < 0)
        err = -errno;
    else
        err = serve_loop(ts, ep, stop_fd);
    close(ep);
    return err;
}
