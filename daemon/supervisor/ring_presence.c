/* Is the previous qcowd's ring client still there?  Each client is handed
 * an open file description of the ring's memfd of its own, which we
 * read-lock (qcowring.h, QCOWRING_CLIENT_LOCK_*) before it leaves us.  An
 * OFD lock lives as long as its description: as long as the client keeps
 * the descriptor or a mapping of the ring, whatever protocol it speaks, and
 * the kernel drops it when the client is gone, however it goes.  We test it
 * through another open of the memfd, which nobody locks. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "qcowring.h"
#include "supervisor.h"

static int reopen_memfd(int memfd, int flags)
{
    char path[64];
    int fd;

    if (memfd < 0)
        return -EBADF;
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    if ((fd = open(path, flags | O_CLOEXEC)) < 0)
        return -errno;
    return fd;
}

/* Do cmd (F_OFD_SETLK or F_OFD_GETLK) with a lock of lock->l_type on the
 * presence byte of another open of memfd: that descriptor, or -errno, and
 * in *lock what the kernel answered. */
static int presence_lock_op(int memfd, int flags, int cmd, struct flock *lock)
{
    _cleanup_close_ int fd = reopen_memfd(memfd, flags);

    *lock = (struct flock){
        .l_type = lock->l_type,
        .l_whence = SEEK_SET,
        .l_start = QCOWRING_CLIENT_LOCK_START,
        .l_len = QCOWRING_CLIENT_LOCK_LEN,
    };
    if (fd < 0)
        return fd;
    if (fcntl(fd, cmd, lock) < 0)
        return -errno;
    return TAKE_FD(fd);
}

int ring_memfd_for_client(int memfd)
{
    struct flock lock = { .l_type = F_RDLCK };

    return presence_lock_op(memfd, O_RDWR, F_OFD_SETLK, &lock);
}

/* 1: a client holds the lock; 0: nobody does; -errno: cannot tell. */
static int memfd_client_locked(int memfd)
{
    struct flock probe = { .l_type = F_WRLCK };
    int fd = presence_lock_op(memfd, O_RDONLY, F_OFD_GETLK, &probe);

    if (fd < 0)
        return fd;
    close(fd);
    return probe.l_type != F_UNLCK;
}

bool attachment_ring_held_elsewhere(const struct attachment *att)
{
    int r;

    if (!att->ring_held_elsewhere)
        return false;
    if (!att->ring_lock_elsewhere)
        return true;            /* its memfd carries no lock: assume it is there */
    r = memfd_client_locked(att->proc.ring.memfd);
    if (r < 0)
        log_warning("%s: cannot tell whether the previous qcowd's ring client is still there: "
                    "%s", att->name, strerror(-r));
    return r != 0;
}
