#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
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

static const int want_rw[] = { PERM_CONSISTENT_READ, PERM_WRITE, PERM_RESIZE };
static const int want_read[] = { PERM_CONSISTENT_READ };
static const int unshare_write_resize[] = { PERM_WRITE, PERM_RESIZE };
static const int unshare_write[] = { PERM_WRITE };

struct lock_set {
    const int *want, *unshare;
    int nwant, nunshare;
};

static struct lock_set lock_set_of(enum image_lock_mode mode)
{
    switch (mode) {
    case IMAGE_LOCK_READ_WRITE:
        return (struct lock_set){ want_rw, unshare_write_resize, 3, 2 };
    case IMAGE_LOCK_READ_ONLY:
        return (struct lock_set){ want_read, unshare_write, 1, 1 };
    case IMAGE_LOCK_BACKING:
        break;
    }
    return (struct lock_set){ want_read, unshare_write_resize, 1, 2 };
}

int image_lock_fd(int fd, const char *path, enum image_lock_mode mode)
{
    struct lock_set set = lock_set_of(mode);
    int r;

    if ((r = check_conflicts(path, fd, set.want, set.nwant, set.unshare, set.nunshare)) < 0)
        return r;
    for (int i = 0; i < set.nwant && r == 0; i++)
        r = lock_byte(fd, F_OFD_SETLK, F_RDLCK, PERM_BASE + set.want[i], NULL);
    for (int i = 0; i < set.nunshare && r == 0; i++)
        r = lock_byte(fd, F_OFD_SETLK, F_RDLCK, SHARED_BASE + set.unshare[i], NULL);
    if (r < 0)
        return qc_fail(r == -EAGAIN || r == -EACCES ? -EBUSY : r, "%s: cannot lock the image: %s",
                       path, strerror(-r));
    return 0;
}

int image_lock_to_backing(int fd)
{
    int r = lock_byte(fd, F_OFD_SETLK, F_UNLCK, PERM_BASE + PERM_WRITE, NULL);

    return r < 0 ? r : lock_byte(fd, F_OFD_SETLK, F_UNLCK, PERM_BASE + PERM_RESIZE, NULL);
}

int image_lock_fd_beside_backing(int fd, const char *path)
{
    struct lock_set set = lock_set_of(IMAGE_LOCK_READ_WRITE);
    int r = 0;

    for (int i = 0; i < set.nwant && r == 0; i++)
        r = lock_byte(fd, F_OFD_SETLK, F_RDLCK, PERM_BASE + set.want[i], NULL);
    for (int i = 0; i < set.nunshare && r == 0; i++)
        r = lock_byte(fd, F_OFD_SETLK, F_RDLCK, SHARED_BASE + set.unshare[i], NULL);
    return r < 0 ? qc_fail(r, "%s: cannot lock the image: %s", path, strerror(-r)) : 0;
}
