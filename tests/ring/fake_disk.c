/* A test-only disk in memory that serves ring_io requests. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_disk.h"

int fake_disk_init(struct fake_disk *d, uint64_t size, unsigned seed)
{
    memset(d, 0, sizeof(*d));
    d->bytes = malloc(size ? size : 1);
    if (!d->bytes)
        return -ENOMEM;
    d->size = size;
    for (uint64_t i = 0; i < size; i++)
        d->bytes[i] = (uint8_t)((i * 31 + seed) ^ (i >> 9));
    return 0;
}

void fake_disk_destroy(struct fake_disk *d)
{
    free(d->bytes);
    d->bytes = NULL;
}

/* Copy between the disk at off and the iovec; to_disk chooses the way. */
static int copy_iov(struct fake_disk *d, const struct ring_io *io, uint64_t off, int to_disk)
{
    if (off > d->size || io->length > d->size - off)
        return QCOWRING_RSP_ERROR;
    for (unsigned i = 0; i < io->iovcnt; i++) {
        if (to_disk)
            memcpy(d->bytes + off, io->iov[i].iov_base, io->iov[i].iov_len);
        else
            memcpy(io->iov[i].iov_base, d->bytes + off, io->iov[i].iov_len);
        off += io->iov[i].iov_len;
    }
    return QCOWRING_RSP_OKAY;
}

int16_t fake_disk_serve(struct fake_disk *d, const struct ring_io *io)
{
    uint64_t off = io->sector * QCOWRING_SECTOR_SIZE;

    switch (io->op) {
    case RING_IO_READ:
        d->reads++;
        return (int16_t)copy_iov(d, io, off, 0);
    case RING_IO_WRITE:
        d->writes++;
        return (int16_t)copy_iov(d, io, off, 1);
    case RING_IO_FLUSH:
        d->flushes++;
        return (int16_t)(io->length ? copy_iov(d, io, off, 1) : QCOWRING_RSP_OKAY);
    case RING_IO_BARRIER:
        d->barriers++;
        return (int16_t)(io->length ? copy_iov(d, io, off, 1) : QCOWRING_RSP_OKAY);
    case RING_IO_DISCARD:
        d->discards++;
        if (off > d->size || io->length > d->size - off)
            return QCOWRING_RSP_ERROR;
        memset(d->bytes + off, 0, io->length);
        return QCOWRING_RSP_OKAY;
    case RING_IO_MAP: {
        /* All data: one extent over the whole range asked about. */
        struct qcowring_map_reply h = { .nr_extents = 1, .nr_sectors = io->length / 512 };
        struct qcowring_map_extent e = { .nr_sectors = io->length / 512 };
        memcpy(io->iov[0].iov_base, &h, sizeof h);
        memcpy((uint8_t *)io->iov[0].iov_base + sizeof h, &e, sizeof e);
        return QCOWRING_RSP_OKAY;
    }
    }
    return QCOWRING_RSP_ERROR;
}

uint64_t test_hash_bytes(const uint8_t *p, uint64_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (uint64_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

uint64_t fake_disk_hash(const struct fake_disk *d)
{
    return test_hash_bytes(d->bytes, d->size);
}
