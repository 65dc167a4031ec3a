/* QCOW version 1 on-disk format: constants, the header, the Xen extension,
 * the L1 table and the rules for L1 and L2 entries.
 *
 * This is the one reading of the format: the driver (qcow.c), `qcowctl
 * check` and `info` (qcow_check.c), `qcowctl compact` and the fuzz target
 * all go through it, so one rule decides everywhere.  Everything is pure but
 * qcow_front_read(), which reads the front of a file.  See
 * doc/qcow-format.md. */
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

/* Where the metadata lies.  The front [0, front_end) holds the header, the
 * Xen extension and, each where it follows what comes before it (starts no
 * later than the next 4 KiB boundary after it, as QEMU and blktap lay them
 * out), the backing name and the L1 area.  A piece that does not follow is
 * detached: a resize that grew the L1 table, or a rebase whose longer backing
 * name did not fit, put it at the end of the file, and the space between the
 * front and it is ordinary file space.  No table or cluster may start in the
 * front or overlap a detached piece. */
struct qcow_layout {
    uint64_t front_end;
    uint64_t l1_start, l1_end;          /* a detached L1 area; both 0 when in the front */
    uint64_t name_start, name_end;      /* a detached backing name; both 0 when in the front */
};

/* The layout of a valid header whose L1 area is l1_area_bytes long. */
void qcow_layout_compute(const struct qcow_header *h, bool xen_header, uint64_t l1_area_bytes,
                         struct qcow_layout *lay);

static inline bool qcow_l1_detached(const struct qcow_layout *lay)
{
    return lay->l1_end != 0;
}

/* The lowest offset at which a piece taken out of the front is detached:
 * past the 4 KiB boundary after the rest of the front (end_without). */
uint64_t qcow_layout_detached_min(uint64_t end_without);

/* The end of the front's bytes that metadata writes touch: the header, the
 * Xen extension and what of the backing name and the (short) L1 table lies
 * in the front (not the zeros of a long L1). */
uint64_t qcow_front_bytes_end(const struct qcow_header *h, const struct qcow_geometry *g,
                              bool xen_header, const struct qcow_layout *lay);

/* ---- the front of a file ------------------------------------------------ */

/* Header, Xen extension, backing file name and L1 table, read and checked
 * by qcow_front_read().  The Xen fields are false/zero without an extension.
 *
 * The L1 area is the part of the file given to the L1 table: QEMU's
 * ceil(size / 2^shift) entries, or blktap's long table of round_up(size,
 * 2^shift) entries (its driver sizes the table with a rounded byte count),
 * whose entries past QEMU's count are never used and stay zero. */
struct qcow_front {
    struct qcow_header h;
    struct qcow_xen_header xen;
    struct qcow_geometry g;
    uint64_t file_size;
    char *backing_name;         /* NUL-terminated; NULL without a backing file */
    uint64_t *l1;               /* g.l1_entries entries, host order */
    bool xen_honoured;          /* blktap reads the extension: no backing file, L1 at n * 4096 */
    bool l1_little_endian;      /* honoured, flag 2 clear: an old blktap image's host-order L1 */
    bool l1_long;               /* blktap's long L1 layout */
    bool xen_checksum_ok;       /* honoured, and the checksum matches the L1 area */
    bool l1_padding_zero;       /* the L1 area past g.l1_bytes holds zeros */
    uint32_t xen_checksum_now;  /* the checksum of the L1 area as it is (honoured only) */
    uint64_t l1_area_bytes;     /* g.l1_bytes, or blktap's long table */
    struct qcow_layout lay;     /* the front and the pieces detached from it */
};

/* Read and validate the front of the qcow file open as fd (file_size bytes;
 * a block device's size).  Fills *f (free it with qcow_front_free(), also on
 * failure).  Returns 0 or -errno with a message naming path and the field.
 * L1 entries are decoded, not judged: see qcow_l1_entry_fault(). */
int qcow_front_read(int fd, const char *path, uint64_t file_size, struct qcow_front *f);
void qcow_front_free(struct qcow_front *f);

/* How many L1 entries blktap gives an image of this header (round_up(size,
 * 2^shift)); false when that table is more than blktap's int arithmetic
 * handles (it then cannot open the image at all). */
bool qcow_blktap_l1_entries(const struct qcow_header *h, uint64_t *entries);

/* The guest size as QEMU shows it: the header's size rounded down to whole
 * sectors (the geometry still follows the header's size). */
static inline uint64_t qcow_virtual_size(const struct qcow_header *h)
{
    return h->size & ~(uint64_t)(QCOW_SECTOR_SIZE - 1);
}

/* ---- L1 and L2 entries --------------------------------------------------- */

/* What is wrong with an entry, in the order it is checked. */
enum qcow_fault {
    QCOW_FAULT_NONE = 0,
    QCOW_FAULT_EMPTY,           /* a compressed cluster of length 0 */
    QCOW_FAULT_MISALIGNED,      /* not 512-byte aligned (or an L1 entry with bit 63) */
    QCOW_FAULT_IN_FRONT,        /* starts inside the header, backing name or L1 area */
    QCOW_FAULT_PAST_EOF,        /* does not lie entirely inside the file */
};

/* The bytes of the file an entry names. */
struct qcow_span {
    uint64_t start;
    uint64_t len;
    bool compressed;
};

/* Judge a non-zero L1 entry (its L2 table) or L2 entry (its cluster or
 * compressed stream) of an image with geometry g whose metadata lies as lay
 * says, in a file of file_end bytes.  Everything an entry names must
 * lie entirely inside the file: no writer leaves a table or cluster that
 * runs past the end (each grows the file first), so one that does means the
 * file was cut short.  *s is filled either way. */
enum qcow_fault qcow_l1_entry_fault(const struct qcow_geometry *g, const struct qcow_layout *lay,
                                    uint64_t file_end, uint64_t entry, struct qcow_span *s);
enum qcow_fault qcow_l2_entry_fault(const struct qcow_geometry *g, const struct qcow_layout *lay,
                                    uint64_t file_end, uint64_t entry, struct qcow_span *s);

/* "is not 512-byte aligned", "overlaps the header or L1 table", "lies past
 * the end of the file", "has length 0". */
const char *qcow_fault_text(enum qcow_fault f);

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

/* The checksum of an L1 area of area_bytes holding the table l1_be (bytes,
 * big-endian) followed by zeros: what blktap computes over its long table. */
uint32_t qcow_xen_area_checksum(const void *l1_be, uint64_t bytes, uint64_t area_bytes);

#endif
