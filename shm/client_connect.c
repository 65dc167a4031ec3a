/* qcowring_connect: get a ring from qcowd by image name.  The exchange is
 * the control protocol's "connect" command (doc/protocol.md); the reply
 * line carries the ring's three descriptors. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "client_internal.h"

static int ask_for_ring(int fd, const char *name, int fds[3])
{
    _cleanup_free_ char *line = malloc(CONTROL_LINE_MAX);
    _cleanup_(control_received_close) struct control_received got = { .n = 0 };
    char req[160];
    int r;

    if (!line)
        return -ENOMEM;
    if ((r = control_read_greeting(fd, line, &got)) < 0)
        return r;
    /* The name is checked: nothing in it needs escaping. */
    snprintf(req, sizeof req, "{\"execute\":\"connect\",\"arguments\":{\"name\":\"%s\"}}\n", name);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
        return -errno;
    if ((r = control_read_reply(fd, line, &got)) < 0)
        return r;
    if (got.n != 3)
        return -EPROTO;
    memcpy(fds, got.fds, sizeof got.fds);
    got.n = 0;
    return 0;
}

int qcowring_connect(const char *socket_path, const char *name, struct qcowring **out)
{
    int fds[3] = { -1, -1, -1 }, fd, r;

    if (!name || !control_valid_name(name))
        return -EINVAL;
    if ((fd = control_dial(socket_path)) < 0)
        return fd;
    if ((r = ask_for_ring(fd, name, fds)) < 0) {
        close(fd);
        return r;
    }
    r = qcowring_open_fds(fds[0], fds[1], fds[2], out);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    if (r < 0) {
        close(fd);
        return r;
    }
    (*out)->owner_fd = fd;
    return 0;
}
