/* Being alone with a file before changing it offline: QEMU's lock bytes
 * (qcowd takes the same): 100 + n for users of permission n, 200 + n for
 * those that do not share it.  Consistent read (0) and write (1) are what
 * an offline change needs alone.  The locks last while fd is open. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "driver.h"
#include "error.h"
#include "util.h"

static const off_t lock_bytes[] = { 100, 101, 200, 201 };

int file_lock_alone(int fd, const char *path, const char *verb)
{
    for (size_t i = 0; i < ARRAY_SIZE(lock_bytes); i++) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = lock_bytes[i],
                            .l_len = 1 };
        if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
            return qc_fail(-errno, "%s: cannot test its locks: %s", path, strerror(errno));
        if (fl.l_type != F_UNLCK)
            return qc_fail(-EBUSY, "%s: the image is in use (attached to qcowd, or open in "
                           "QEMU): %s it when it is not", path, verb);
        fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = lock_bytes[i],
                             .l_len = 1 };
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
            return qc_fail(-errno, "%s: cannot lock it: %s", path, strerror(errno));
    }
    return 0;
}

int image_lock_alone(struct image *img, const char *verb)
{
    return file_lock_alone(img->top->meta_fd, img->top->path, verb);
}
