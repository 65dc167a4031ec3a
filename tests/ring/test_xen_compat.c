/* Xen compatibility: a front end built only from Xen's public headers
 * (xen_client.c) drives ring_server + an in-memory disk through a ring made
 * by qcowring_create(): reads, writes, flushes, barriers, discards and
 * indirect requests, with the data checked, from index 0 and across the
 * u32 wrap of the indices. */
#include "config.h"

#include <string.h>
#include <sys/mman.h>

#include "qcowring-client.h"
#include "ring_test.h"
#include "serve.h"
#include "xen_client.h"

static int serve_once(void *opaque)
{
    struct test_server *ts = opaque;

    return test_server_step(ts);
}

/* SHARED_RING_INIT at another index, as a creator attaching there would. */
static void move_indices(uint8_t *mem, uint32_t start)
{
    struct qcowring_sring *s = (struct qcowring_sring *)(mem + QCOWRING_RING_OFFSET);

    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
}

static void check_stats(const struct test_server *ts)
{
    struct ring_server_stats st;

    ring_server_get_stats(ts->rs, &st);
    CHECK(!st.broken);
    CHECK_EQ(st.bad_requests, 5);
    CHECK_EQ(st.bad[RING_BAD_OPCODE], 2);
    CHECK_EQ(st.bad[RING_BAD_RANGE], 1);
    CHECK_EQ(st.bad[RING_BAD_SEGMENT_COUNT], 1);
    CHECK_EQ(st.bad[RING_BAD_PAGE], 1);
    CHECK_EQ(st.responses, st.requests + st.bad_requests);
    CHECK_EQ(ring_server_in_flight(ts->rs), 0);
}

static void run(uint32_t start, unsigned rounds)
{
    struct qcowring_params p = {
        .capacity_sectors = 8192, .ring_page_order = 1, .data_pages = 2048,
        .features = QCOWRING_F_FLUSH | QCOWRING_F_BARRIER | QCOWRING_F_DISCARD |
                    QCOWRING_F_INDIRECT,
        .max_indirect_segments = 1024,
    };
    size_t size = qcowring_total_size(p.ring_page_order, p.data_pages);
    struct qcowring_fds fds;
    struct test_server ts;
    struct fake_disk disk;
    struct xen_env env;
    uint8_t *mem;
    int line;

    CHECK_EQ(qcowring_create(&p, &fds), 0);
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds.memfd, 0);
    CHECK(mem != MAP_FAILED);
    if (start)
        move_indices(mem, start);
    CHECK_EQ(fake_disk_init(&disk, p.capacity_sectors * 512, 1), 0);
    CHECK_EQ(test_server_open(&ts, &fds, &p, &disk, start), 0);
    memset(&env, 0, sizeof(env));
    env = (struct xen_env){ .mem = mem, .req_fd = fds.req_eventfd, .rsp_fd = fds.rsp_eventfd,
                            .start_index = start, .rounds = rounds, .serve = serve_once,
                            .opaque = &ts };
    line = xen_client_run(&env);
    if (line)
        fprintf(stderr, "xen_client.c:%d: check failed (start index %u)\n", line, start);
    CHECK_EQ(line, 0);
    check_stats(&ts);
    CHECK(disk.flushes == 1 && disk.barriers == 1 && disk.discards == 1);
    test_server_close(&ts);
    fake_disk_destroy(&disk);
    munmap(mem, size);
    qcowring_close_fds(&fds);
}

int main(void)
{
#ifndef HAVE_XEN_IO_BLKIF_H
    fprintf(stderr, "Xen public headers (libxen-dev) not found: skipped\n");
    return TEST_SKIP;
#else
    run(0, 200);
    run(0xffffff00u, 100);
    return 0;
#endif
}
