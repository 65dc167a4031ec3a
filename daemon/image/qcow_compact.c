/* `qcowctl compact`: rewrite a qcow file without leaked space, its clusters
 * in guest order, and put it in place of the old one.
 *
 * The copy is made next to the file (same directory, so the rename is
 * atomic), from the file's own bytes: clusters are copied as they are
 * (encrypted ones stay encrypted, compressed ones compressed), so no key is
 * needed; an all-zero cluster is dropped (without a backing file, where
 * unallocated reads as zeros too) or becomes a hole.  The front (header, Xen
 * extension, backing name, L1 area) keeps its layout, but an L1 table or
 * backing name that a resize or rebase moved to the end of the file comes
 * back to the front, right after the header.  Each L2 table is
 * followed by its clusters; where blktap trusts the image for whole-extent
 * allocation, by all of them, at the places its fast path expects. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/stat.h>

#include "compress.h"
#include "error.h"
#include "image.h"
#include "qcow_compact.h"
#include "util.h"

struct compactor {
    const char *path;
    int src, dst;
    char *tmp_path;
    struct qcow_front f;
    struct qcow_header out;     /* the copy's header: f.h, with the front laid out again */
    bool relaid;                /* a detached piece comes back to the front */
    bool extents;               /* keep blktap's whole extents */
    bool sparse;
    bool drop_zeros;            /* no backing file: an all-zero cluster needs no entry */
    uint64_t cursor;            /* next free byte of the copy */
    uint64_t *l1;               /* the copy's L1 table */
    uint64_t *l2;               /* one L2 table being copied */
    uint8_t *l2_raw;
    uint8_t *cluster;
    struct qcow_compact_result *res;
};

/* ---- reading the old file ---------------------------------------------- */

static int read_exact(struct compactor *c, void *buf, size_t len, uint64_t off, const char *what)
{
    ssize_t n = read_full_at(c->src, buf, len, off);

    if (n < 0)
        return qc_fail((int)n, "%s: cannot read %s: %s", c->path, what, strerror((int)-n));
    if ((size_t)n != len)
        return qc_fail(-EIO, "%s: %s is cut short by the end of the file", c->path, what);
    return 0;
}

static int corrupt(struct compactor *c, const char *what, uint64_t entry, enum qcow_fault f)
{
    return qc_fail(-EINVAL, "%s: %s %#" PRIx64 " %s: run qcowctl check --repair first", c->path,
                   what, entry, qcow_fault_text(f));
}

static int load_l2(struct compactor *c, uint64_t i)
{
    struct qcow_span s;
    enum qcow_fault f = qcow_l1_entry_fault(&c->f.g, &c->f.lay, c->f.file_size, c->f.l1[i], &s);
    int r;

    if (f != QCOW_FAULT_NONE)
        return corrupt(c, "L2 table at", c->f.l1[i], f);
    if ((r = read_exact(c, c->l2_raw, c->f.g.l2_bytes, c->f.l1[i], "an L2 table")) < 0)
        return r;
    for (uint32_t j = 0; j < c->f.g.l2_entries; j++)
        c->l2[j] = load_be64(c->l2_raw + (size_t)j * 8);
    return 0;
}

/* ---- writing the copy ---------------------------------------------------- */

static int write_exact(struct compactor *c, const void *buf, size_t len, uint64_t off)
{
    int r = write_full_at(c->dst, buf, len, off);

    if (r < 0)
        return qc_fail(r, "%s: cannot write: %s", c->tmp_path, strerror(-r));
    return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* The guest content of an entry, into c->cluster (extents only: a whole
 * cluster in place of a compressed one). */
static int read_cluster(struct compactor *c, uint64_t entry, const struct qcow_span *s)
{
    _cleanup_free_ uint8_t *stream = NULL;
    int r;

    if (entry == 0) {
        memset(c->cluster, 0, c->f.g.cluster_size);
        return 0;
    }
    if (!s->compressed)
        return read_exact(c, c->cluster, c->f.g.cluster_size, s->start, "a cluster");
    if (!(stream = malloc(s->len)))
        return -ENOMEM;
    if ((r = read_exact(c, stream, s->len, s->start, "a compressed cluster")) < 0)
        return r;
    if ((r = qcow_inflate_cluster(stream, s->len, c->cluster, c->f.g.cluster_size)) < 0)
        return qc_fail(r, "%s: a compressed cluster at %#" PRIx64 " is corrupt: run qcowctl "
                       "check --repair first", c->path, s->start);
    return 0;
}

/* Copy one L2 entry's bytes to the cursor; its new entry in *out. */
static int copy_entry(struct compactor *c, uint64_t entry, uint64_t *out)
{
    const struct qcow_geometry *g = &c->f.g;
    struct qcow_span s = { 0 };
    enum qcow_fault f = QCOW_FAULT_NONE;
    uint64_t at;
    int r;

    if (entry)
        f = qcow_l2_entry_fault(g, &c->f.lay, c->f.file_size, entry, &s);
    if (f != QCOW_FAULT_NONE)
        return corrupt(c, "cluster at", entry, f);
    if (!entry && !c->extents) {
        *out = 0;
        return 0;
    }
    if (s.compressed && !c->extents) {
        at = align_up(c->cursor, QCOW_SECTOR_SIZE);
        if ((r = read_exact(c, c->cluster, s.len, s.start, "a compressed cluster")) < 0 ||
            (r = write_exact(c, c->cluster, s.len, at)) < 0)
            return r;
        c->cursor = at + s.len;
        *out = qcow_compressed_entry(g, at, (uint32_t)s.len);
        c->res->clusters++;
        return 0;
    }
    /* Whole extents follow their table with no gap; other clusters are
     * cluster aligned, as every writer puts them. */
    at = c->extents ? c->cursor : align_up(c->cursor, g->cluster_size);
    if ((r = read_cluster(c, entry, &s)) < 0)
        return r;
    if (all_zero(c->cluster, g->cluster_size)) {
        if (c->drop_zeros) {
            *out = 0;
            return 0;
        }
    } else if ((r = write_exact(c, c->cluster, g->cluster_size, at)) < 0) {
        return r;
    }
    c->cursor = at + g->cluster_size;
    *out = at;
    c->res->clusters++;
    return 0;
}

static int copy_table(struct compactor *c, uint64_t i)
{
    const struct qcow_geometry *g = &c->f.g;
    uint64_t table, start = c->cursor;
    bool empty = true;
    int r;

    if ((r = load_l2(c, i)) < 0)
        return r;
    table = align_up(c->cursor, g->cluster_size);
    c->cursor = table + g->l2_bytes;
    for (uint32_t j = 0; j < g->l2_entries; j++)
        if ((r = copy_entry(c, c->l2[j], &c->l2[j])) < 0)
            return r;
    for (uint32_t j = 0; j < g->l2_entries; j++) {
        store_be64(c->l2_raw + (size_t)j * 8, c->l2[j]);
        empty = empty && c->l2[j] == 0;
    }
    if (empty && c->drop_zeros) {
        c->cursor = start;          /* nothing in it: no table either */
        return 0;
    }
    if ((r = write_exact(c, c->l2_raw, g->l2_bytes, table)) < 0)
        return r;
    c->l1[i] = table;
    c->res->l2_tables++;
    return 0;
}

/* Where the copy's front puts things: as they are, unless a piece was
 * detached; then the backing name right after the header and the L1 table
 * after it, as qcow_create lays them out. */
static void lay_out_front(struct compactor *c)
{
    const struct qcow_front *f = &c->f;
    uint64_t pos = QCOW_HEADER_SIZE + (f->xen.present ? QCOW_XEN_HEADER_SIZE : 0);

    c->out = f->h;
    c->relaid = f->lay.l1_end || f->lay.name_end;
    if (!c->relaid)
        return;
    if (f->h.backing_offset) {
        c->out.backing_offset = pos;
        pos += f->h.backing_len;
    }
    c->out.l1_offset = align_up(pos, f->xen.present ? QCOW_XEN_L1_OFFSET : 8);
}

/* The front's bytes: as they were, or laid out again. */
static int read_front(struct compactor *c, uint8_t *front, uint64_t len)
{
    const struct qcow_front *f = &c->f;
    uint8_t xen[QCOW_XEN_HEADER_SIZE];
    int r;

    if (!c->relaid)
        return read_exact(c, front, MIN(len, f->file_size), 0, "the header");
    qcow_header_encode(&c->out, front);
    if (f->xen.present) {
        if ((r = read_exact(c, xen, sizeof xen, QCOW_HEADER_SIZE, "the Xen header")) < 0)
            return r;
        memcpy(front + QCOW_HEADER_SIZE, xen, sizeof xen);
    }
    if (f->backing_name)
        memcpy(front + c->out.backing_offset, f->backing_name, f->h.backing_len);
    return 0;
}

/* The front with the new L1 table (big-endian, flagged so in an old blktap
 * image) and, where blktap trusted it, its checksum. */
static int write_front(struct compactor *c)
{
    const struct qcow_front *f = &c->f;
    uint64_t len = align_up(qcow_front_metadata_end(&c->out, &f->g), QCOW_SECTOR_SIZE);
    _cleanup_free_ uint8_t *front = calloc(1, len);
    int r;

    if (!front)
        return -ENOMEM;
    if ((r = read_front(c, front, len)) < 0)
        return r;
    for (uint64_t i = 0; i < f->g.l1_entries; i++)
        store_be64(front + c->out.l1_offset + i * 8, c->l1[i]);
    if (f->l1_little_endian)
        store_be32(front + QCOW_HEADER_SIZE + 12, f->xen.flags | QCOW_XEN_FLAG_L1_BIG_ENDIAN);
    if (f->xen_honoured && f->xen_checksum_ok && f->l1_padding_zero)
        store_be32(front + QCOW_HEADER_SIZE + 4,
                   qcow_xen_area_checksum(front + c->out.l1_offset, f->g.l1_bytes,
                                          f->l1_area_bytes));
    return write_exact(c, front, len, 0);
}

static int finish_copy(struct compactor *c)
{
    uint64_t end = align_up(c->cursor, QCOW_SECTOR_SIZE);

    if (ftruncate(c->dst, (off_t)end) < 0)
        return qc_fail(-errno, "%s: cannot set its size: %s", c->tmp_path, strerror(errno));
    if (!c->sparse && fallocate(c->dst, 0, 0, (off_t)end) < 0 && errno != EOPNOTSUPP)
        return qc_fail(-errno, "%s: cannot allocate it: %s", c->tmp_path, strerror(errno));
    if (fsync(c->dst) < 0)
        return qc_fail(-errno, "%s: fsync: %s", c->tmp_path, strerror(errno));
    c->res->new_size = end;
    return 0;
}

static int copy_image(struct compactor *c)
{
    const struct qcow_geometry *g = &c->f.g;
    int r;

    c->l1 = calloc(g->l1_entries ? g->l1_entries : 1, sizeof *c->l1);
    c->l2 = calloc(g->l2_entries, sizeof *c->l2);
    c->l2_raw = malloc(g->l2_bytes);
    c->cluster = malloc(g->cluster_size);
    if (!c->l1 || !c->l2 || !c->l2_raw || !c->cluster)
        return qc_fail(-ENOMEM, "%s: out of memory", c->path);
    lay_out_front(c);
    c->cursor = c->relaid ? c->out.l1_offset + c->f.l1_area_bytes : c->f.lay.front_end;
    c->cursor = align_up(c->cursor, QCOW_SECTOR_SIZE);
    for (uint64_t i = 0; i < g->l1_entries; i++)
        if (c->f.l1[i] && (r = copy_table(c, i)) < 0)
            return r;
    if ((r = write_front(c)) < 0)
        return r;
    return finish_copy(c);
}

/* ---- the temporary file and the swap ------------------------------------ */

static int make_temp(struct compactor *c, const struct stat *st)
{
    _cleanup_free_ char *d = strdup(c->path), *b = strdup(c->path);

    if (!d || !b || asprintf(&c->tmp_path, "%s/.%s.compact.XXXXXX", dirname(d), basename(b)) < 0)
        return -ENOMEM;
    c->dst = mkostemp(c->tmp_path, O_CLOEXEC);
    if (c->dst < 0) {
        int err = -errno;
        free(c->tmp_path);
        c->tmp_path = NULL;
        return qc_fail(err, "%s: cannot make a copy beside it: %s", c->path, strerror(-err));
    }
    /* The copy replaces the file: same permissions, same owner if we can. */
    if (fchmod(c->dst, st->st_mode & 07777) < 0)
        return qc_fail(-errno, "%s: chmod: %s", c->tmp_path, strerror(errno));
    if (fchown(c->dst, st->st_uid, st->st_gid) < 0 && errno != EPERM)
        return qc_fail(-errno, "%s: chown: %s", c->tmp_path, strerror(errno));
    return 0;
}

static int swap_in(struct compactor *c)
{
    _cleanup_free_ char *d = strdup(c->path);
    _cleanup_close_ int dir = -1;

    if (!d)
        return -ENOMEM;
    if (rename(c->tmp_path, c->path) < 0)
        return qc_fail(-errno, "%s: cannot replace it with the compacted copy: %s", c->path,
                       strerror(errno));
    free(c->tmp_path);
    c->tmp_path = NULL;
    dir = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0)
        fsync(dir);
    return 0;
}

static void compactor_free(struct compactor *c)
{
    if (c->tmp_path) {
        unlink(c->tmp_path);
        free(c->tmp_path);
    }
    if (c->dst >= 0)
        close(c->dst);
    if (c->src >= 0)
        close(c->src);
    qcow_front_free(&c->f);
    free(c->l1);
    free(c->l2);
    free(c->l2_raw);
    free(c->cluster);
}

static int open_source(struct compactor *c, struct stat *st)
{
    bool blockdev;
    uint64_t size;
    int r;

    c->src = open(c->path, O_RDONLY | O_CLOEXEC);
    if (c->src < 0)
        return qc_fail(-errno, "%s: cannot open: %s", c->path, strerror(errno));
    if ((r = fd_image_size(c->src, &size, &blockdev)) < 0 || blockdev)
        return qc_fail(r < 0 ? r : -EINVAL, "%s: not a regular file (compact writes a new file "
                       "in its place)", c->path);
    if (fstat(c->src, st) < 0)
        return qc_fail(-errno, "%s: %s", c->path, strerror(errno));
    c->res->old_size = size;
    if ((r = file_lock_alone(c->src, c->path, "compact")) < 0 ||
        (r = qcow_front_read(c->src, c->path, size, &c->f)) < 0)
        return r;
    c->extents = c->f.xen_honoured && c->f.xen_checksum_ok && c->f.l1_padding_zero &&
                 c->f.xen.min_cluster_alloc == c->f.g.l2_entries;
    c->sparse = !(c->f.xen_honoured && c->f.xen_checksum_ok && c->f.l1_padding_zero &&
                  !(c->f.xen.flags & QCOW_XEN_FLAG_SPARSE));
    /* Without a backing file an unallocated cluster reads as zeros too. */
    c->drop_zeros = !c->f.backing_name && !c->extents;
    return 0;
}

int qcow_compact(const char *path, struct qcow_compact_result *res)
{
    struct compactor c = { .path = path, .src = -1, .dst = -1, .res = res };
    struct stat st;
    int r;

    *res = (struct qcow_compact_result){ 0 };
    qc_clear_error();
    if ((r = open_source(&c, &st)) == 0 && (r = make_temp(&c, &st)) == 0 &&
        (r = copy_image(&c)) == 0)
        r = swap_in(&c);
    compactor_free(&c);
    return r;
}
