/* Small helpers shared by the image engine: byte order, alignment, checked
 * arithmetic, cleanup attributes (daemon/common/cleanup.h) and full-length
 * positional I/O. */
#ifndef QCOWD_UTIL_H
#define QCOWD_UTIL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "daemon/common/cleanup.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
static inline uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }
static inline bool is_aligned(uint64_t v, uint64_t a) { return (v & (a - 1)) == 0; }

static inline uint32_t load_be32(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint64_t load_be64(const void *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline void store_be32(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void store_be64(void *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline uint16_t load_be16(const void *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static inline void store_be16(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }

/* pread/pwrite the whole length, retrying on EINTR and short transfers.
 * read_full_at returns the bytes read (short only at end of file) or -errno;
 * write_full_at returns 0 or -errno. */
ssize_t read_full_at(int fd, void *buf, size_t len, uint64_t off);
int write_full_at(int fd, const void *buf, size_t len, uint64_t off);

/* The size in bytes of a regular file, or of a block device (BLKGETSIZE64):
 * what a qcow or raw image on either holds.  -EINVAL for anything else
 * (*blockdev tells which it was; may be NULL). */
int fd_image_size(int fd, uint64_t *size, bool *blockdev);

/* Aligned allocation (for O_DIRECT buffers); NULL on failure. */
void *alloc_aligned(size_t align, size_t len);

/* Parse "10", "512K", "64M", "1G", "2T" (binary units). Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);

#endif
