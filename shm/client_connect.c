/* qcowring_connect: get a ring from qcowd by image name.  The exchange is
 * the control protocol's "connect" command (doc/protocol.md); the reply
 * line carries the ring's three descriptors.  The memfd (an open file
 * description of our own) comes read-locked by qcowd, and the lock says we
 * are here, to a qcowd that adopts the worker after the one we asked has
 * died, for as long as we keep the ring mapped.  A qcowd older than that
 * offers "hold-lock" and leaves the lock to us: we promise it and keep it
 * (on a newer one, our read lock on our own description changes nothing). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "client_internal.h"

/* The ring's descriptors into fds; *hold_lock says whether we promised
 * the presence lock (a qcowd older than it does not take the promise). */
static int ask_for_ring(int fd, const char *name, int fds[3], bool *hold_lock)
{
    _cleanup_free_ char *line = malloc(CONTROL_LINE_MAX);
    _cleanup_(control_received_close) struct control_received got = { .n = 0 };
    unsigned caps = 0;
    char req[160];
    int r;

    if (!line)
        return -ENOMEM;
    if ((r = control_read_greeting(fd, line, &got, &caps)) < 0)
        return r;
    *hold_lock = caps & CONTROL_CAP_HOLD_LOCK;
    /* The name is checked: nothing in it needs escaping. */
    snprintf(req, sizeof req, "{\"execute\":\"connect\",\"arguments\":{\"name\":\"%s\"%s}}\n",
             name, *hold_lock ? ",\"hold-lock\":true" : "");
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

/* The memfd qcowd hands us is an open file description of our own:
 * read-locked at QCOWRING_CLIENT_LOCK_START for as long as we keep it. */
static int hold_presence_lock(int memfd)
{
    struct flock lock = {
        .l_type = F_RDLCK,
        .l_whence = SEEK_SET,
        .l_start = QCOWRING_CLIENT_LOCK_START,
        .l_len = QCOWRING_CLIENT_LOCK_LEN,
    };

    return fcntl(memfd, F_OFD_SETLK, &lock) < 0 ? -errno : 0;
}

int qcowring_connect(const char *socket_path, const char *name, struct qcowring **out)
{
    int fds[3] = { -1, -1, -1 }, fd, r;
    struct qcowring *ring = NULL;
    bool hold_lock = false;

    if (!name || !control_valid_name(name))
        return -EINVAL;
    if ((fd = control_dial(socket_path)) < 0)
        return fd;
    if ((r = ask_for_ring(fd, name, fds, &hold_lock)) < 0) {
        close(fd);
        return r;
    }
    r = qcowring_open_fds(fds[0], fds[1], fds[2], &ring);
    if (r == 0 && hold_lock) {
        if ((r = hold_presence_lock(fds[0])) == 0)
            ring->lock_fd = TAKE_FD(fds[0]);
        else
            qcowring_close(ring);       /* we promised the lock: no ring without it */
    }
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (r < 0) {
        close(fd);
        return r;
    }
    ring->owner_fd = fd;
    *out = ring;
    return 0;
}
