/* A blkfront-style test client built only from Xen's public headers.  This
 * interface uses plain C types so that the Xen headers stay in xen_client.c
 * and qcowd's headers stay out of it. */
#ifndef QCOWD_XEN_CLIENT_H
#define QCOWD_XEN_CLIENT_H

#include <stdint.h>

struct xen_env {
    uint8_t *mem;            /* the client's mapping of the whole memfd */
    int req_fd;              /* doorbell to the server */
    int rsp_fd;              /* doorbell from the server */
    uint32_t start_index;    /* ring indices start here (wrap tests) */
    unsigned rounds;         /* batches of random direct requests */
    /* Run the server once: read its doorbell, take and serve everything. */
    int (*serve)(void *opaque);
    void *opaque;
};

/* Drive the ring; 0 on success, otherwise the failing source line. */
int xen_client_run(const struct xen_env *env);

#endif
