#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>

#include "crypto_lib.h"
#include "error.h"
#include "qcow_format.h"
#include "util.h"

void qcow_header_decode(const uint8_t raw[QCOW_HEADER_SIZE], struct qcow_header *h)
{
    h->magic = load_be32(raw + 0);
    h->version = load_be32(raw + 4);
    h->backing_offset = load_be64(raw + 8);
    h->backing_len = load_be32(raw + 16);
    h->mtime = load_be32(raw + 20);
    h->size = load_be64(raw + 24);
    h->cluster_bits = raw[32];
    h->l2_bits = raw[33];
    h->crypt_method = load_be32(raw + 36);
    h->l1_offset = load_be64(raw + 40);
}

void qcow_header_encode(const struct qcow_header *h, uint8_t raw[QCOW_HEADER_SIZE])
{
    memset(raw, 0, QCOW_HEADER_SIZE);
    store_be32(raw + 0, h->magic);
    store_be32(raw + 4, h->version);
    store_be64(raw + 8, h->backing_offset);
    store_be32(raw + 16, h->backing_len);
    store_be32(raw + 20, h->mtime);
    store_be64(raw + 24, h->size);
    raw[32] = h->cluster_bits;
    raw[33] = h->l2_bits;
    store_be32(raw + 36, h->crypt_method);
    store_be64(raw + 40, h->l1_offset);
}

void qcow_xen_header_decode(const uint8_t raw[QCOW_XEN_HEADER_SIZE], struct qcow_xen_header *x)
{
    x->present = load_be32(raw) == QCOW_XEN_MAGIC;
    x->checksum = load_be32(raw + 4);
    x->min_cluster_alloc = load_be32(raw + 8);
    x->flags = load_be32(raw + 12);
}

void qcow_xen_header_encode(const struct qcow_xen_header *x, uint8_t raw[QCOW_XEN_HEADER_SIZE])
{
    store_be32(raw, QCOW_XEN_MAGIC);
    store_be32(raw + 4, x->checksum);
    store_be32(raw + 8, x->min_cluster_alloc);
    store_be32(raw + 12, x->flags);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

static int validate_fields(const char *path, const struct qcow_header *h)
{
    if (h->magic != QCOW_MAGIC)
        return qc_fail(-EINVAL, "%s: not a qcow image (bad magic 0x%08" PRIx32 ")", path, h->magic);
    if (h->version != QCOW_VERSION)
        return qc_fail(-EINVAL, "%s: unsupported qcow version %" PRIu32 " (only version 1)", path,
                       h->version);
    if (h->size <= 1)
        return qc_fail(-EINVAL, "%s: virtual size %" PRIu64 " is too small", path, h->size);
    if (h->cluster_bits < QCOW_MIN_CLUSTER_BITS || h->cluster_bits > QCOW_MAX_CLUSTER_BITS)
        return qc_fail(-EINVAL, "%s: cluster_bits %u out of range %d..%d", path, h->cluster_bits,
                       QCOW_MIN_CLUSTER_BITS, QCOW_MAX_CLUSTER_BITS);
    if (h->l2_bits < QCOW_MIN_L2_BITS || h->l2_bits > QCOW_MAX_L2_BITS)
        return qc_fail(-EINVAL, "%s: l2_bits %u out of range %d..%d", path, h->l2_bits,
                       QCOW_MIN_L2_BITS, QCOW_MAX_L2_BITS);
    if (h->crypt_method > QCOW_CRYPT_AES)
        return qc_fail(-EINVAL, "%s: unknown crypt method %" PRIu32, path, h->crypt_method);
    if (h->backing_len > QCOW_MAX_BACKING_NAME)
        return qc_fail(-EINVAL, "%s: backing file name length %" PRIu32 " exceeds %d", path,
                       h->backing_len, QCOW_MAX_BACKING_NAME);
    if (h->backing_offset == 0 && h->backing_len != 0)
        return qc_fail(-EINVAL, "%s: backing file name length %" PRIu32 " without an offset", path,
                       h->backing_len);
    return 0;
}

static int derive_geometry(const char *path, const struct qcow_header *h, struct qcow_geometry *g)
{
    unsigned shift = h->cluster_bits + h->l2_bits;
    uint64_t span = UINT64_C(1) << shift;

    if (h->size > UINT64_MAX - span)
        return qc_fail(-EFBIG, "%s: virtual size %" PRIu64 " overflows the L1 table", path, h->size);
    g->cluster_size = UINT32_C(1) << h->cluster_bits;
    g->l2_entries = UINT32_C(1) << h->l2_bits;
    g->l2_bytes = (uint64_t)g->l2_entries * 8;
    g->shift = shift;
    g->l1_entries = (h->size + span - 1) >> shift;
    if (g->l1_entries > INT_MAX / 8)
        return qc_fail(-EFBIG, "%s: L1 table of %" PRIu64 " entries is too large", path,
                       g->l1_entries);
    g->l1_bytes = g->l1_entries * 8;
    g->compressed_size_shift = 63 - h->cluster_bits;
    g->compressed_offset_mask = (UINT64_C(1) << g->compressed_size_shift) - 1;
    return 0;
}

int qcow_header_validate(const char *path, const struct qcow_header *h, bool xen_header,
                         uint64_t file_size, struct qcow_geometry *g)
{
    uint64_t header_end = QCOW_HEADER_SIZE + (xen_header ? QCOW_XEN_HEADER_SIZE : 0);
    int r;

    if ((r = validate_fields(path, h)) < 0 || (r = derive_geometry(path, h, g)) < 0)
        return r;
    if (h->l1_offset < header_end)
        return qc_fail(-EINVAL, "%s: L1 table offset %" PRIu64 " overlaps the header", path,
                       h->l1_offset);
    if (!is_aligned(h->l1_offset, 8))
        return qc_fail(-EINVAL, "%s: L1 table offset %" PRIu64 " is not 8-byte aligned", path,
                       h->l1_offset);
    if (h->l1_offset > file_size || g->l1_bytes > file_size - h->l1_offset)
        return qc_fail(-EINVAL, "%s: L1 table (%" PRIu64 " bytes at %" PRIu64
                       ") extends past the end of the file (%" PRIu64 " bytes)",
                       path, g->l1_bytes, h->l1_offset, file_size);
    if (h->backing_offset) {
        if (h->backing_offset < header_end)
            return qc_fail(-EINVAL, "%s: backing file name offset %" PRIu64 " overlaps the header",
                           path, h->backing_offset);
        if (h->backing_offset > file_size || h->backing_len > file_size - h->backing_offset)
            return qc_fail(-EINVAL, "%s: backing file name extends past the end of the file", path);
        if (ranges_overlap(h->backing_offset, h->backing_len, h->l1_offset, g->l1_bytes))
            return qc_fail(-EINVAL, "%s: backing file name overlaps the L1 table", path);
    }
    return 0;
}

uint64_t qcow_front_metadata_end(const struct qcow_header *h, const struct qcow_geometry *g)
{
    uint64_t end = h->l1_offset + g->l1_bytes;

    if (h->backing_offset && h->backing_offset + h->backing_len > end)
        end = h->backing_offset + h->backing_len;
    return end;
}

uint32_t qcow_xen_l1_checksum(const void *l1_be, uint64_t bytes)
{
    const struct crypto_lib *lib = crypto_lib();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    uint32_t native;

    if (!lib || !lib->digest(l1_be, bytes, md, &md_len, lib->md5(), NULL))
        return 0;
    /* blktap took the first four digest bytes as a host (little-endian x86)
     * integer and stored that integer big-endian; images in the field do. */
    native = (uint32_t)md[0] | (uint32_t)md[1] << 8 | (uint32_t)md[2] << 16 | (uint32_t)md[3] << 24;
    return native;
}
