#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"

ssize_t fdpass_send_some(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
                         int flags)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nfds > FDPASS_MAX)
        return -EINVAL;
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int fdpass_send(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    ssize_t n = fdpass_send_some(sock, buf, len, fds, nfds, 0);

    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EIO;
}

static unsigned take_fds(struct msghdr *msg, int *fds, unsigned max_fds)
{
    unsigned kept = 0;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (kept < max_fds)
                fds[kept++] = fd;
            else
                close(fd);
        }
    }
    return kept;
}

ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, unsigned max_fds, unsigned *nfds)
{
    return fdpass_recv_flags(sock, buf, len, 0, fds, max_fds, nfds);
}

ssize_t fdpass_recv_flags(int sock, void *buf, size_t len, int flags, int *fds, unsigned max_fds,
                          unsigned *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { buf, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    ssize_t n;

    do
        n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    *nfds = take_fds(&msg, fds, max_fds);
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
        for (unsigned i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return -EMSGSIZE;
    }
    return n;
}
