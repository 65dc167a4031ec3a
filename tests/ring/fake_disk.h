/* A test-only disk in memory that serves ring_io requests. */
#ifndef QCOWD_FAKE_DISK_H
#define QCOWD_FAKE_DISK_H

#include <stdint.h>

#include "daemon/worker/ring_server.h"

struct fake_disk {
    uint8_t *bytes;
    uint64_t size;
    uint64_t reads, writes, flushes, barriers, discards;
};

/* size bytes, filled with a pattern derived from seed. */
int fake_disk_init(struct fake_disk *d, uint64_t size, unsigned seed);
void fake_disk_destroy(struct fake_disk *d);

/* Perform io at once; returns the response status (QCOWRING_RSP_*). */
int16_t fake_disk_serve(struct fake_disk *d, const struct ring_io *io);

/* FNV-1a over the whole disk, to compare with a client's shadow copy. */
uint64_t fake_disk_hash(const struct fake_disk *d);
uint64_t test_hash_bytes(const uint8_t *p, uint64_t len);

#endif
