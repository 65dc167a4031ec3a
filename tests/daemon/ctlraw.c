/* Send raw bytes to qcowd's control socket and print what comes back: for
 * tests that feed it broken input.
 *
 *   ctlraw SOCKET [REPLIES] < bytes
 *
 * Prints the greeting line, then sends stdin as it is (half-closing the
 * socket afterwards unless REPLIES is given), then prints reply lines until
 * REPLIES lines came (or end of stream, or 20 s of silence).  Exit 0 when
 * the connection behaved (greeting seen), 1 otherwise. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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

/* Print lines as they come; stop after `want` lines (0: until EOF). */
static long relay(int fd, long want)
{
    char buf[65536];
    long lines = 0;

    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 20000) <= 0)
            return lines;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return lines;
        fwrite(buf, 1, (size_t)n, stdout);
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
        fflush(stdout);
        if (want && lines >= want)
            return lines;
    }
}

static int send_stdin(int fd)
{
    char buf[65536];
    size_t n;

    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (send(fd, buf, n, MSG_NOSIGNAL) < 0)
            return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    long want = argc > 2 ? atol(argv[2]) : 0;
    int fd;

    if (argc < 2 || (fd = dial(argv[1])) < 0) {
        fprintf(stderr, "usage: ctlraw SOCKET [REPLIES] < bytes (cannot connect)\n");
        return 2;
    }
    if (relay(fd, 1) != 1)
        return 1;
    if (send_stdin(fd) < 0)
        fprintf(stderr, "ctlraw: the daemon closed the connection while we wrote\n");
    if (!want)
        shutdown(fd, SHUT_WR);
    relay(fd, want);
    close(fd);
    return 0;
}
