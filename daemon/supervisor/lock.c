#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "lock.h"

/* QEMU's layout: byte 100 + n is held by users of permission n, byte
 * 200 + n by users that do not share permission n. */
#define PERM_BASE 100
#define SHARED_BASE 200
#define PERM_CONSISTENT_READ 0
#define PERM_WRITE 1
#define PERM_RESIZE 3

static int lock_byte(int fd, int cmd, short type, off_t byte, struct flock *out)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };

    if (fcntl(fd, cmd, &fl) < 0)
        return -errno;
    if (out)
        *out = fl;
    return 0;
}

/* Would someone else's lock on byte conflict with a write lock? */
static int held_by_other(int fd, off_t byte, bool *held)
{
    struct flock fl = { .l_type = F_UNLCK };
    int r = lock_byte(fd, F_OFD_GETLK, F_WRLCK, byte, &fl);

    *held = r == 0 && fl.l_type != F_UNLCK;
    return r;
}

static int check_conflicts(const char *path, int fd, const int *want, int nwant,
                           const int *unshare, int nunshare)
{
    bool held;
    int r;

    for (int i = 0; i < nwant; i++) {
        if ((r = held_by_other(fd, SHARED_BASE + want[i], &held)) < 0)
            return r;
        if (held)
            return qc_fail(-EBUSY, "%s: another process holds the image and does not share it "
                           "(is a QEMU process using it?)", path);
    }
    for (int i = 0; i < nunshare; i++) {
        if ((r = held_by_other(fd, PERM_BASE + unshare[i], &held)) < 0)
            return r;
        if (held)
            return qc_fail(-EBUSY, "%s: another process has the image open for writing "
                           "(is a QEMU process using it?)", path);
    }
    return 0;
}

int image_lock(const char *path, bool read_only, int *out)
{
    static const int rw_want[] = { PERM_CONSISTENT_READ, PERM_WRITE, PERM_RESIZE };
    static const int rw_unshare[] = { PERM_WRITE, PERM_RESIZE };
    static const int ro_want[] = { PERM_CONSISTENT_READ };
    static const int ro_unshare[] = { PERM_WRITE };
    const int *want = read_only ? ro_want : rw_want, *unshare = read_only ? ro_unshare : rw_unshare;
    int nwant = read_only ? 1 : 3, nunshare = read_only ? 1 : 2;
    int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    int r;

    if (fd < 0)
        return qc_fail(-errno, "%s: cannot open: %s", path, strerror(errno));
    if ((r = check_conflicts(path, fd, want, nwant, unshare, nunshare)) < 0)
        goto fail;
    for (int i = 0; i < nwant; i++)
        if ((r = lock_byte(fd, F_OFD_SETLK, F_RDLCK, PERM_BASE + want[i], NULL)) < 0)
            goto locked;
    for (int i = 0; i < nunshare; i++)
        if ((r = lock_byte(fd, F_OFD_SETLK, F_RDLCK, SHARED_BASE + unshare[i], NULL)) < 0)
            goto locked;
    *out = fd;
    return 0;
locked:
    r = qc_fail(r == -EAGAIN || r == -EACCES ? -EBUSY : r, "%s: cannot lock the image: %s", path,
                strerror(-r));
fail:
    close(fd);
    return r;
}
