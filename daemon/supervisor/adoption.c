/* Adopting the running workers of a qcowd that died (doc/restart.md).
 *
 * With a state file, each attachment has a rendezvous: a SOCK_SEQPACKET
 * socket we bind in a 0700 directory beside the state file, recorded there,
 * and hand to each of its workers, which listen on it.  A worker whose
 * channel to us closes serves on, and takes one connection there from
 * qcowd's user.  A new qcowd connects, checks the peer (SO_PEERCRED: the
 * listener's pid, which must be the recorded worker's, and our uid), and
 * gets "ready" again with the descriptors it keeps: the ring's memfd and
 * eventfds, the journal and the image's locked descriptor.  All of it is
 * checked as anything a worker says is (the worker parses hostile images);
 * the image descriptor must be the file the recorded path names now.
 *
 * Every recorded worker is met first, and the answers are awaited after,
 * against one deadline: workers that do not answer cost ADOPT_ANSWER_MS
 * together, not each. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "attachment_internal.h"
#include "fdpass.h"
#include "json_read.h"
#include "log.h"

#define ADOPT_MESSAGE_MAX 65536
_Static_assert(ADOPT_ANSWER_MS == 5000, "take_ready's message says 5 s");

/* ---- the rendezvous ---------------------------------------------------- */

static int rendezvous_dir(const struct supervisor *s, char *dir, size_t len)
{
    struct stat st;

    if (snprintf(dir, len, "%s.rendezvous", s->state_path) >= (int)len)
        return -ENAMETOOLONG;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    if (lstat(dir, &st) < 0)
        return -errno;
    /* Whoever can connect there could pose as a new qcowd to an orphan. */
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
        return -EPERM;
    return 0;
}

static int bind_rendezvous(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    unlink(path);               /* a dead worker's */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

void rendezvous_ensure(struct supervisor *s, struct attachment *att)
{
    char dir[PATH_MAX], *path = NULL;
    int r, fd = -1;

    if (s->orphan_wait_s == 0 || !s->state_path || att->rendezvous_fd >= 0)
        return;
    if ((r = rendezvous_dir(s, dir, sizeof dir)) == 0 &&
        (r = asprintf(&path, "%s/%s", dir, att->name) < 0 ? -ENOMEM : 0) == 0 &&
        (fd = bind_rendezvous(path)) >= 0) {
        free(att->rendezvous_path);     /* an adopted worker's, gone: the same path */
        att->rendezvous_fd = fd;
        att->rendezvous_path = path;
        return;
    }
    if (r == 0)
        r = fd;
    log_warning("%s: no rendezvous for its worker (%s/%s: %s): it will not be adopted after "
                "a crash of qcowd", att->name, dir, att->name,
                r == -EPERM ? "the directory must be ours and mode 0700" : strerror(-r));
    free(path);
}

void rendezvous_release(struct attachment *att)
{
    if (att->rendezvous_fd >= 0)
        close(att->rendezvous_fd);
    att->rendezvous_fd = -1;
    if (att->rendezvous_path)
        unlink(att->rendezvous_path);
    free(att->rendezvous_path);
    att->rendezvous_path = NULL;
}

/* ---- meeting an orphan ---------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void adoption_close(struct adoption *a)
{
    close_fd(&a->ctl_fd);
    close_fd(&a->image_fd);
    close_fd(&a->journal_fd);
    qcowring_close_fds(&a->ring);
    json_object_put(a->info);
    a->info = NULL;
}

void adoption_free(struct adoption *a)
{
    if (!a)
        return;
    adoption_close(a);
    free(a);
}

void adoption_refuse(struct adoption *a)
{
    static const char stop[] = "{\"execute\":\"stop\",\"id\":1}";

    /* A genuine worker finishes, flushes and exits: the image is free for a
     * fresh attach.  Anything else just loses its peer. */
    if (a->ctl_fd >= 0)
        fdpass_send(a->ctl_fd, stop, sizeof stop - 1, NULL, 0);
    adoption_close(a);
}

static int connect_rendezvous(const char *path, int *out)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* Non-blocking: a full backlog (someone else is there) is an error,
     * not a wait. */
    if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

static bool fd_is_memfd(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fcntl(fd, F_GET_SEALS) >= 0;
}

static bool fd_is_eventfd(int fd)
{
    char proc[40], link[64];
    ssize_t n;

    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    n = readlink(proc, link, sizeof link - 1);
    if (n <= 0)
        return false;
    link[n] = '\0';
    return strcmp(link, "anon_inode:[eventfd]") == 0;
}

static const char *check_fds(const int *fds, unsigned nfds)
{
    struct stat st;

    if (nfds != 5)
        return "it sent no image descriptor with its ready message";
    if (!fd_is_memfd(fds[0]) || !fd_is_memfd(fds[3]))
        return "its ring or journal is not a memfd";
    if (!fd_is_eventfd(fds[1]) || !fd_is_eventfd(fds[2]))
        return "its doorbells are not eventfds";
    if (fstat(fds[4], &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
        return "its image descriptor is not a file or block device";
    return NULL;
}

/* Milliseconds from now to deadline_ns (0 once it has passed). */
static int ms_until(uint64_t deadline_ns)
{
    uint64_t now = mono_ns();

    return deadline_ns > now ? (int)((deadline_ns - now + 999999) / 1000000) : 0;
}

/* The ready message: its info checked, its descriptors taken. */
static const char *take_ready(struct adoption *a, uint64_t deadline_ns)
{
    struct pollfd p = { .fd = a->ctl_fd, .events = POLLIN };
    char *buf = malloc(ADOPT_MESSAGE_MAX + 1);
    int fds[FDPASS_MAX];
    unsigned nfds = 0;
    json_object *msg = NULL, *data;
    const char *event, *wrong = NULL;
    ssize_t n;
    int r;

    if (!buf)
        return "out of memory";
    while ((r = poll(&p, 1, ms_until(deadline_ns))) < 0 && errno == EINTR)
        ;
    if (r <= 0) {
        free(buf);
        return "it did not answer within 5 s";
    }
    n = fdpass_recv(a->ctl_fd, buf, ADOPT_MESSAGE_MAX, fds, FDPASS_MAX, &nfds);
    if (n > 0)
        msg = json_read_message(buf, (size_t)n);
    free(buf);
    data = json_read_object(msg, "data");
    event = json_read_string(msg, "event");
    if (n <= 0)
        wrong = "it closed the connection without a word";
    else if (!msg || !event || strcmp(event, "ready") != 0 || !data)
        wrong = "its first message is not a ready event";
    else if (!(a->info = worker_checked_info(data)))
        wrong = "its ready message is malformed";
    else if (!json_read_bool(data, "paused", &a->paused))
        wrong = "its ready message does not say whether it is paused";
    else
        wrong = check_fds(fds, nfds);
    json_object_put(msg);
    if (wrong) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        return wrong;
    }
    a->ring = (struct qcowring_fds){ fds[0], fds[1], fds[2] };
    a->journal_fd = fds[3];
    a->image_fd = fds[4];
    return NULL;
}

int adoption_connect(const char *path, pid_t pid, struct adoption *a, char *why, size_t len)
{
    struct ucred cred;
    socklen_t clen = sizeof cred;
    int r;

    *a = (struct adoption){ .ctl_fd = -1, .image_fd = -1, .journal_fd = -1,
                            .ring = { -1, -1, -1 } };
    if ((r = connect_rendezvous(path, &a->ctl_fd)) < 0) {
        snprintf(why, len, "%s: %s", path,
                 r == -ECONNREFUSED ? "nobody listens (the worker is gone)" : strerror(-r));
        return r;
    }
    /* A listening socket's credentials are those of whoever called
     * listen(): the worker (which does at its start), as its parent ran it. */
    if (getsockopt(a->ctl_fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        snprintf(why, len, "%s: cannot tell who listens: %s", path, strerror(errno));
        adoption_close(a);
        return -EPROTO;
    }
    if (cred.pid != pid || cred.uid != geteuid()) {
        snprintf(why, len, "%s: the listener is pid %d of uid %u, not the recorded worker "
                 "pid %d of uid %u", path, (int)cred.pid, (unsigned)cred.uid, (int)pid,
                 (unsigned)geteuid());
        adoption_close(a);
        return -EPERM;
    }
    a->pid = pid;
    return 0;
}

int adoption_take_ready(struct adoption *a, uint64_t deadline_ns, char *why, size_t len)
{
    const char *wrong = take_ready(a, deadline_ns);

    if (!wrong)
        return 0;
    snprintf(why, len, "worker pid %d: %s", (int)a->pid, wrong);
    adoption_refuse(a);
    return -EPROTO;
}

/* ---- watching a worker that is not our child ------------------------------ */

int adoption_watch_exit(struct supervisor *s, struct attachment *att)
{
    int fd = (int)syscall(SYS_pidfd_open, att->proc.pid, 0);

    if (fd < 0)
        return -errno;
    att->pidfd = fd;
    att->exit_watch = (struct watch){ .kind = WATCH_WORKER_EXIT, .obj = att };
    return watch_fd(s, fd, &att->exit_watch);
}

void adoption_unwatch_exit(struct supervisor *s, struct attachment *att)
{
    if (att->pidfd < 0)
        return;
    unwatch_fd(s, att->pidfd);
    close(att->pidfd);
    att->pidfd = -1;
}
