/* A stand-in for qcowd-worker that follows a plan: for tests of what qcowd
 * does when a worker dies at start-up or says things it should not.
 *
 *   qcowd --worker badworker ...
 *
 * Environment:
 *   BADWORKER_REAL  the real qcowd-worker
 *   BADWORKER_PLAN  a file of steps, one a line; every start of the worker
 *                   takes the first line away and follows it.  No plan, an
 *                   empty plan or another image's start: the real worker.
 *   BADWORKER_NAME  only starts of this image (its --name) follow the plan.
 *
 * Steps:
 *   real               run the real worker
 *   exit               exit 1 at once, without a word
 *   first TEXT         send TEXT as the first message, then wait to be killed
 *                      (or for qcowd to close the control socket)
 *   after-ready TEXT   run the real worker; once it has reported ready, send
 *                      TEXT to qcowd as if the worker had said it
 * TEXT is sent as it is (one message), or, written "big:N", as N bytes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"

#define MESSAGE_MAX (1 << 20)

static char step[4096];

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "badworker: %s: %s\n", what, strerror(errno));
    _exit(99);
}

/* Take the plan's first line into `step` (empty: none left). */
static void take_step(const char *plan)
{
    static char text[65536];
    int fd = open(plan, O_RDWR | O_CLOEXEC);
    ssize_t n;
    char *nl;

    step[0] = '\0';
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX) < 0 || (n = pread(fd, text, sizeof text - 1, 0)) < 0)
        fail(plan);
    text[n] = '\0';
    nl = strchr(text, '\n');
    snprintf(step, sizeof step, "%.*s", nl ? (int)(nl - text) : (int)n, text);
    nl = nl ? nl + 1 : text + n;
    if (ftruncate(fd, 0) < 0 || pwrite(fd, nl, strlen(nl), 0) < 0)
        fail(plan);
    close(fd);
}

static const char *option(int argc, char **argv, const char *name)
{
    size_t len = strlen(name);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=')
            return argv[i] + len + 1;
        if (strcmp(argv[i], name) == 0 && i + 1 < argc)
            return argv[i + 1];
    }
    return NULL;
}

static void send_text(int fd, const char *text)
{
    if (strncmp(text, "big:", 4) == 0) {
        size_t n = strtoul(text + 4, NULL, 10);
        char *big = malloc(n);
        if (!big)
            fail("malloc");
        memset(big, 'x', n);
        if (fdpass_send(fd, big, n, NULL, 0) < 0)
            fprintf(stderr, "badworker: qcowd did not take %zu bytes\n", n);
        free(big);
    } else if (fdpass_send(fd, text, strlen(text), NULL, 0) < 0) {
        fprintf(stderr, "badworker: qcowd did not take the message\n");
    }
}

/* Copy one message (and its descriptors) from one socket to the other.
 * False at the end of either. */
static bool pass_one(int from, int to, char *buf)
{
    int fds[FDPASS_MAX];
    unsigned nfds = 0;
    ssize_t n = fdpass_recv(from, buf, MESSAGE_MAX, fds, FDPASS_MAX, &nfds);
    bool ok = n > 0 && fdpass_send(to, buf, (size_t)n, fds, nfds) == 0;

    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    return ok;
}

/* Between qcowd and the real worker: everything passes, and after the
 * worker's first message, `text` too. */
static void relay(int qcowd, int worker, const char *text)
{
    char *buf = malloc(MESSAGE_MAX);
    bool said = false;

    if (!buf)
        fail("malloc");
    for (;;) {
        struct pollfd p[2] = { { .fd = qcowd, .events = POLLIN }, { .fd = worker, .events = POLLIN } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            fail("poll");
        if (p[0].revents && !pass_one(qcowd, worker, buf))
            break;
        if (p[1].revents) {
            if (!pass_one(worker, qcowd, buf))
                break;
            if (!said)
                send_text(qcowd, text);
            said = true;
        }
    }
    free(buf);
}

/* The real worker takes this process's place (so qcowd's kill hits it);
 * a child relays its control channel and dies with it. */
static void run_behind_relay(int argc, char **argv, int ctl_fd, const char *text)
{
    static char arg[64];
    pid_t parent = getpid();
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        fail("socketpair");
    switch (fork()) {
    case -1:
        fail("fork");
        break;
    case 0:
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        close(sv[0]);
        relay(ctl_fd, sv[1], text);
        _exit(0);
    }
    close(sv[1]);
    close(ctl_fd);
    fcntl(sv[0], F_SETFD, 0);
    snprintf(arg, sizeof arg, "--control-fd=%d", sv[0]);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--control-fd=", 13) == 0)
            argv[i] = arg;
}

int main(int argc, char **argv)
{
    const char *real = getenv("BADWORKER_REAL"), *plan = getenv("BADWORKER_PLAN");
    const char *only = getenv("BADWORKER_NAME"), *name = option(argc, argv, "--name");
    const char *ctl = option(argc, argv, "--control-fd");
    int ctl_fd = ctl ? atoi(ctl) : -1;

    if (!real) {
        fprintf(stderr, "badworker: set BADWORKER_REAL\n");
        return 99;
    }
    if (plan && (!only || (name && strcmp(name, only) == 0)))
        take_step(plan);
    if (strcmp(step, "exit") == 0)
        return 1;
    if (strncmp(step, "first ", 6) == 0) {
        struct pollfd p = { .fd = ctl_fd, .events = POLLIN };
        char byte;
        ssize_t n;
        send_text(ctl_fd, step + 6);
        /* Until qcowd kills us, or (the worst) goes away itself. */
        do {
            poll(&p, 1, -1);
            n = recv(ctl_fd, &byte, 1, MSG_DONTWAIT);
        } while (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)));
        return 1;
    }
    if (strncmp(step, "after-ready ", 12) == 0 && ctl_fd >= 0)
        run_behind_relay(argc, argv, ctl_fd, step + 12);
    argv[0] = (char *)real;
    execv(real, argv);
    fail(real);
}
