#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

#define MAX_KEEP 16

static int max3(int a, int b, int c)
{
    return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

static int int_cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Close every descriptor from 3 up but those in keep (sorted). */
static void close_all_but(const int *keep, unsigned n)
{
    unsigned lo = 3;

    for (unsigned i = 0; i < n; i++) {
        if ((unsigned)keep[i] < lo)
            continue;
        if ((unsigned)keep[i] > lo && close_range(lo, (unsigned)keep[i] - 1, 0) < 0)
            goto no_close_range;
        lo = (unsigned)keep[i] + 1;
    }
    if (close_range(lo, ~0u, 0) == 0)
        return;
no_close_range:
    for (int fd = 3; fd < 65536; fd++) {
        bool kept = false;
        for (unsigned i = 0; i < n; i++)
            kept |= keep[i] == fd;
        if (!kept)
            close(fd);
    }
}

/* Put the given descriptors at their numbers (through copies above every
 * number involved, so that none overwrites another), the report pipe above
 * them all; then close the rest. */
static int arrange_fds(const struct spawn_opts *o, int *report)
{
    int tmp[MAX_KEEP], keep[MAX_KEEP + 1], high = *report;
    unsigned n = 0;

    for (unsigned i = 0; i < o->nfds; i++)
        high = max3(high, o->fds[i].fd, o->fds[i].target);
    high++;
    if ((*report = fcntl(*report, F_DUPFD_CLOEXEC, high)) < 0)
        return errno;
    high = *report + 1;
    for (unsigned i = 0; i < o->nfds; i++)
        if ((tmp[i] = fcntl(o->fds[i].fd, F_DUPFD_CLOEXEC, high)) < 0)
            return errno;
    for (unsigned i = 0; i < o->nfds; i++) {
        int target = o->fds[i].target >= 0 ? o->fds[i].target : o->fds[i].fd;
        /* dup2 onto another number clears close-on-exec; onto itself not. */
        if (dup2(tmp[i], target) < 0 || fcntl(target, F_SETFD, 0) < 0)
            return errno;
        if (target > 2)
            keep[n++] = target;
    }
    keep[n++] = *report;
    qsort(keep, n, sizeof keep[0], int_cmp);
    close_all_but(keep, n);
    return 0;
}

/* The child reports one byte, CLEAN or FAILED (then an errno); after CLEAN,
 * the exec closes the pipe, or a failed exec writes its errno. */
#define CLEAN 'c'
#define FAILED 'f'

static void child(const struct spawn_opts *o, int report)
{
    sigset_t none;
    int err = arrange_fds(o, &report);

    /* Now nothing of ours but what it was given: let the parent go on. */
    if (err == 0 && write(report, &(char){ CLEAN }, 1) == 1) {
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (o->prepare)
            o->prepare(o->opaque);
        if (strchr(o->path, '/'))
            execv(o->path, o->argv);
        else
            execvp(o->path, o->argv);
        err = errno;
    } else {
        (void)!write(report, &(char){ FAILED }, 1);
    }
    (void)!write(report, &err, sizeof err);
    _exit(127);
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : (ssize_t)got;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* 0 once the child has exec'ed, else the errno it reported. */
static int child_status(int fd)
{
    char state = 0;
    int err = 0;

    if (read_full(fd, &state, 1) != 1 || (state != CLEAN && state != FAILED))
        return ECHILD;
    if (read_full(fd, &err, sizeof err) == 0 && state == CLEAN)
        return 0;
    return err > 0 ? err : ECHILD;
}

pid_t spawn_clean(const struct spawn_opts *o)
{
    int p[2], err;
    pid_t pid;

    if (o->nfds > MAX_KEEP)
        return -E2BIG;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid == 0)
        child(o, p[1]);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -errno;
    }
    err = child_status(p[0]);
    close(p[0]);
    if (err) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -err;
    }
    return pid;
}
