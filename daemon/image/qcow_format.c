#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>

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

/* ---- where the metadata lies ------------------------------------------- */

/* QEMU puts the backing name and the L1 right after the header (8-byte
 * aligned), blktap its L1 at the next 4 KiB boundary: a piece that starts
 * later does not follow. */
#define QCOW_FRONT_SLACK 4096

struct piece {
    uint64_t start, end;
    bool is_l1;
};

uint64_t qcow_layout_detached_min(uint64_t end_without)
{
    return align_up(end_without, QCOW_FRONT_SLACK) + QCOW_SECTOR_SIZE;
}

void qcow_layout_compute(const struct qcow_header *h, bool xen_header, uint64_t l1_area_bytes,
                         struct qcow_layout *lay)
{
    struct piece p[2];
    size_t n = 0;
    uint64_t end = QCOW_HEADER_SIZE + (xen_header ? QCOW_XEN_HEADER_SIZE : 0);

    *lay = (struct qcow_layout){ 0 };
    if (h->backing_offset)
        p[n++] = (struct piece){ h->backing_offset, h->backing_offset + h->backing_len, false };
    p[n++] = (struct piece){ h->l1_offset, h->l1_offset + l1_area_bytes, true };
    if (n == 2 && p[1].start < p[0].start) {
        struct piece t = p[0];
        p[0] = p[1];
        p[1] = t;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i].start <= align_up(end, QCOW_FRONT_SLACK)) {
            end = MAX(end, p[i].end);
        } else if (p[i].is_l1) {
            lay->l1_start = p[i].start;
            lay->l1_end = p[i].end;
        } else {
            lay->name_start = p[i].start;
            lay->name_end = p[i].end;
        }
    }
    lay->front_end = end;
}

uint64_t qcow_front_bytes_end(const struct qcow_header *h, const struct qcow_geometry *g,
                              bool xen_header, const struct qcow_layout *lay)
{
    uint64_t end = QCOW_HEADER_SIZE + (xen_header ? QCOW_XEN_HEADER_SIZE : 0);

    if (h->backing_offset && !lay->name_end)
        end = MAX(end, h->backing_offset + h->backing_len);
    if (!qcow_l1_detached(lay))
        end = MAX(end, h->l1_offset + g->l1_bytes);
    return end;
}

/* blktap took the first four digest bytes as a host (little-endian x86)
 * integer and stored that integer big-endian; images in the field do. */
static uint32_t digest_word(const unsigned char *md)
{
    return (uint32_t)md[0] | (uint32_t)md[1] << 8 | (uint32_t)md[2] << 16 | (uint32_t)md[3] << 24;
}

uint32_t qcow_xen_l1_checksum(const void *l1_be, uint64_t bytes)
{
    const struct crypto_lib *lib = crypto_lib();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!lib || !lib->digest(l1_be, bytes, md, &md_len, lib->md5(), NULL))
        return 0;
    return digest_word(md);
}

/* ---- the checksum of an L1 area, streamed ------------------------------- */

struct md5 {
    const struct crypto_lib *lib;
    EVP_MD_CTX *ctx;
    bool ok;
};

static void md5_begin(struct md5 *m)
{
    m->lib = crypto_lib();
    m->ctx = m->lib ? m->lib->md_ctx_new() : NULL;
    m->ok = m->ctx && m->lib->digest_init_ex(m->ctx, m->lib->md5(), NULL);
}

static void md5_add(struct md5 *m, const void *p, size_t len)
{
    m->ok = m->ok && m->lib->digest_update(m->ctx, p, len);
}

static void md5_add_zeros(struct md5 *m, uint64_t len)
{
    static const uint8_t zeros[64 << 10];

    for (uint64_t n; len > 0; len -= n) {
        n = MIN(len, sizeof zeros);
        md5_add(m, zeros, (size_t)n);
    }
}

static uint32_t md5_end(struct md5 *m)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    m->ok = m->ok && m->lib->digest_final_ex(m->ctx, md, &md_len);
    if (m->ctx)
        m->lib->md_ctx_free(m->ctx);
    return m->ok ? digest_word(md) : 0;
}

uint32_t qcow_xen_area_checksum(const void *l1_be, uint64_t bytes, uint64_t area_bytes)
{
    struct md5 m;

    md5_begin(&m);
    md5_add(&m, l1_be, (size_t)bytes);
    md5_add_zeros(&m, area_bytes - bytes);
    return md5_end(&m);
}

/* ---- reading the front -------------------------------------------------- */

bool qcow_blktap_l1_entries(const struct qcow_header *h, uint64_t *entries)
{
    uint64_t span = UINT64_C(1) << (h->cluster_bits + h->l2_bits);

    /* blktap keeps the table's byte count, rounded to 4096, in an int, and
     * adds the L1 offset to it. */
    *entries = align_up(h->size, span);
    return *entries <= (INT_MAX - 2 * (uint64_t)QCOW_XEN_L1_OFFSET) / 8 &&
           h->l1_offset <= INT_MAX - 2 * (uint64_t)QCOW_XEN_L1_OFFSET - *entries * 8;
}

static int read_front_header(int fd, const char *path, uint64_t file_size, struct qcow_front *f)
{
    uint8_t raw[QCOW_HEADER_SIZE + QCOW_XEN_HEADER_SIZE] = { 0 };
    ssize_t n = read_full_at(fd, raw, sizeof raw, 0);
    struct qcow_header *h = &f->h;

    if (n < 0)
        return qc_fail((int)n, "%s: cannot read the header: %s", path, strerror((int)-n));
    if (n < QCOW_HEADER_SIZE)
        return qc_fail(-EINVAL, "%s: file too short for a qcow header (%zd bytes)", path, n);
    qcow_header_decode(raw, h);
    if (n == (ssize_t)sizeof raw)
        qcow_xen_header_decode(raw + QCOW_HEADER_SIZE, &f->xen);
    /* The extension only exists where nothing else sits at byte 48. */
    if (h->l1_offset < sizeof raw || (h->backing_offset && h->backing_offset < sizeof raw))
        f->xen.present = false;
    if (!f->xen.present)
        f->xen = (struct qcow_xen_header){ 0 };
    return qcow_header_validate(path, h, f->xen.present, file_size, &f->g);
}

static int read_backing_name(int fd, const char *path, struct qcow_front *f)
{
    uint32_t len = f->h.backing_len;
    ssize_t n;

    if (!f->h.backing_offset)
        return 0;
    if (!(f->backing_name = calloc(1, (size_t)len + 1)))
        return -ENOMEM;
    n = read_full_at(fd, f->backing_name, len, f->h.backing_offset);
    if (n != (ssize_t)len)
        return qc_fail(n < 0 ? (int)n : -EIO, "%s: cannot read the backing file name", path);
    if (len == 0 || strlen(f->backing_name) != len)
        return qc_fail(-EINVAL, "%s: backing file name is empty or contains a NUL byte", path);
    return 0;
}

static int read_l1(int fd, const char *path, struct qcow_front *f, uint8_t *raw)
{
    ssize_t n;

    if (!(f->l1 = calloc(f->g.l1_entries ? f->g.l1_entries : 1, sizeof *f->l1)))
        return qc_fail(-ENOMEM, "%s: no memory for an L1 table of %" PRIu64 " entries", path,
                       f->g.l1_entries);
    n = read_full_at(fd, raw, f->g.l1_bytes, f->h.l1_offset);
    if (n < 0)
        return qc_fail((int)n, "%s: cannot read the L1 table: %s", path, strerror((int)-n));
    if ((uint64_t)n != f->g.l1_bytes)
        return qc_fail(-EINVAL, "%s: L1 table truncated", path);
    for (uint64_t i = 0; i < f->g.l1_entries; i++) {
        uint64_t v;
        memcpy(&v, raw + i * 8, 8);
        f->l1[i] = f->l1_little_endian ? le64toh(v) : be64toh(v);
        /* From now on the raw table is the big-endian one. */
        store_be64(raw + i * 8, f->l1[i]);
    }
    return 0;
}

/* blktap's long L1, when the file holds one: the extension is there, the
 * file is long enough, and nothing the header or L1 names lies inside it
 * (an image laid out the QEMU way has its first L2 table right after its
 * short L1, which is inside). */
static void choose_l1_area(struct qcow_front *f)
{
    uint64_t entries, end;

    f->l1_area_bytes = f->g.l1_bytes;
    if (!f->xen.present || !qcow_blktap_l1_entries(&f->h, &entries) ||
        entries <= f->g.l1_entries)
        return;
    end = f->h.l1_offset + entries * 8;
    if (end > f->file_size)
        return;
    if (f->h.backing_offset && f->h.backing_offset + f->h.backing_len > f->h.l1_offset &&
        f->h.backing_offset < end)
        return;
    for (uint64_t i = 0; i < f->g.l1_entries; i++)
        if (f->l1[i] && f->l1[i] < end)
            return;
    f->l1_long = true;
    f->l1_area_bytes = entries * 8;
}

/* The checksum over the L1 area as blktap computes it: the table (made
 * big-endian first) and the padding as it is in the file. */
static int checksum_l1_area(int fd, const char *path, struct qcow_front *f, const uint8_t *l1_be)
{
    uint64_t off = f->h.l1_offset + f->g.l1_bytes, end = f->h.l1_offset + f->l1_area_bytes;
    _cleanup_free_ uint8_t *buf = malloc(1u << 20);
    struct md5 m;
    int r = 0;

    if (!buf)
        return -ENOMEM;
    f->l1_padding_zero = true;
    md5_begin(&m);
    md5_add(&m, l1_be, f->g.l1_bytes);
    while (off < end && r == 0) {
        size_t len = (size_t)MIN(end - off, 1u << 20);
        ssize_t n = read_full_at(fd, buf, len, off);
        if (n != (ssize_t)len) {
            r = qc_fail(n < 0 ? (int)n : -EIO, "%s: cannot read the L1 table", path);
            break;
        }
        if (f->l1_padding_zero && (buf[0] || memcmp(buf, buf + 1, len - 1)))
            f->l1_padding_zero = false;
        md5_add(&m, buf, len);
        off += len;
    }
    f->xen_checksum_now = md5_end(&m);
    if (r == 0 && !m.ok)
        r = qc_fail(-EIO, "%s: MD5 failed", path);
    f->xen_checksum_ok = f->xen_checksum_now == f->xen.checksum;
    return r;
}

int qcow_front_read(int fd, const char *path, uint64_t file_size, struct qcow_front *f)
{
    _cleanup_free_ uint8_t *l1_raw = NULL;
    int r;

    *f = (struct qcow_front){ .file_size = file_size, .l1_padding_zero = true };
    if ((r = read_front_header(fd, path, file_size, f)) < 0 ||
        (r = read_backing_name(fd, path, f)) < 0)
        return r;
    /* blktap reads the extension only without a backing file, with the L1
     * at a multiple of 4096; otherwise it neither checks nor updates it. */
    f->xen_honoured = f->xen.present && !f->h.backing_offset &&
                      is_aligned(f->h.l1_offset, QCOW_XEN_L1_OFFSET);
    f->l1_little_endian = f->xen_honoured && !(f->xen.flags & QCOW_XEN_FLAG_L1_BIG_ENDIAN);
    if (!(l1_raw = malloc(f->g.l1_bytes ? f->g.l1_bytes : 1)))
        return -ENOMEM;
    if ((r = read_l1(fd, path, f, l1_raw)) < 0)
        return r;
    choose_l1_area(f);
    qcow_layout_compute(&f->h, f->xen.present, f->l1_area_bytes, &f->lay);
    return f->xen_honoured ? checksum_l1_area(fd, path, f, l1_raw) : 0;
}

void qcow_front_free(struct qcow_front *f)
{
    free(f->backing_name);
    free(f->l1);
    f->backing_name = NULL;
    f->l1 = NULL;
}

/* ---- entries ------------------------------------------------------------ */

static bool overlaps_piece(const struct qcow_span *s, uint64_t start, uint64_t end)
{
    return end && ranges_overlap(s->start, s->len, start, end - start);
}

static enum qcow_fault judge_span(const struct qcow_span *s, const struct qcow_layout *lay,
                                  uint64_t file_end)
{
    if (s->start < lay->front_end || overlaps_piece(s, lay->l1_start, lay->l1_end) ||
        overlaps_piece(s, lay->name_start, lay->name_end))
        return QCOW_FAULT_IN_FRONT;
    if (s->start > file_end || s->len > file_end - s->start)
        return QCOW_FAULT_PAST_EOF;
    return QCOW_FAULT_NONE;
}

enum qcow_fault qcow_l1_entry_fault(const struct qcow_geometry *g, const struct qcow_layout *lay,
                                    uint64_t file_end, uint64_t entry, struct qcow_span *s)
{
    *s = (struct qcow_span){ .start = entry, .len = g->l2_bytes };
    if ((entry & QCOW_OFLAG_COMPRESSED) || !is_aligned(entry, QCOW_SECTOR_SIZE))
        return QCOW_FAULT_MISALIGNED;
    return judge_span(s, lay, file_end);
}

enum qcow_fault qcow_l2_entry_fault(const struct qcow_geometry *g, const struct qcow_layout *lay,
                                    uint64_t file_end, uint64_t entry, struct qcow_span *s)
{
    if (entry & QCOW_OFLAG_COMPRESSED) {
        *s = (struct qcow_span){ .start = qcow_compressed_offset(g, entry),
                                 .len = qcow_compressed_length(g, entry), .compressed = true };
        if (s->len == 0)
            return QCOW_FAULT_EMPTY;
        return judge_span(s, lay, file_end);
    }
    *s = (struct qcow_span){ .start = entry, .len = g->cluster_size };
    if (!is_aligned(entry, QCOW_SECTOR_SIZE))
        return QCOW_FAULT_MISALIGNED;
    return judge_span(s, lay, file_end);
}

const char *qcow_fault_text(enum qcow_fault f)
{
    switch (f) {
    case QCOW_FAULT_NONE: return "is fine";
    case QCOW_FAULT_EMPTY: return "has length 0";
    case QCOW_FAULT_MISALIGNED: return "is not 512-byte aligned";
    case QCOW_FAULT_IN_FRONT: return "overlaps the header or L1 table";
    case QCOW_FAULT_PAST_EOF: return "lies past the end of the file";
    }
    return "is invalid";
}
