/* Talking to qcowd's control socket (doc/protocol.md), for
 * qcowring_connect and qcowring_attach: dialling, reading reply lines with
 * the descriptors that come with them, and error classes as errnos. */
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

static int dial_path(const char *path)
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
int control_read_line(int fd, char *buf, size_t cap, int *fds, unsigned *nfds)
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
int control_reply_status(const char *line)
{
    static const struct { const char *cls; int err; } classes[] = {
        { "NotFound", -ENOENT }, { "Busy", -EBUSY }, { "Locked", -EBUSY },
        { "PermissionDenied", -EACCES }, { "InvalidState", -EAGAIN },
        { "AlreadyExists", -EEXIST }, { "InvalidParameter", -EINVAL },
        { "LimitReached", -ENOSPC },
    };
    static const char prefix[] = "{\"error\":{\"class\":\"";

    if (strncmp(line, "{\"return\"", 9) == 0)
        return 0;
    if (strncmp(line, prefix, sizeof prefix - 1) != 0)
        return strncmp(line, "{\"error\"", 8) == 0 ? -EIO : -EPROTO;
    line += sizeof prefix - 1;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        size_t n = strlen(classes[i].cls);
        if (strncmp(line, classes[i].cls, n) == 0 && line[n] == '"')
            return classes[i].err;
    }
    return -EIO;
}

int control_dial(const char *socket_path)
{
    char path[108];
    int r;

    if (!socket_path) {
        if ((r = default_socket(path, sizeof path)) < 0)
            return r;
        socket_path = path;
    }
    return dial_path(socket_path);
}

bool control_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}
