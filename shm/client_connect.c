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
#include "fdpass.h"

#define LINE_MAX_BYTES 65536
#define REPLY_TIMEOUT_MS 30000

static int default_socket(char *buf, size_t len)
{
    const char *env = getenv("QCOWD_SOCKET"), *dir = getenv("XDG_RUNTIME_DIR");
    int n;

    if (env && *env)
        n = snprintf(buf, len, "%s", env);
    else if (geteuid() == 0)
        n = snprintf(buf, len, "/run/qcowd/qcowd.sock");
    else if (dir && *dir)
        n = snprintf(buf, len, "%s/qcowd.sock", dir);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int dial(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof addr.sun_path)
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Read one line (and any descriptors that come with it) into buf. */
static int read_line(int fd, char *buf, size_t cap, int *fds, unsigned *nfds)
{
    size_t len = 0;

    *nfds = 0;
    while (len < cap - 1) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        unsigned got = 0;
        int r = poll(&p, 1, REPLY_TIMEOUT_MS);
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        /* One byte at a time keeps the next line in the socket. */
        ssize_t n = fdpass_recv(fd, buf + len, 1, fds + *nfds, 3 - *nfds, &got);
        if (n <= 0)
            return n == 0 ? -ECONNRESET : (int)n;
        *nfds += got;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return 0;
        }
        len++;
    }
    return -EMSGSIZE;
}

/* The error class of a reply line, mapped to an errno. */
static int reply_status(const char *line)
{
    static const struct { const char *cls; int err; } classes[] = {
        { "\"NotFound\"", -ENOENT }, { "\"Busy\"", -EBUSY },
        { "\"PermissionDenied\"", -EACCES }, { "\"InvalidState\"", -EAGAIN },
    };

    if (strncmp(line, "{\"return\"", 9) == 0)
        return 0;
    if (strncmp(line, "{\"error\"", 8) != 0)
        return -EPROTO;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (strstr(line, classes[i].cls))
            return classes[i].err;
    return -EIO;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int ask_for_ring(int fd, const char *name, int fds[3])
{
    char *line = malloc(LINE_MAX_BYTES), req[160];
    unsigned nfds = 0;
    int r;

    if (!line)
        return -ENOMEM;
    /* The greeting, or a refusal instead of it. */
    if ((r = read_line(fd, line, LINE_MAX_BYTES, fds, &nfds)) < 0)
        goto out;
    if (strncmp(line, "{\"QCOWD\"", 8) != 0) {
        r = reply_status(line) < 0 ? reply_status(line) : -EPROTO;
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
        if ((r = read_line(fd, line, LINE_MAX_BYTES, fds, &nfds)) < 0)
            goto out;
    } while (strncmp(line, "{\"event\"", 8) == 0);
    if ((r = reply_status(line)) == 0 && nfds != 3)
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
    char path[108];
    int fds[3], fd, r;

    if (!name || !valid_name(name))
        return -EINVAL;
    if (!socket_path) {
        if ((r = default_socket(path, sizeof path)) < 0)
            return r;
        socket_path = path;
    }
    if ((fd = dial(socket_path)) < 0)
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
