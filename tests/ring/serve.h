/* A test back end: ring_server + fake_disk, stepped or looping on the doorbell. */
#ifndef QCOWD_RING_TEST_SERVE_H
#define QCOWD_RING_TEST_SERVE_H

#include "daemon/worker/ring_server.h"
#include "fake_disk.h"
#include "qcowring-client.h"

struct test_server {
    struct ring_server *rs;
    struct fake_disk *disk;
    void *base;
    size_t size;
    int req_fd;
    unsigned seed;                  /* shuffles the completion order */
};

/* Map fds.memfd and start a ring_server with the geometry of params, its
 * indices starting at start_index (0 for a fresh ring). */
int test_server_open(struct test_server *ts, const struct qcowring_fds *fds,
                     const struct qcowring_params *params, struct fake_disk *disk,
                     uint32_t start_index);
void test_server_close(struct test_server *ts);

/* Take every pending request, serve them in a random order, respond; arm the
 * event index when nothing is left.  Returns how many were served, or -errno
 * (-EPROTO: the ring is broken). */
int test_server_step(struct test_server *ts);

/* Serve until stop_fd becomes readable or hangs up. */
int test_server_run(struct test_server *ts, int stop_fd);

void test_geometry_from_params(struct ring_server_geometry *g, const struct qcowring_params *p);

#endif
