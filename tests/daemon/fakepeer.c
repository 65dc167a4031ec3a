/* A hostile "orphaned worker" at a rendezvous (doc/restart.md):
 *
 *   fakepeer PATH FILE
 *
 * binds and listens at PATH, accepts one connection, answers with a
 * well-formed "ready" event carrying a ring (memfd, two eventfds), a
 * journal (memfd) and FILE opened read-write as "the image", then waits
 * for the peer to hang up (or to say anything) and exits 0.  qcowd must
 * refuse to adopt it when FILE is not the recorded image.
 *
 *   fakepeer --silent LOG PATH
 *
 * a worker that hangs: binds and listens at PATH, accepts one connection,
 * appends "fakepeer PATH: met" to LOG (opened O_APPEND, so that its line
 * falls in order among those of whoever else appends there), says nothing,
 * and exits 0 once the peer hangs up (or says anything). */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"

static const char ready[] =
    "{\"event\":\"ready\",\"data\":{\"size\":8388608,\"format\":\"raw\",\"cluster-size\":0,"
    "\"encrypted\":false,\"read-only\":false,\"chain\":[{\"filename\":\"x\",\"format\":\"raw\","
    "\"virtual-size\":8388608}],\"capacity-sectors\":16384,\"features\":0,"
    "\"ring-page-order\":0,\"data-pages\":64,\"max-indirect-segments\":0,\"paused\":false}}";

/* Room for path and its ".new" in a socket address. */
static bool path_fits(const char *path)
{
    struct sockaddr_un sa;

    return strlen(path) + 4 < sizeof sa.sun_path;
}

/* Listening before path appears: whoever waits for path may connect. */
static int accept_at(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), fd;

    snprintf(sa.sun_path, sizeof sa.sun_path, "%s.new", path);
    unlink(sa.sun_path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1) < 0 ||
        rename(sa.sun_path, path) < 0 || (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        perror("fakepeer: rendezvous");
        return -1;
    }
    return fd;
}

static int hang(const char *log, const char *path)
{
    char buf[256];
    int fd = accept_at(path), logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0 || logfd < 0 || dprintf(logfd, "fakepeer %s: met\n", path) < 0) {
        perror("fakepeer: --silent");
        return 1;
    }
    (void)!read(fd, buf, sizeof buf);
    return 0;
}

int main(int argc, char **argv)
{
    int fd, fds[5];
    char buf[256];

    if (argc == 4 && strcmp(argv[1], "--silent") == 0 && path_fits(argv[3]))
        return hang(argv[2], argv[3]);
    if (argc != 3 || !path_fits(argv[1])) {
        fprintf(stderr, "usage: fakepeer PATH FILE | fakepeer --silent LOG PATH\n");
        return 2;
    }
    fds[0] = memfd_create("fake-ring", MFD_CLOEXEC);
    fds[1] = eventfd(0, EFD_CLOEXEC);
    fds[2] = eventfd(0, EFD_CLOEXEC);
    fds[3] = memfd_create("fake-journal", MFD_CLOEXEC);
    fds[4] = open(argv[2], O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 5; i++)
        if (fds[i] < 0) {
            perror("fakepeer: descriptors");
            return 1;
        }
    if ((fd = accept_at(argv[1])) < 0)
        return 1;
    if (fdpass_send(fd, ready, strlen(ready), fds, 5) < 0) {
        fprintf(stderr, "fakepeer: cannot send\n");
        return 1;
    }
    (void)!read(fd, buf, sizeof buf);
    return 0;
}
