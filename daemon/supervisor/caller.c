/* Callers' rights.  A caller reaches only what it could open itself: the
 * image it attaches is the descriptor it passes (opened by the client with
 * its own rights), or a path qcowd opens with the caller's rights; its
 * workers open the backing files with those rights too (the worker gets the
 * caller's identity).  Callers see and act on their own attachments only;
 * root and the daemon's own user see and act on all.  See doc/security.md. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fdpass.h"
#include "supervisor.h"

void caller_identify(int fd, const struct ucred *cred, struct identity *who)
{
    gid_t groups[IDENTITY_MAX_GROUPS * 4];
    socklen_t len = sizeof groups;

    *who = (struct identity){ .uid = cred->uid, .gid = cred->gid };
    /* Without SO_PEERGROUPS (Linux < 4.13), or with more groups than we
     * keep, the caller counts with fewer groups: fewer rights, never more. */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
        return;
    for (size_t i = 0; i < len / sizeof groups[0] && who->ngroups < IDENTITY_MAX_GROUPS; i++)
        who->groups[who->ngroups++] = groups[i];
}

bool caller_privileged(const struct identity *who)
{
    return who->uid == 0 || who->uid == geteuid();
}

bool caller_may_use(const struct client *c, const struct attachment *att)
{
    return caller_privileged(&c->who) || c->who.uid == att->caller.uid;
}

/* ---- descriptors that came with requests ------------------------------- */

ssize_t client_recv(struct client *c, void *buf, size_t len)
{
    int fds[FDPASS_MAX];
    unsigned nfds = 0;
    ssize_t n = fdpass_recv_flags(c->fd, buf, len, MSG_DONTWAIT, fds, FDPASS_MAX, &nfds);

    for (unsigned i = 0; i < nfds; i++) {
        if (c->npassed < MAX_PASSED_FDS)
            c->passed[c->npassed++] = fds[i];
        else
            close(fds[i]);      /* nobody asked for that many: the attach finds none */
    }
    if (n < 0) {
        errno = (int)-n;
        return -1;
    }
    return n;
}

int client_take_fd(struct client *c)
{
    int fd;

    if (c->npassed == 0)
        return -1;
    fd = c->passed[0];
    memmove(c->passed, c->passed + 1, --c->npassed * sizeof c->passed[0]);
    return fd;
}

void client_drop_fds(struct client *c)
{
    while (c->npassed > 0)
        close(c->passed[--c->npassed]);
}

/* ---- the image of an attach --------------------------------------------- */

static int check_file(int fd, const char *path, struct stat *st)
{
    if (fstat(fd, st) < 0)
        return qc_fail(-errno, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
        return qc_fail(-EINVAL, "%s: not a regular file or block device", path);
    return 0;
}

int reopen_fd_nowait(int fd, int flags)
{
    char proc[40];
    int r, again;

    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if ((again = open(proc, flags | O_NONBLOCK)) < 0)
        return -errno;
    if (!(flags & O_NONBLOCK) && fcntl(again, F_SETFL, fcntl(again, F_GETFL) & ~O_NONBLOCK) < 0) {
        r = -errno;
        close(again);
        return r;
    }
    return again;
}

/* Why a reopen failed, for a message: a lease is worth saying so. */
static const char *reopen_failure(int r)
{
    return r == -EWOULDBLOCK ? "another process holds a lease on it (F_SETLEASE); qcowd does "
                               "not wait for a lease to break"
                             : strerror(-r);
}

/* A descriptor of our own for the file the caller passed, never the
 * caller's: an open file description is shared, and through it the caller
 * could drop our locks (F_OFD_SETLK) or make our writes append (F_SETFL
 * O_APPEND).  The reopen goes through /proc/self/fd to the same file, with
 * no more access than the caller's descriptor has. */
static int reopen_passed(int passed, const char *path, bool read_only, struct stat *st)
{
    int mode = fcntl(passed, F_GETFL), r;
    int fd;

    if (mode < 0)
        return qc_fail(-errno, "%s: the descriptor passed: %s", path, strerror(errno));
    if ((mode & O_PATH) || ((mode & O_ACCMODE) != O_RDWR &&
                            ((mode & O_ACCMODE) != O_RDONLY || !read_only)))
        return qc_fail(-EACCES, "%s: the descriptor passed is not open for %s", path,
                       read_only ? "reading" : "reading and writing");
    if ((r = check_file(passed, path, st)) < 0)
        return r;
    fd = reopen_fd_nowait(passed, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return qc_fail(fd, "%s: cannot reopen the descriptor passed: %s", path,
                       reopen_failure(fd));
    return fd;
}

char *fd_canonical_path(int fd)
{
    static const char deleted[] = " (deleted)";
    char proc[40], link[PATH_MAX];
    struct stat st;
    size_t len;
    ssize_t n;

    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if ((n = readlink(proc, link, sizeof link)) < 0)
        return NULL;
    if ((size_t)n >= sizeof link) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    link[n] = '\0';
    len = (size_t)n;
    if (link[0] != '/' || fstat(fd, &st) < 0 ||
        (st.st_nlink == 0 && len > strlen(deleted) &&
         strcmp(link + len - strlen(deleted), deleted) == 0)) {
        errno = ENOENT;
        return NULL;
    }
    return strdup(link);
}

/* The path, opened and made canonical with the caller's rights.  A daemon
 * that cannot take them (not root) opens paths only for its own user and
 * root.  O_NONBLOCK: a FIFO must not hang the supervisor (check_file
 * refuses it afterwards). */
static int open_path(const struct identity *who, const char *path, bool read_only,
                     char **canonical)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    struct identity_saved saved;
    bool as_caller = !caller_privileged(who);
    int fd, r;

    if (as_caller && identity_assume(who, &saved) < 0)
        return qc_fail(-EACCES, "%s: qcowd (uid %u) cannot open files with the rights of uid %u: "
                       "pass the image's descriptor instead (qcowctl does)", path,
                       (unsigned)geteuid(), (unsigned)who->uid);
    fd = open(path, flags);
    r = fd < 0 ? -errno : 0;
    if (fd >= 0 && !(*canonical = fd_canonical_path(fd)))
        r = -errno;
    if (as_caller)
        identity_restore(&saved);
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return qc_fail(r, "%s: %s", path, strerror(-r));
    }
    return fd;
}

int caller_open_image(const struct identity *who, const char *path, int passed, bool read_only,
                      struct opened_image *out)
{
    int fd, r;

    *out = (struct opened_image){ .fd = -1 };
    if (passed >= 0) {
        if (path[0] != '/')
            return qc_fail(-EINVAL, "%s: with a descriptor, the path must be absolute (it "
                           "locates relative backing files)", path);
        if ((fd = reopen_passed(passed, path, read_only, &out->st)) < 0)
            return fd;
        if (!(out->path = strdup(path))) {
            close(fd);
            return -ENOMEM;
        }
    } else {
        if ((fd = open_path(who, path, read_only, &out->path)) < 0)
            return fd;
        if ((r = check_file(fd, path, &out->st)) < 0) {
            close(fd);
            free(out->path);
            out->path = NULL;
            return r;
        }
    }
    out->fd = fd;
    return 0;
}

const char *error_class_of(int err)
{
    switch (err) {
    case -EACCES:
    case -EPERM:
        return "PermissionDenied";
    case -EBUSY:
        return "Locked";
    case -EAGAIN:
        return "LimitReached";
    default:
        return "ImageError";
    }
}
