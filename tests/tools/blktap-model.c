/* blktap-model: a small model of Xen blktap's qcow driver (tapdisk's
 * block-qcow.c), written from its documented behaviour to judge qcowd's
 * images the way blktap would, beside qemu-img.  It shares no code with the
 * engine under test: the point is a second, independent reading.
 *
 *   blktap-model create FILE SIZE [BACKING]   make an image as blktap's
 *                                             qcow_create does (sparse)
 *   blktap-model open FILE                    open it as tdqcow_open does and
 *                                             print what blktap would see
 *   blktap-model read FILE OFFSET LENGTH      guest bytes to stdout, found the
 *                                             way blktap finds them
 *   blktap-model write FILE OFFSET LENGTH     guest bytes from stdin, allocated
 *                                             the way blktap allocates them
 *
 * What blktap does, as modelled here:
 *  - The L1 table has round_up(size, 2^(cluster_bits + l2_bits)) entries
 *    (a rounded byte count used as an entry count); the file must hold all
 *    of it, rounded up to 4096 bytes, or blktap cannot open the image.  Its
 *    sizes live in ints: a table of 2 GiB or more cannot be opened.
 *  - The Xen extension at byte 48 is read only without a backing file and
 *    with the L1 at a multiple of 4096.  Its checksum is the first four
 *    bytes of the MD5 of the whole (long) L1 table in big-endian form, taken
 *    as a little-endian integer and stored big-endian.  A flag-2-clear
 *    (host-order) L1 is converted to big-endian first.  Only when the
 *    checksum matches are the sparse flag and min_cluster_alloc used;
 *    otherwise sparse is 0 and min_cluster_alloc 1.
 *  - min_cluster_alloc == L2 entries: an existing L2 table's clusters are
 *    taken to follow it (cluster j at table + table size + j * cluster
 *    size) without reading the table.
 *  - Without a backing file a new L2 table always comes with all its
 *    clusters (the extent, right after the table, cluster aligned); with
 *    one, a new table is empty and clusters are allocated one by one.
 *    Allocation is at the end of the file (fd_end), cluster aligned; fd_end
 *    starts at the end of the L1 table when no L1 entry is set, else at the
 *    end of the file.
 *  - On close, when min_cluster_alloc == L2 entries, the checksum is
 *    rewritten over the whole L1 table.
 * Encrypted images are not modelled.  Exit status: 0, 1 when blktap would
 * refuse or fail (reason on stderr), 2 usage. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define QCOW_MAGIC 0x514649FBu
#define XEN_MAGIC 0x58454EFBu
#define FLAG_SPARSE 1u
#define FLAG_L1_BIG_ENDIAN 2u
#define COMPRESSED (UINT64_C(1) << 63)

struct model {
    const char *path;
    int fd;
    uint64_t size;              /* virtual size, bytes */
    unsigned cluster_bits, l2_bits;
    uint64_t cluster_size, l2_size, l2_bytes;
    uint64_t backing_offset;
    uint32_t backing_len;
    uint32_t crypt;
    uint64_t l1_offset;
    uint64_t l1_size;           /* entries, blktap's count */
    uint64_t *l1;               /* host order */
    const char *xen;            /* "absent", "ignored", "honoured" */
    const char *checksum;       /* "ok", "bad", "-" */
    bool sparse;
    uint64_t min_cluster_alloc;
    uint64_t cluster_alloc;     /* l2_size, or 1 with a backing file */
    uint64_t fd_end;
    bool converted;
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;

    fputs("blktap-model: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t round_up(uint64_t v, uint64_t s)
{
    return (v + s - 1) / s * s;
}

static void pread_all(int fd, void *buf, size_t len, uint64_t off, const char *what)
{
    ssize_t n = pread(fd, buf, len, (off_t)off);

    if (n != (ssize_t)len)
        fail("cannot read %s at %" PRIu64, what, off);
}

static void pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *what)
{
    if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        fail("cannot write %s at %" PRIu64 ": %s", what, off, strerror(errno));
}

/* Extend with zeros (never shrink): blktap's qtruncate on a growing file. */
static void extend(struct model *m, uint64_t len)
{
    struct stat st;

    if (fstat(m->fd, &st) == 0 && (uint64_t)st.st_size < len && ftruncate(m->fd, (off_t)len) < 0)
        fail("cannot extend %s: %s", m->path, strerror(errno));
}

/* ---- the checksum ---------------------------------------------------------- */

static uint32_t checksum(const uint64_t *l1, uint64_t entries)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t be[8];

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL))
        fail("no MD5");
    for (uint64_t i = 0; i < entries; i++) {
        put_be(be, l1[i], 8);
        EVP_DigestUpdate(ctx, be, 8);
    }
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    return (uint32_t)md[0] | (uint32_t)md[1] << 8 | (uint32_t)md[2] << 16 | (uint32_t)md[3] << 24;
}

/* ---- create ------------------------------------------------------------------ */

/* The size of a backing file in whole sectors, as blktap's get_filesize. */
static uint64_t backing_sectors(const char *path)
{
    uint8_t h[48];
    struct stat st;
    int fd = open(path, O_RDONLY);

    if (fd < 0 || fstat(fd, &st) < 0)
        fail("%s: %s", path, strerror(errno));
    if (read(fd, h, sizeof h) == (ssize_t)sizeof h && get_be(h, 4) == QCOW_MAGIC) {
        close(fd);
        return get_be(h + 24, 8) >> 9;
    }
    close(fd);
    return (uint64_t)st.st_size >> 9;
}

static int cmd_create(const char *path, uint64_t total, const char *backing)
{
    uint8_t head[64] = { 0 };
    char real[PATH_MAX];
    uint64_t sectors = total >> 9, header_size = 64, l1_size, length, *zeros;
    unsigned cb = 12, l2b = 9;
    uint32_t min_alloc = 1u << 9, mtime = 0;
    size_t blen = 0;
    struct stat st;
    int fd;

    if (backing) {
        if (!realpath(backing, real) || stat(real, &st) < 0)
            fail("%s: %s", backing, strerror(errno));
        blen = strlen(real);
        header_size += blen;
        sectors = backing_sectors(real);
        mtime = (uint32_t)st.st_mtime;
        cb = 9;
        l2b = 12;
        min_alloc = 1;
    }
    header_size = round_up(round_up(header_size, 8), 4096);
    l1_size = round_up(sectors * 512, UINT64_C(1) << (cb + l2b));
    if (l1_size * 8 > INT_MAX - header_size)
        fail("%s: an L1 table of %" PRIu64 " entries is more than blktap can make", path, l1_size);
    length = round_up(header_size + l1_size * 8, 4096);
    put_be(head, QCOW_MAGIC, 4);
    put_be(head + 4, 1, 4);
    put_be(head + 8, backing ? 64 : 0, 8);
    put_be(head + 16, blen, 4);
    put_be(head + 20, mtime, 4);
    put_be(head + 24, sectors * 512, 8);
    head[32] = (uint8_t)cb;
    head[33] = (uint8_t)l2b;
    put_be(head + 40, header_size, 8);
    if (!(zeros = calloc(l1_size ? l1_size : 1, 8)))
        fail("out of memory");
    put_be(head + 48, XEN_MAGIC, 4);
    put_be(head + 52, checksum(zeros, l1_size), 4);
    put_be(head + 56, min_alloc, 4);
    put_be(head + 60, FLAG_SPARSE | FLAG_L1_BIG_ENDIAN, 4);
    free(zeros);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        fail("%s: %s", path, strerror(errno));
    if (ftruncate(fd, (off_t)length) < 0)
        fail("%s: %s", path, strerror(errno));
    pwrite_all(fd, head, sizeof head, 0, "the header");
    if (backing)
        pwrite_all(fd, real, blen, 64, "the backing file name");
    close(fd);
    return 0;
}

/* ---- open -------------------------------------------------------------------- */

static void read_l1(struct model *m)
{
    uint64_t table = round_up(m->l1_size * 8, 4096), block = round_up(table + m->l1_offset, 512);
    struct stat st;
    uint8_t *raw;

    /* blktap reads l1_table_offset + the rounded table in one go and fails
     * when the file is shorter; its sizes are ints. */
    if (table + m->l1_offset > INT_MAX)
        fail("%s: an L1 table of %" PRIu64 " entries: blktap's int sizes overflow", m->path,
             m->l1_size);
    if (fstat(m->fd, &st) < 0 || (uint64_t)st.st_size < table + m->l1_offset)
        fail("%s: the file (%" PRIu64 " bytes) does not hold blktap's L1 table (%" PRIu64
             " entries at %" PRIu64 ")", m->path, (uint64_t)st.st_size, m->l1_size, m->l1_offset);
    if (!(raw = malloc(table)) || !(m->l1 = calloc(table / 8, 8)))
        fail("out of memory");
    pread_all(m->fd, raw, table, m->l1_offset, "the L1 table");
    for (uint64_t i = 0; i < m->l1_size; i++)
        m->l1[i] = get_be(raw + i * 8, 8);
    free(raw);
    m->fd_end = block;
    for (uint64_t i = 0; i < m->l1_size; i++)
        if (m->l1[i])
            m->fd_end = (uint64_t)st.st_size;
}

static uint64_t swap64(uint64_t v)
{
    return __builtin_bswap64(v);
}

static void write_l1_block(struct model *m, uint64_t index);

static void read_xen(struct model *m, const uint8_t *head, bool writable)
{
    uint32_t flags = (uint32_t)get_be(head + 60, 4);

    m->xen = "absent";
    m->checksum = "-";
    m->sparse = false;
    m->min_cluster_alloc = 1;
    if (get_be(head + 48, 4) != XEN_MAGIC)
        return;
    if (m->backing_offset || m->l1_offset % 4096) {
        m->xen = "ignored";
        return;
    }
    m->xen = "honoured";
    if (!(flags & FLAG_L1_BIG_ENDIAN)) {
        /* An old image: the table was host order (x86: little endian). */
        for (uint64_t i = 0; i < m->l1_size; i++)
            m->l1[i] = swap64(m->l1[i]);
        m->converted = true;
        if (writable) {
            uint8_t f[4];
            put_be(f, flags | FLAG_L1_BIG_ENDIAN, 4);
            pwrite_all(m->fd, f, 4, 60, "the Xen flags");
            for (uint64_t i = 0; i < m->l1_size; i += 512)
                write_l1_block(m, i);
        }
    }
    if (checksum(m->l1, m->l1_size) != (uint32_t)get_be(head + 52, 4)) {
        m->checksum = "bad";
        return;
    }
    m->checksum = "ok";
    m->sparse = flags & FLAG_SPARSE;
    m->min_cluster_alloc = get_be(head + 56, 4);
}

static void model_open(struct model *m, const char *path, bool writable)
{
    uint8_t head[512];

    *m = (struct model){ .path = path };
    if ((m->fd = open(path, writable ? O_RDWR : O_RDONLY)) < 0)
        fail("%s: %s", path, strerror(errno));
    if (read(m->fd, head, sizeof head) != (ssize_t)sizeof head)
        fail("%s: shorter than one sector", path);
    if (get_be(head, 4) != QCOW_MAGIC)
        fail("%s: not a qcow image", path);
    if (get_be(head + 4, 4) != 1)
        fail("%s: not qcow version 1", path);
    m->size = get_be(head + 24, 8);
    m->cluster_bits = head[32];
    m->l2_bits = head[33];
    m->crypt = (uint32_t)get_be(head + 36, 4);
    if (m->size <= 1 || m->cluster_bits < 9 || m->crypt > 1)
        fail("%s: header refused", path);
    if (m->crypt)
        fail("%s: encrypted images are not modelled", path);
    if (m->cluster_bits > 20 || m->l2_bits > 20)
        fail("%s: geometry outside what the model handles", path);
    m->cluster_size = UINT64_C(1) << m->cluster_bits;
    m->l2_size = UINT64_C(1) << m->l2_bits;
    m->l2_bytes = m->l2_size * 8;
    m->backing_offset = get_be(head + 8, 8);
    m->backing_len = (uint32_t)get_be(head + 16, 4);
    m->l1_offset = get_be(head + 40, 8);
    m->l1_size = round_up(m->size, UINT64_C(1) << (m->cluster_bits + m->l2_bits));
    m->cluster_alloc = m->backing_offset ? 1 : m->l2_size;
    read_l1(m);
    read_xen(m, head, writable);
}

static void model_close(struct model *m)
{
    if (m->min_cluster_alloc == m->l2_size) {
        uint8_t be[4];
        put_be(be, checksum(m->l1, m->l1_size), 4);
        pwrite_all(m->fd, be, 4, 52, "the checksum");
    }
    close(m->fd);
    free(m->l1);
}

static int cmd_open(const char *path)
{
    struct model m;

    model_open(&m, path, false);
    printf("l1-entries %" PRIu64 "\nxen-header %s\nchecksum %s%s\nsparse %d\n"
           "min-cluster-alloc %" PRIu64 "\nfd-end %" PRIu64 "\n",
           m.l1_size, m.xen, m.checksum, m.converted ? " (after converting the L1)" : "",
           m.sparse, m.min_cluster_alloc, m.fd_end);
    close(m.fd);
    free(m.l1);
    return 0;
}

/* ---- finding and allocating clusters ------------------------------------------ */

static void write_l1_block(struct model *m, uint64_t index)
{
    uint64_t first = index / 512 * 512;
    uint8_t block[4096] = { 0 };

    for (uint64_t i = first; i < first + 512 && i < m->l1_size; i++)
        put_be(block + (i - first) * 8, m->l1[i], 8);
    pwrite_all(m->fd, block, sizeof block, m->l1_offset + first * 8, "the L1 table");
}

static void read_l2(struct model *m, uint64_t l2_offset, uint64_t *l2)
{
    uint8_t *raw = malloc(m->l2_bytes);

    if (!raw)
        fail("out of memory");
    pread_all(m->fd, raw, m->l2_bytes, l2_offset, "an L2 table");
    for (uint64_t i = 0; i < m->l2_size; i++)
        l2[i] = get_be(raw + i * 8, 8);
    free(raw);
}

static void write_l2(struct model *m, uint64_t l2_offset, const uint64_t *l2)
{
    uint8_t *raw = malloc(m->l2_bytes);

    if (!raw)
        fail("out of memory");
    for (uint64_t i = 0; i < m->l2_size; i++)
        put_be(raw + i * 8, l2[i], 8);
    pwrite_all(m->fd, raw, m->l2_bytes, l2_offset, "an L2 table");
    free(raw);
}

static void inflate_cluster(struct model *m, uint64_t entry, uint8_t *out)
{
    unsigned shift = 63 - m->cluster_bits;
    uint64_t off = entry & ((UINT64_C(1) << shift) - 1);
    uint64_t len = (entry >> shift) & (m->cluster_size - 1);
    uint8_t *in = malloc(len ? len : 1);
    z_stream z = { 0 };

    if (!in)
        fail("out of memory");
    pread_all(m->fd, in, len, off, "a compressed cluster");
    if (inflateInit2(&z, -12) != Z_OK)
        fail("zlib");
    z.next_in = in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)m->cluster_size;
    if (inflate(&z, Z_FINISH) != Z_STREAM_END || z.avail_out != 0)
        fail("%s: a compressed cluster at %" PRIu64 " does not inflate", m->path, off);
    inflateEnd(&z);
    free(in);
}

/* The L2 entry for offset (0: unallocated), allocating when asked, as
 * blktap's get_cluster_offset.  The L2 table is the one in the file. */
static uint64_t cluster_offset(struct model *m, uint64_t offset, bool allocate, bool whole)
{
    uint64_t l1_index = offset >> (m->cluster_bits + m->l2_bits);
    uint64_t l2_index = (offset >> m->cluster_bits) & (m->l2_size - 1);
    uint64_t l2_offset = m->l1[l1_index], entry;
    uint64_t *l2 = calloc(m->l2_size, 8);

    if (!l2)
        fail("out of memory");
    if (!l2_offset) {
        if (!allocate) {
            free(l2);
            return 0;
        }
        /* A new L2 table at the end of the file; the L1 entry goes first. */
        l2_offset = round_up(m->fd_end, m->cluster_size);
        m->l1[l1_index] = l2_offset;
        extend(m, l2_offset + m->l2_bytes);
        m->fd_end = l2_offset + m->l2_bytes;
        write_l1_block(m, l1_index);
        if (m->cluster_alloc == m->l2_size) {
            uint64_t first = round_up(l2_offset + m->l2_bytes, m->cluster_size);
            extend(m, first + m->cluster_size * m->l2_size);
            m->fd_end = first + m->cluster_size * m->l2_size;
            for (uint64_t i = 0; i < m->l2_size; i++)
                l2[i] = first + i * m->cluster_size;
        }
        write_l2(m, l2_offset, l2);
    } else if (m->min_cluster_alloc == m->l2_size) {
        /* The fast path: the table is not even read. */
        free(l2);
        return l2_offset + m->l2_bytes + l2_index * m->cluster_size;
    } else {
        read_l2(m, l2_offset, l2);
    }
    entry = l2[l2_index];
    if (allocate && (!entry || (entry & COMPRESSED))) {
        uint64_t fresh = round_up(m->fd_end, m->cluster_size);
        extend(m, fresh + m->cluster_size);
        m->fd_end = fresh + m->cluster_size;
        if ((entry & COMPRESSED) && !whole) {
            uint8_t *data = malloc(m->cluster_size);
            if (!data)
                fail("out of memory");
            inflate_cluster(m, entry, data);
            pwrite_all(m->fd, data, m->cluster_size, fresh, "a cluster");
            free(data);
        }
        l2[l2_index] = entry = fresh;
        write_l2(m, l2_offset, l2);
    }
    free(l2);
    return entry;
}

/* ---- read and write ------------------------------------------------------------ */

static void read_guest(const char *path, uint64_t off, uint64_t len, uint8_t *out);

static void read_backing(struct model *m, uint64_t off, uint64_t len, uint8_t *out)
{
    char name[1024], dir[PATH_MAX], full[PATH_MAX + 1024];

    memset(out, 0, len);
    if (!m->backing_offset)
        return;
    if (m->backing_len >= sizeof name)
        fail("%s: backing file name too long", m->path);
    pread_all(m->fd, name, m->backing_len, m->backing_offset, "the backing file name");
    name[m->backing_len] = 0;
    /* A relative name (qemu-img stores them) is relative to the image. */
    snprintf(dir, sizeof dir, "%s", m->path);
    snprintf(full, sizeof full, "%s/%s", dirname(dir), name);
    read_guest(name[0] == '/' ? name : full, off, len, out);
}

static void read_raw_or_qcow(const char *path, uint64_t off, uint64_t len, uint8_t *out);

static void read_guest(const char *path, uint64_t off, uint64_t len, uint8_t *out)
{
    read_raw_or_qcow(path, off, len, out);
}

static void read_qcow(const char *path, uint64_t off, uint64_t len, uint8_t *out)
{
    struct model m;
    uint8_t *cluster;

    model_open(&m, path, false);
    if (!(cluster = malloc(m.cluster_size)))
        fail("out of memory");
    while (len > 0) {
        uint64_t in = off & (m.cluster_size - 1), n = m.cluster_size - in, e;
        n = n < len ? n : len;
        if (off >= m.size) {
            memset(out, 0, n);
        } else if (!(e = cluster_offset(&m, off, false, false))) {
            read_backing(&m, off, n, out);
        } else if (e & COMPRESSED) {
            inflate_cluster(&m, e, cluster);
            memcpy(out, cluster + in, n);
        } else {
            ssize_t got = pread(m.fd, out, n, (off_t)(e + in));
            if (got < 0)
                fail("%s: read: %s", path, strerror(errno));
            memset(out + got, 0, n - (uint64_t)got);
        }
        off += n;
        len -= n;
        out += n;
    }
    free(cluster);
    close(m.fd);
    free(m.l1);
}

static void read_raw_or_qcow(const char *path, uint64_t off, uint64_t len, uint8_t *out)
{
    uint8_t magic[4] = { 0 };
    int fd = open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0)
        fail("%s: %s", path, strerror(errno));
    if (read(fd, magic, 4) == 4 && get_be(magic, 4) == QCOW_MAGIC) {
        close(fd);
        read_qcow(path, off, len, out);
        return;
    }
    memset(out, 0, len);
    n = pread(fd, out, len, (off_t)off);
    close(fd);
    if (n < 0)
        fail("%s: %s", path, strerror(errno));
}

static int cmd_read(const char *path, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        fail("out of memory");
    read_guest(path, off, len, buf);
    if (fwrite(buf, 1, len, stdout) != len)
        fail("stdout: %s", strerror(errno));
    free(buf);
    return 0;
}

static int cmd_write(const char *path, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    struct model m;

    if (!buf || fread(buf, 1, len, stdin) != len)
        fail("cannot read %" PRIu64 " bytes from stdin", len);
    if (off % 512 || len % 512)
        fail("blktap writes whole sectors");
    model_open(&m, path, true);
    if (off + len > m.size)
        fail("%s: write past the end of the disk", path);
    for (uint64_t done = 0; done < len;) {
        uint64_t in = (off + done) & (m.cluster_size - 1), n = m.cluster_size - in;
        n = n < len - done ? n : len - done;
        uint64_t e = cluster_offset(&m, off + done, true, n == m.cluster_size);
        pwrite_all(m.fd, buf + done, n, e + in, "guest data");
        done += n;
    }
    model_close(&m);
    free(buf);
    return 0;
}

static uint64_t number(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 0);

    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    if (*s == '-' || *end)
        fail("not a number: %s", s);
    return v;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "create") == 0 && argc <= 5)
        return cmd_create(argv[2], number(argv[3]), argc == 5 ? argv[4] : NULL);
    if (argc == 3 && strcmp(argv[1], "open") == 0)
        return cmd_open(argv[2]);
    if (argc == 5 && strcmp(argv[1], "read") == 0)
        return cmd_read(argv[2], number(argv[3]), number(argv[4]));
    if (argc == 5 && strcmp(argv[1], "write") == 0)
        return cmd_write(argv[2], number(argv[3]), number(argv[4]));
    fputs("usage: blktap-model create FILE SIZE [BACKING] | open FILE |\n"
          "       read FILE OFFSET LENGTH | write FILE OFFSET LENGTH\n", stderr);
    return 2;
}
