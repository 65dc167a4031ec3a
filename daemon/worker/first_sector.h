/* QEMU's rule for a raw image whose format was probed (image.h,
 * image_first_sector_guarded): no write may turn its first sector into
 * another format's header, or the next attach would probe it as that format
 * and follow a backing file the guest chose.  The bytes checked are the
 * bytes written: the first sector is copied out of the ring's shared memory
 * (which the client can change at any time), checked, and written from the
 * copy. */
#ifndef QCOWD_WORKER_FIRST_SECTOR_H
#define QCOWD_WORKER_FIRST_SECTOR_H

#include <stdint.h>
#include <sys/uio.h>

#include "blkreq.h"

struct first_sector_copy {
    uint8_t *sector;            /* NULL: the request does not touch the first sector */
    struct iovec *iov;
};

/* For a write of the first sector: 0 with req rewritten to write it from
 * the copy in c (keep c until the request completes), or -EPERM with
 * *format the header's format when the write is refused.  Other requests:
 * 0, c empty. */
int first_sector_check(struct blk_req *req, struct first_sector_copy *c, const char **format);
void first_sector_release(struct first_sector_copy *c);

#endif
