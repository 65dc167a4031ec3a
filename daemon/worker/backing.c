#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backing.h"
#include "error.h"
#include "lock.h"

/* Where the file behind fd really is: the kernel's name for what was
 * opened, whatever links the path went through. */
static bool inside_allowed_dirs(const struct backing_policy *p, int fd)
{
    char proc[40], real[PATH_MAX];
    ssize_t n;

    if (p->ndirs == 0)
        return true;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    n = readlink(proc, real, sizeof real - 1);
    if (n <= 0)
        return false;
    real[n] = '\0';
    for (unsigned i = 0; i < p->ndirs; i++) {
        size_t len = strlen(p->dirs[i]);
        if (strcmp(p->dirs[i], "/") == 0 ||
            (strncmp(real, p->dirs[i], len) == 0 && real[len] == '/'))
            return true;
    }
    return false;
}

/* O_NONBLOCK so that a FIFO named as a backing file cannot hang the
 * open; the layer refuses anything but a regular file or block device. */
static int open_for_policy(const struct backing_policy *p, const char *path)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd;

    if (p->as_caller) {
        fd = identity_open(&p->caller, path, flags);
    } else if ((fd = open(path, flags)) < 0) {
        fd = -errno;
    }
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

int backing_open(void *opaque, const char *child_path, const char *path)
{
    const struct backing_policy *p = opaque;
    int fd = open_for_policy(p, path), r;

    if (fd == -ENOENT)
        return fd;
    if (fd == -EPERM && p->as_caller && geteuid() != 0)
        return qc_fail(-EACCES, "%s: cannot open its backing file %s with the rights of uid %u: "
                       "qcowd-worker is not running as root", child_path, path,
                       (unsigned)p->caller.uid);
    if (fd < 0 && p->as_caller)
        return qc_fail(fd, "%s: cannot open its backing file %s with the rights of uid %u: %s",
                       child_path, path, (unsigned)p->caller.uid, strerror(-fd));
    if (fd < 0)
        return qc_fail(fd, "%s: cannot open its backing file %s: %s", child_path, path,
                       strerror(-fd));
    if (!inside_allowed_dirs(p, fd)) {
        close(fd);
        return qc_fail(-EACCES, "%s: its backing file %s is outside the directories qcowd "
                       "allows (--backing-dir)", child_path, path);
    }
    if ((r = image_lock_fd(fd, path, IMAGE_LOCK_BACKING)) < 0) {
        close(fd);
        return r;
    }
    return fd;
}
