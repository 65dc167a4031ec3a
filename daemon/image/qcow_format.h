/* QCOW version 1 on-disk format: constants, the header and its validation.
 *
 * Everything here is pure (no I/O) so the driver, `qcowctl check` and the
 * fuzz target share one reading of the format.  See doc/qcow-format.md. */
#ifndef QCOWD_QCOW_FORMAT_H
#define QCOWD_QCOW_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#define QCOW_MAGIC 0x514649FBu              /* "QFI\xfb" */
#define QCOW_VERSION 1
#define QCOW_HEADER_SIZE 48
#define QCOW_CRYPT_NONE 0
#define QCOW_CRYPT_AES 1
#define QCOW_OFLAG_COMPRESSED (UINT64_C(1) << 63)
#define QCOW_MIN_CLUSTER_BITS 9
#define QCOW_MAX_CLUSTER_BITS 16
#define QCOW_MIN_L2_BITS 6
#define QCOW_MAX_L2_BITS 13
#define QCOW_MAX_BACKING_NAME 1023
#define QCOW_SECTOR_SIZE 512

/* The Xen/blktap extension header, right after the 48-byte header. */
#define QCOW_XEN_MAGIC 0x58454EFBu          /* "XEN\xfb" */
#define QCOW_XEN_HEADER_SIZE 16
#define QCOW_XEN_FLAG_SPARSE 1u
#define QCOW_XEN_FLAG_L1_BIG_ENDIAN 2u
#define QCOW_XEN_L1_OFFSET 4096

struct qcow_header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_offset;
    uint32_t backing_len;
    uint32_t mtime;
    uint64_t size;
    uint8_t cluster_bits;
    uint8_t l2_bits;
    uint32_t crypt_method;
    uint64_t l1_offset;
};

struct qcow_xen_header {
    bool present;
    uint32_t checksum;
    uint32_t min_cluster_alloc;
    uint32_t flags;
};

/* Geometry derived from a valid header. */
struct qcow_geometry {
    uint32_t cluster_size;
    uint32_t l2_entries;
    uint64_t l2_bytes;          /* size of one L2 table in bytes */
    uint64_t l1_entries;
    uint64_t l1_bytes;
    unsigned shift;             /* cluster_bits + l2_bits */
    uint64_t compressed_offset_mask;
    unsigned compressed_size_shift;
};

void qcow_header_decode(const uint8_t raw[QCOW_HEADER_SIZE], struct qcow_header *h);
void qcow_header_encode(const struct qcow_header *h, uint8_t raw[QCOW_HEADER_SIZE]);
void qcow_xen_header_decode(const uint8_t raw[QCOW_XEN_HEADER_SIZE], struct qcow_xen_header *x);
void qcow_xen_header_encode(const struct qcow_xen_header *x, uint8_t raw[QCOW_XEN_HEADER_SIZE]);

/* Check every header field against the rules QEMU enforces and ours (fields
 * within range, L1 and backing name inside a file of file_size bytes, no
 * overlap between header, backing name and L1).  Fills geo.  Returns 0 or
 * -EINVAL/-EFBIG with a message naming path and the field. */
int qcow_header_validate(const char *path, const struct qcow_header *h, bool xen_header,
                         uint64_t file_size, struct qcow_geometry *geo);

/* Where metadata at the front of the file ends (header, backing name, L1). */
uint64_t qcow_front_metadata_end(const struct qcow_header *h, const struct qcow_geometry *g);

/* Decode a compressed L2 entry. */
static inline uint64_t qcow_compressed_offset(const struct qcow_geometry *g, uint64_t e)
{
    return e & g->compressed_offset_mask;
}
static inline uint32_t qcow_compressed_length(const struct qcow_geometry *g, uint64_t e)
{
    return (uint32_t)((e >> g->compressed_size_shift) & (g->cluster_size - 1));
}
static inline uint64_t qcow_compressed_entry(const struct qcow_geometry *g, uint64_t off, uint32_t len)
{
    return QCOW_OFLAG_COMPRESSED | ((uint64_t)len << g->compressed_size_shift) | off;
}

/* The blktap checksum over an L1 table given in big-endian form. */
uint32_t qcow_xen_l1_checksum(const void *l1_be, uint64_t bytes);

#endif
