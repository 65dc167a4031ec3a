/* Control clients that misbehave, for tests of how qcowd copes with them.
 *
 *   ctlhog SOCKET N [LINE COUNT]
 *       N connections that never read.  Without LINE they never send
 *       either; with it, each sends LINE COUNT times (until qcowd takes
 *       nothing more for 2 s).  Prints "ready" once they are all set up,
 *       holds them until stdin ends, then prints "closed K": how many of
 *       them qcowd had closed.
 *
 *   ctlhog SOCKET pipeline NAME COUNT
 *       One connection that asks COUNT queries of image NAME and then
 *       connects to its ring, all before reading anything; waits until
 *       qcowd's answers fill the socket, then reads them all.  Exit 0 when
 *       every answer came and the ring's three descriptors came with the
 *       connect answer (not before it, and a usable memfd).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_MS 30000

static int dial(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send LINE COUNT times, as fast as qcowd takes it; stop when it takes
 * nothing for 2 s or has closed the connection. */
static void flood(int fd, const char *line, long count)
{
    size_t len = strlen(line) + 1, total = len * (size_t)count, off = 0;
    char *buf = malloc(total ? total : 1);

    if (!buf)
        return;
    for (long i = 0; i < count; i++) {
        memcpy(buf + i * len, line, len - 1);
        buf[i * len + len - 1] = '\n';
    }
    while (off < total) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        ssize_t n = send(fd, buf + off, total - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n == 0 || errno != EAGAIN || poll(&p, 1, 2000) <= 0)
            break;
    }
    free(buf);
}

/* Closed by the other end: everything it sent can be read, then EOF. */
static bool closed_by_peer(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        ;
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int hog(const char *path, long n, const char *line, long count)
{
    int *fds = calloc((size_t)n, sizeof *fds);
    char buf[64];
    long closed = 0;

    if (!fds)
        return 2;
    for (long i = 0; i < n; i++) {
        if ((fds[i] = dial(path)) < 0) {
            fprintf(stderr, "ctlhog: connection %ld: %s\n", i, strerror(errno));
            free(fds);
            return 1;
        }
        if (line)
            flood(fds[i], line, count);
    }
    printf("ready\n");
    fflush(stdout);
    while (fread(buf, 1, sizeof buf, stdin) > 0)
        ;
    for (long i = 0; i < n; i++) {
        closed += closed_by_peer(fds[i]);
        close(fds[i]);
    }
    free(fds);
    printf("closed %ld\n", closed);
    return 0;
}

static long pending_bytes(int fd)
{
    int n = 0;

    return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/* Read one line; the descriptors that come with any of its bytes are
 * added to fds.  Returns the line's length, 0 at the end, -1 on error. */
static long read_line(int fd, char *line, size_t cap, int *fds, unsigned *nfds)
{
    size_t len = 0;

    while (len < cap - 1) {
        union {
            char buf[CMSG_SPACE(sizeof(int) * 8)];
            struct cmsghdr align;
        } control;
        struct iovec iov = { line + len, 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof control.buf };
        ssize_t r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (r <= 0)
            return r;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k && *nfds < 8; i++)
                memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if (line[len++] == '\n')
            break;
    }
    line[len] = '\0';
    return (long)len;
}

static int pipeline(const char *path, const char *name, long count)
{
    static char line[1 << 20];
    int fd = dial(path), fds[8];
    unsigned nfds = 0;
    char req[256];
    long answers = 0;
    struct stat st;

    if (fd < 0 || read_line(fd, line, sizeof line, fds, &nfds) <= 0 || nfds) {
        fprintf(stderr, "ctlhog: no greeting\n");
        return 1;
    }
    snprintf(req, sizeof req, "{\"execute\":\"query\",\"arguments\":{\"name\":\"%s\"}}", name);
    flood(fd, req, count);
    snprintf(req, sizeof req, "{\"execute\":\"connect\",\"arguments\":{\"name\":\"%s\"},\"id\":\"c\"}\n",
             name);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
        return 1;
    /* Until qcowd has filled the socket: the rest waits in its queue. */
    for (int waited = 0; pending_bytes(fd) < 32768 && waited < WAIT_MS; waited += 10)
        usleep(10000);
    for (;;) {
        long n = read_line(fd, line, sizeof line, fds, &nfds);
        if (n <= 0) {
            fprintf(stderr, "ctlhog: connection ended after %ld answers\n", answers);
            return 1;
        }
        if (strstr(line, "\"id\":\"c\""))
            break;
        if (nfds) {
            fprintf(stderr, "ctlhog: descriptors came before the connect answer\n");
            return 1;
        }
        answers++;
    }
    if (answers != count || nfds != 3 || !strstr(line, "\"return\"")) {
        fprintf(stderr, "ctlhog: %ld of %ld answers, %u descriptors with the connect answer: %.200s\n",
                answers, count, nfds, line);
        return 1;
    }
    if (fstat(fds[0], &st) < 0 || st.st_size < 4096 || !(fcntl(fds[0], F_GET_SEALS) & F_SEAL_SHRINK)) {
        fprintf(stderr, "ctlhog: the first descriptor is not the ring's memfd\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[2], "pipeline") == 0)
        return pipeline(argv[1], argv[3], atol(argv[4]));
    if (argc == 3 || argc == 5)
        return hog(argv[1], atol(argv[2]), argc == 5 ? argv[3] : NULL, argc == 5 ? atol(argv[4]) : 0);
    fprintf(stderr, "usage: ctlhog SOCKET N [LINE COUNT] | ctlhog SOCKET pipeline NAME COUNT\n");
    return 2;
}
