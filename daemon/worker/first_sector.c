#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "first_sector.h"
#include "image.h"
#include "util.h"

void first_sector_release(struct first_sector_copy *c)
{
    free(c->sector);
    free(c->iov);
    *c = (struct first_sector_copy){ 0 };
}

/* The first sector from the request's buffers into c->sector (aligned for
 * O_DIRECT), and c->iov: the copy, then the rest of the request's buffers. */
static int copy_out(const struct blk_req *req, struct first_sector_copy *c, unsigned *niov)
{
    size_t want = IMAGE_SECTOR_SIZE, n = 0;

    c->sector = alloc_aligned(4096, IMAGE_SECTOR_SIZE);
    c->iov = malloc((req->niov + 1) * sizeof *c->iov);
    if (!c->sector || !c->iov)
        return -ENOMEM;
    c->iov[n++] = (struct iovec){ c->sector, IMAGE_SECTOR_SIZE };
    for (unsigned i = 0; i < req->niov; i++) {
        const uint8_t *base = req->iov[i].iov_base;
        size_t len = req->iov[i].iov_len, take = len < want ? len : want;
        memcpy(c->sector + (IMAGE_SECTOR_SIZE - want), base, take);
        want -= take;
        if (take < len)
            c->iov[n++] = (struct iovec){ (void *)(base + take), len - take };
    }
    *niov = (unsigned)n;
    return want == 0 ? 0 : -EINVAL;
}

int first_sector_check(struct blk_req *req, struct first_sector_copy *c, const char **format)
{
    unsigned niov;
    int r;

    *c = (struct first_sector_copy){ 0 };
    *format = NULL;
    if (req->op != BLK_WRITE || req->off != 0 || req->len < IMAGE_SECTOR_SIZE)
        return 0;
    if ((r = copy_out(req, c, &niov)) < 0) {
        first_sector_release(c);
        return r;
    }
    if ((*format = image_probe_header(c->sector, IMAGE_SECTOR_SIZE))) {
        first_sector_release(c);
        return -EPERM;
    }
    req->iov = c->iov;
    req->niov = niov;
    return 0;
}
