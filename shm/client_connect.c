/* qcowring_connect: get a ring from qcowd by image name.  The exchange is
 * the control protocol's "connect" command (doc/protocol.md); the reply
 * line carries the ring's three descriptors. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_internal.h"

static int ask_for_ring(int fd, const char *name, int fds[3])
{
    char *line = malloc(CONTROL_LINE_MAX), req[160];
    unsigned nfds = 0;
    int r;

    if (!line)
        return -ENOMEM;
    /* The greeting, or a refusal instead of it. */
    if ((r = control_read_line(fd, line, CONTROL_LINE_MAX, fds, &nfds)) < 0)
        goto out;
    if (strncmp(line, "{\"QCOWD\"", 8) != 0) {
        r = control_reply_status(line) < 0 ? control_reply_status(line) : -EPROTO;
        goto out;
    }
    snprintf(req, sizeof req, "{\"execute\":\"connect\",\"arguments\":{\"name\":\"%s\"}}\n", name);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        r = -errno;
        goto out;
    }
    /* Skip events until the reply. */
    do {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        if ((r = control_read_line(fd, line, CONTROL_LINE_MAX, fds, &nfds)) < 0)
            goto out;
    } while (strncmp(line, "{\"event\"", 8) == 0);
    if ((r = control_reply_status(line)) == 0 && nfds != 3)
        r = -EPROTO;
out:
    if (r < 0)
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
    free(line);
    return r;
}

int qcowring_connect(const char *socket_path, const char *name, struct qcowring **out)
{
    int fds[3], fd, r;

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
