/* `qcowctl check`: consistency check and repair of a QCOW v1 file.
 *
 * One analysis pass collects every byte range the metadata references (the
 * front: header, backing name and L1 table; each L2 table; each cluster or
 * compressed stream), judges each reference on its own (inside the file,
 * aligned), then against the others (sorted by offset: overlaps with
 * metadata, overlaps between clusters) and finally looks at what nothing
 * references (leaks).  Repair clears bad entries, rewrites the Xen checksum,
 * truncates a leaked tail, and runs the analysis again for the verdict. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "compress.h"
#include "error.h"
#include "qcow_check.h"
#include "util.h"

enum ref_kind { REF_FRONT, REF_L2, REF_DATA, REF_COMPRESSED };

/* One byte range of the file that an entry (or the header) references. */
struct ref {
    uint64_t start;
    uint64_t len;
    uint64_t entry_pos;         /* file offset of the L1/L2 entry; 0 for the front */
    uint64_t guest_off;         /* first guest byte it maps */
    uint64_t l1_index;          /* REF_L2 */
    enum ref_kind kind;
    bool bad;                   /* judged corrupt: not used further */
};

struct ref_vec {
    struct ref *v;
    size_t n, cap;
};

struct checker {
    const char *path;
    int fd;
    uint64_t file_size;
    struct qcow_header h;
    struct qcow_xen_header xen;
    struct qcow_geometry g;
    uint64_t front_end;         /* header, backing name, L1 table */
    uint8_t *l1_raw;            /* the L1 table as stored */
    uint64_t *l1;               /* decoded */
    struct ref_vec tables;      /* L1 entries that name an L2 table */
    struct ref_vec clusters;    /* L2 entries that name a cluster */
    struct ref_vec meta;        /* front + accepted L2 tables, sorted */
    bool inflate;               /* check that compressed clusters inflate */
    uint8_t *l2_buf;
    uint8_t *stream_buf;
    uint8_t *cluster_buf;
    struct qcow_check_report *r;
};

const char *qcow_problem_kind_name(enum qcow_problem_kind k)
{
    switch (k) {
    case QCOW_PROBLEM_LEAK: return "leak";
    case QCOW_PROBLEM_PAST_EOF: return "past-eof";
    case QCOW_PROBLEM_MISALIGNED: return "misaligned";
    case QCOW_PROBLEM_OVERLAP: return "overlap";
    case QCOW_PROBLEM_BAD_COMPRESSED: return "bad-compressed";
    case QCOW_PROBLEM_XEN_CHECKSUM: return "xen-checksum";
    }
    return "unknown";
}

/* ---- the report --------------------------------------------------------- */

static int keep_problem(struct qcow_check_report *r, const struct qcow_problem *p)
{
    if (r->n_problems >= QCOW_CHECK_MAX_PROBLEMS) {
        r->problems_dropped++;
        return 0;
    }
    if (r->n_problems % 64 == 0) {
        struct qcow_problem *v = realloc(r->problems, (r->n_problems + 64) * sizeof *v);
        if (!v)
            return qc_fail(-ENOMEM, "out of memory for the list of problems");
        r->problems = v;
    }
    r->problems[r->n_problems++] = *p;
    return 0;
}

static int report(struct checker *c, struct qcow_problem p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a problem found by the analysis. */
static int report(struct checker *c, struct qcow_problem p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p.message, sizeof p.message, fmt, ap);
    va_end(ap);
    p.corruption = p.kind != QCOW_PROBLEM_LEAK;
    if (p.corruption)
        c->r->corruptions++;
    return keep_problem(c->r, &p);
}

static struct qcow_problem entry_problem(enum qcow_problem_kind kind, const struct ref *ref)
{
    return (struct qcow_problem){
        .kind = kind,
        .table = ref->kind == REF_L2 ? QCOW_TABLE_L1 : QCOW_TABLE_L2,
        .host_off = ref->start,
        .length = ref->len,
        .guest_off = ref->guest_off,
        .entry_pos = ref->entry_pos,
    };
}

void qcow_check_report_free(struct qcow_check_report *r)
{
    free(r->problems);
    r->problems = NULL;
    r->n_problems = 0;
}

/* ---- references --------------------------------------------------------- */

static int ref_push(struct ref_vec *rv, const struct ref *ref)
{
    if (rv->n == rv->cap) {
        size_t cap = rv->cap ? rv->cap * 2 : 256;
        struct ref *v = (cap > SIZE_MAX / sizeof *v) ? NULL : realloc(rv->v, cap * sizeof *v);
        if (!v)
            return qc_fail(-ENOMEM, "out of memory for %zu references", rv->n);
        rv->v = v;
        rv->cap = cap;
    }
    rv->v[rv->n++] = *ref;
    return 0;
}

static void ref_vec_free(struct ref_vec *rv)
{
    free(rv->v);
    *rv = (struct ref_vec){ 0 };
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

/* By host offset; ties in table order, so the first entry keeps the bytes. */
static int cmp_by_start(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;

    return cmp_u64(x->start, y->start) ?: cmp_u64(x->entry_pos, y->entry_pos);
}

static int cmp_by_entry(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;

    return cmp_u64(x->entry_pos, y->entry_pos);
}

static void sort_refs(struct ref_vec *rv, int (*cmp)(const void *, const void *))
{
    if (rv->n > 1)
        qsort(rv->v, rv->n, sizeof *rv->v, cmp);
}

static uint64_t ref_end(const struct ref *ref)
{
    return ref->start + ref->len;
}

/* Inside the file; start + len cannot overflow afterwards. */
static bool inside_file(const struct checker *c, uint64_t start, uint64_t len)
{
    return start <= c->file_size && len <= c->file_size - start;
}

static const char *ref_name(const struct ref *ref)
{
    switch (ref->kind) {
    case REF_FRONT: return "the header or L1 table";
    case REF_L2: return "an L2 table";
    case REF_DATA: return "a cluster";
    case REF_COMPRESSED: return "a compressed cluster";
    }
    return "?";
}

/* ---- reading the file --------------------------------------------------- */

static int read_exact(struct checker *c, void *buf, size_t len, uint64_t off, const char *what)
{
    ssize_t n = read_full_at(c->fd, buf, len, off);

    if (n < 0)
        return qc_fail((int)n, "%s: cannot read %s at offset %" PRIu64 ": %s", c->path, what, off,
                       strerror((int)-n));
    if ((size_t)n != len)
        return qc_fail(-EIO, "%s: %s at offset %" PRIu64 " is cut short by the end of the file",
                       c->path, what, off);
    return 0;
}

static int open_file(struct checker *c, bool writable)
{
    struct stat st;

    c->fd = open(c->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (c->fd < 0)
        return qc_fail(-errno, "%s: cannot open: %s", c->path, strerror(errno));
    if (fstat(c->fd, &st) < 0)
        return qc_fail(-errno, "%s: %s", c->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return qc_fail(-EINVAL, "%s: not a regular file", c->path);
    c->file_size = (uint64_t)st.st_size;
    return 0;
}

static int read_header(struct checker *c)
{
    uint8_t raw[QCOW_HEADER_SIZE + QCOW_XEN_HEADER_SIZE] = { 0 };
    ssize_t n = read_full_at(c->fd, raw, sizeof raw, 0);

    if (n < 0)
        return qc_fail((int)n, "%s: cannot read the header: %s", c->path, strerror((int)-n));
    if (n < 4 || load_be32(raw) != QCOW_MAGIC)
        return qc_fail(-EINVAL, "%s: not a qcow image", c->path);
    if (n < QCOW_HEADER_SIZE)
        return qc_fail(-EINVAL, "%s: file too short for a qcow header (%zd bytes)", c->path, n);
    qcow_header_decode(raw, &c->h);
    if (n == (ssize_t)sizeof raw)
        qcow_xen_header_decode(raw + QCOW_HEADER_SIZE, &c->xen);
    /* As the driver reads it: the extension only where nothing else sits. */
    if (c->xen.present && ((c->h.backing_offset && c->h.backing_offset < sizeof raw) ||
                           c->h.l1_offset < sizeof raw))
        c->xen.present = false;
    return qcow_header_validate(c->path, &c->h, c->xen.present, c->file_size, &c->g);
}

static bool l1_little_endian(const struct checker *c)
{
    return c->xen.present && !(c->xen.flags & QCOW_XEN_FLAG_L1_BIG_ENDIAN);
}

static int read_l1(struct checker *c)
{
    int r;

    /* The header check put the whole table inside the file. */
    c->l1_raw = malloc(c->g.l1_bytes);
    c->l1 = calloc(c->g.l1_entries, sizeof *c->l1);
    if (!c->l1_raw || !c->l1)
        return qc_fail(-ENOMEM, "%s: out of memory for an L1 table of %" PRIu64 " entries",
                       c->path, c->g.l1_entries);
    if ((r = read_exact(c, c->l1_raw, c->g.l1_bytes, c->h.l1_offset, "the L1 table")) < 0)
        return r;
    for (uint64_t i = 0; i < c->g.l1_entries; i++) {
        uint64_t v;
        memcpy(&v, c->l1_raw + i * 8, 8);
        c->l1[i] = l1_little_endian(c) ? le64toh(v) : be64toh(v);
    }
    return 0;
}

/* ---- L1: which L2 tables can be walked ---------------------------------- */

static int judge_l1_entry(struct checker *c, uint64_t i)
{
    struct ref t = { .kind = REF_L2, .start = c->l1[i], .len = c->g.l2_bytes,
                     .entry_pos = c->h.l1_offset + i * 8, .guest_off = i << c->g.shift,
                     .l1_index = i };

    if (!inside_file(c, t.start, t.len))
        return report(c, entry_problem(QCOW_PROBLEM_PAST_EOF, &t),
                      "L1 entry %" PRIu64 " (guest offset %" PRIu64 "): L2 table at %#" PRIx64
                      " lies past the end of the file (%" PRIu64 " bytes)",
                      i, t.guest_off, t.start, c->file_size);
    if (!is_aligned(t.start, QCOW_SECTOR_SIZE))
        return report(c, entry_problem(QCOW_PROBLEM_MISALIGNED, &t),
                      "L1 entry %" PRIu64 " (guest offset %" PRIu64 "): L2 table at %#" PRIx64
                      " is not 512-byte aligned", i, t.guest_off, t.start);
    return ref_push(&c->tables, &t);
}

/* Each L2 table must stay clear of the front and of the tables before it;
 * the tables kept are disjoint, so walking them reads no byte twice. */
static int judge_l2_overlaps(struct checker *c)
{
    const struct ref *prev = NULL;
    int r;

    sort_refs(&c->tables, cmp_by_start);
    for (size_t k = 0; k < c->tables.n; k++) {
        struct ref *t = &c->tables.v[k];
        if (t->start < c->front_end) {
            t->bad = true;
            r = report(c, entry_problem(QCOW_PROBLEM_OVERLAP, t),
                       "L1 entry %" PRIu64 " (guest offset %" PRIu64 "): L2 table at %#" PRIx64
                       " overlaps the header or L1 table", t->l1_index, t->guest_off, t->start);
        } else if (prev && t->start < ref_end(prev)) {
            t->bad = true;
            r = report(c, entry_problem(QCOW_PROBLEM_OVERLAP, t),
                       "L1 entry %" PRIu64 " (guest offset %" PRIu64 "): L2 table at %#" PRIx64
                       " overlaps the L2 table of L1 entry %" PRIu64, t->l1_index, t->guest_off,
                       t->start, prev->l1_index);
        } else {
            prev = t;
            c->r->l2_tables++;
            r = ref_push(&c->meta, t);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_l1(struct checker *c)
{
    struct ref front = { .kind = REF_FRONT, .start = 0, .len = c->front_end };
    int r;

    if ((r = ref_push(&c->meta, &front)) < 0)
        return r;
    for (uint64_t i = 0; i < c->g.l1_entries; i++)
        if (c->l1[i] && (r = judge_l1_entry(c, i)) < 0)
            return r;
    return judge_l2_overlaps(c);
}

/* ---- L2: the clusters --------------------------------------------------- */

static int judge_compressed(struct checker *c, struct ref *ref, uint64_t e)
{
    ref->kind = REF_COMPRESSED;
    ref->start = qcow_compressed_offset(&c->g, e);
    ref->len = qcow_compressed_length(&c->g, e);
    if (ref->len == 0)
        return report(c, entry_problem(QCOW_PROBLEM_BAD_COMPRESSED, ref),
                      "guest offset %" PRIu64 ": compressed cluster at %#" PRIx64
                      " has length 0", ref->guest_off, ref->start);
    if (!inside_file(c, ref->start, ref->len))
        return report(c, entry_problem(QCOW_PROBLEM_PAST_EOF, ref),
                      "guest offset %" PRIu64 ": compressed cluster (%" PRIu64 " bytes at %#"
                      PRIx64 ") lies past the end of the file (%" PRIu64 " bytes)",
                      ref->guest_off, ref->len, ref->start, c->file_size);
    return ref_push(&c->clusters, ref);
}

static int judge_cluster(struct checker *c, struct ref *ref, uint64_t e)
{
    ref->kind = REF_DATA;
    ref->start = e;
    ref->len = c->g.cluster_size;
    if (!inside_file(c, ref->start, ref->len))
        return report(c, entry_problem(QCOW_PROBLEM_PAST_EOF, ref),
                      "guest offset %" PRIu64 ": cluster at %#" PRIx64
                      " lies past the end of the file (%" PRIu64 " bytes)",
                      ref->guest_off, ref->start, c->file_size);
    if (!is_aligned(ref->start, QCOW_SECTOR_SIZE))
        return report(c, entry_problem(QCOW_PROBLEM_MISALIGNED, ref),
                      "guest offset %" PRIu64 ": cluster at %#" PRIx64 " is not 512-byte aligned",
                      ref->guest_off, ref->start);
    return ref_push(&c->clusters, ref);
}

static int walk_l2_table(struct checker *c, const struct ref *t)
{
    int r;

    if ((r = read_exact(c, c->l2_buf, c->g.l2_bytes, t->start, "an L2 table")) < 0)
        return r;
    for (uint32_t j = 0; j < c->g.l2_entries; j++) {
        uint64_t e = load_be64(c->l2_buf + (size_t)j * 8);
        struct ref ref = { .entry_pos = t->start + (uint64_t)j * 8,
                           .guest_off = t->guest_off + ((uint64_t)j << c->h.cluster_bits) };
        if (e == 0)
            continue;
        r = (e & QCOW_OFLAG_COMPRESSED) ? judge_compressed(c, &ref, e) : judge_cluster(c, &ref, e);
        if (r < 0)
            return r;
    }
    return 0;
}

static int walk_l2_tables(struct checker *c)
{
    int r;

    /* Guest order, so problems come out in the order of the disk. */
    sort_refs(&c->tables, cmp_by_entry);
    for (size_t k = 0; k < c->tables.n; k++)
        if (!c->tables.v[k].bad && (r = walk_l2_table(c, &c->tables.v[k])) < 0)
            return r;
    return 0;
}

/* The metadata range overlapping ref, if any (meta is sorted and disjoint). */
static const struct ref *find_meta(const struct checker *c, const struct ref *ref)
{
    size_t lo = 0, hi = c->meta.n;

    /* First table ending after ref starts. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_end(&c->meta.v[mid]) <= ref->start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->meta.n && c->meta.v[lo].start < ref_end(ref))
        return &c->meta.v[lo];
    return NULL;
}

static int judge_meta_overlaps(struct checker *c)
{
    sort_refs(&c->meta, cmp_by_start);
    for (size_t k = 0; k < c->clusters.n; k++) {
        struct ref *ref = &c->clusters.v[k];
        const struct ref *m = find_meta(c, ref);
        int r;
        if (!m)
            continue;
        ref->bad = true;
        if (m->kind == REF_FRONT)
            r = report(c, entry_problem(QCOW_PROBLEM_OVERLAP, ref),
                       "guest offset %" PRIu64 ": %s at %#" PRIx64 " overlaps the header or L1 "
                       "table", ref->guest_off, ref_name(ref), ref->start);
        else
            r = report(c, entry_problem(QCOW_PROBLEM_OVERLAP, ref),
                       "guest offset %" PRIu64 ": %s at %#" PRIx64 " overlaps the L2 table at %#"
                       PRIx64 " (L1 entry %" PRIu64 ")", ref->guest_off, ref_name(ref),
                       ref->start, m->start, m->l1_index);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Two clusters sharing bytes: the one that comes second loses them. */
static int judge_cluster_overlaps(struct checker *c)
{
    const struct ref *owner = NULL;

    sort_refs(&c->clusters, cmp_by_start);
    for (size_t k = 0; k < c->clusters.n; k++) {
        struct ref *ref = &c->clusters.v[k];
        if (ref->bad)
            continue;
        if (owner && ref->start < ref_end(owner)) {
            int r;
            ref->bad = true;
            r = report(c, entry_problem(QCOW_PROBLEM_OVERLAP, ref),
                       "guest offset %" PRIu64 ": %s at %#" PRIx64 " shares bytes with %s at %#"
                       PRIx64 " (guest offset %" PRIu64 ")", ref->guest_off, ref_name(ref),
                       ref->start, ref_name(owner), owner->start, owner->guest_off);
            if (r < 0)
                return r;
        }
        if (!owner || ref_end(ref) > ref_end(owner))
            owner = ref;
    }
    return 0;
}

static int judge_stream(struct checker *c, struct ref *ref)
{
    int r = read_exact(c, c->stream_buf, ref->len, ref->start, "a compressed cluster");

    if (r < 0)
        return r;
    if (qcow_inflate_cluster(c->stream_buf, ref->len, c->cluster_buf, c->g.cluster_size) == 0)
        return 0;
    ref->bad = true;
    return report(c, entry_problem(QCOW_PROBLEM_BAD_COMPRESSED, ref),
                  "guest offset %" PRIu64 ": compressed cluster (%" PRIu64 " bytes at %#" PRIx64
                  ") does not inflate to one cluster of %" PRIu32 " bytes",
                  ref->guest_off, ref->len, ref->start, c->g.cluster_size);
}

static int judge_clusters(struct checker *c)
{
    int r;

    if ((r = judge_meta_overlaps(c)) < 0 || (r = judge_cluster_overlaps(c)) < 0)
        return r;
    for (size_t k = 0; k < c->clusters.n; k++) {
        struct ref *ref = &c->clusters.v[k];
        if (ref->kind == REF_COMPRESSED && !ref->bad && c->inflate &&
            (r = judge_stream(c, ref)) < 0)
            return r;
        if (ref->bad)
            continue;
        if (ref->kind == REF_COMPRESSED)
            c->r->compressed_clusters++;
        else
            c->r->data_clusters++;
    }
    return 0;
}

/* ---- leaks -------------------------------------------------------------- */

/* Where the front may end with its padding: we round it up to a sector,
 * QEMU writes the L1 table in whole sectors from its (unaligned) start. */
static uint64_t front_used_end(const struct checker *c)
{
    return MAX(align_up(c->front_end, QCOW_SECTOR_SIZE),
               c->h.l1_offset + align_up(c->g.l1_bytes, QCOW_SECTOR_SIZE));
}

static int report_leak(struct checker *c, uint64_t start, uint64_t len, bool tail)
{
    struct qcow_problem p = { .kind = QCOW_PROBLEM_LEAK, .host_off = start, .length = len };
    uint64_t clusters = len / c->g.cluster_size + !!(len % c->g.cluster_size);

    c->r->leaks += clusters;
    c->r->leaked_bytes += len;
    if (tail)
        return report(c, p, "%" PRIu64 " bytes at the end of the file (from offset %#" PRIx64
                      ") are not referenced: leaked tail", len, start);
    return report(c, p, "%" PRIu64 " bytes (%" PRIu64 " cluster%s) at offset %#" PRIx64
                  " are not referenced: leaked", len, clusters, clusters == 1 ? "" : "s", start);
}

/* Whole clusters that nothing references, between used ranges. */
static int report_gap(struct checker *c, uint64_t gap_start, uint64_t gap_end)
{
    uint64_t lo = align_up(gap_start, c->g.cluster_size);
    uint64_t hi = align_down(gap_end, c->g.cluster_size);

    return hi > lo ? report_leak(c, lo, hi - lo, false) : 0;
}

/* Every in-file reference counts as used, the corrupt ones too: a leak
 * report should only name space nothing claims. */
static int find_leaks(struct checker *c)
{
    uint64_t front = front_used_end(c), used_end = front, refs_end = 0, tail;
    size_t ti = 0, ci = 0;
    int r;

    /* Tables and clusters are each sorted by start: merge them. */
    sort_refs(&c->tables, cmp_by_start);
    while (ti < c->tables.n || ci < c->clusters.n) {
        const struct ref *ref;
        if (ci == c->clusters.n ||
            (ti < c->tables.n && c->tables.v[ti].start < c->clusters.v[ci].start))
            ref = &c->tables.v[ti++];
        else
            ref = &c->clusters.v[ci++];
        if (ref->start > used_end && (r = report_gap(c, used_end, ref->start)) < 0)
            return r;
        used_end = MAX(used_end, ref_end(ref));
        refs_end = MAX(refs_end, ref_end(ref));
    }
    /* The tail starts after the last referenced byte (rounded up to a
     * sector), but not inside the front's padding. */
    tail = MAX(align_up(refs_end, QCOW_SECTOR_SIZE), front);
    if (c->file_size > tail)
        return report_leak(c, tail, c->file_size - tail, true);
    return 0;
}

/* ---- the Xen header ----------------------------------------------------- */

static int check_xen_checksum(struct checker *c)
{
    uint32_t sum;
    struct qcow_problem p = { .kind = QCOW_PROBLEM_XEN_CHECKSUM,
                              .host_off = QCOW_HEADER_SIZE + 4, .length = 4 };

    /* The checksum covers a big-endian L1; a host-order one (old blktap)
     * is converted, checksum and all, when the driver first opens it. */
    if (!c->xen.present || l1_little_endian(c))
        return 0;
    sum = qcow_xen_l1_checksum(c->l1_raw, c->g.l1_bytes);
    if (sum == c->xen.checksum)
        return 0;
    return report(c, p, "Xen header: L1 checksum %#010" PRIx32 " does not match the L1 table "
                  "(%#010" PRIx32 ")", c->xen.checksum, sum);
}

/* ---- one analysis ------------------------------------------------------- */

static void checker_free(struct checker *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->l1_raw);
    free(c->l1);
    free(c->l2_buf);
    free(c->stream_buf);
    free(c->cluster_buf);
    ref_vec_free(&c->tables);
    ref_vec_free(&c->clusters);
    ref_vec_free(&c->meta);
}

static int alloc_buffers(struct checker *c)
{
    c->l2_buf = malloc(c->g.l2_bytes);
    c->stream_buf = malloc(c->g.cluster_size);
    c->cluster_buf = malloc(c->g.cluster_size);
    if (!c->l2_buf || !c->stream_buf || !c->cluster_buf)
        return qc_fail(-ENOMEM, "%s: out of memory", c->path);
    return 0;
}

static void fill_report_file(const struct checker *c, struct qcow_check_report *r)
{
    r->file_size = c->file_size;
    r->header = c->h;
    r->xen = c->xen;
    r->geo = c->g;
}

/* Analyse the file (already open in c) into c->r. */
static int analyse(struct checker *c)
{
    int r;

    if ((r = read_header(c)) < 0)
        return r;
    fill_report_file(c, c->r);
    c->front_end = qcow_front_metadata_end(&c->h, &c->g);
    if ((r = alloc_buffers(c)) < 0 || (r = read_l1(c)) < 0 || (r = check_l1(c)) < 0 ||
        (r = walk_l2_tables(c)) < 0 || (r = judge_clusters(c)) < 0 ||
        (r = find_leaks(c)) < 0 || (r = check_xen_checksum(c)) < 0)
        return r;
    return 0;
}

static int analyse_path(const char *path, bool writable, bool inflate,
                        struct qcow_check_report *out, struct checker *c)
{
    *c = (struct checker){ .path = path, .fd = -1, .inflate = inflate, .r = out };
    int r = open_file(c, writable);

    return r < 0 ? r : analyse(c);
}

/* ---- repair ------------------------------------------------------------- */

static int clear_entry(struct checker *c, const struct qcow_problem *p)
{
    static const uint8_t zero[8];
    int r = write_full_at(c->fd, zero, sizeof zero, p->entry_pos);

    if (r < 0)
        return qc_fail(r, "%s: cannot clear the entry at offset %" PRIu64 ": %s", c->path,
                       p->entry_pos, strerror(-r));
    return 0;
}

static int rewrite_xen_checksum(struct checker *c)
{
    uint8_t be[4];
    int r;

    /* Entries may have been cleared: checksum what is on disk now. */
    if ((r = read_exact(c, c->l1_raw, c->g.l1_bytes, c->h.l1_offset, "the L1 table")) < 0)
        return r;
    store_be32(be, qcow_xen_l1_checksum(c->l1_raw, c->g.l1_bytes));
    if ((r = write_full_at(c->fd, be, sizeof be, QCOW_HEADER_SIZE + 4)) < 0)
        return qc_fail(r, "%s: cannot write the Xen checksum: %s", c->path, strerror(-r));
    return 0;
}

static int keep_repaired(struct qcow_check_report *r, struct qcow_problem p)
{
    p.repaired = true;
    r->repairs++;
    return keep_problem(r, &p);
}

static int sync_file(struct checker *c)
{
    if (fsync(c->fd) < 0)
        return qc_fail(-errno, "%s: fsync: %s", c->path, strerror(errno));
    return 0;
}

static bool entry_repairable(const struct qcow_problem *p)
{
    return p->corruption && p->entry_pos != 0;
}

static bool is_tail_leak(const struct qcow_problem *p, uint64_t file_size)
{
    return p->kind == QCOW_PROBLEM_LEAK && p->host_off + p->length == file_size;
}

/* Clear the entries this analysis condemned; *changed tells whether any
 * was.  The Xen checksum is rewritten when it was wrong or the L1 moved. */
static int repair_entries(struct checker *c, struct qcow_check_report *out, bool *changed)
{
    const struct qcow_check_report *found = c->r;
    bool xen_bad = false, l1_changed = false;
    int r;

    *changed = false;
    for (size_t k = 0; k < found->n_problems; k++) {
        const struct qcow_problem *p = &found->problems[k];
        if (p->kind == QCOW_PROBLEM_XEN_CHECKSUM && (r = keep_repaired(out, *p)) < 0)
            return r;
        xen_bad |= p->kind == QCOW_PROBLEM_XEN_CHECKSUM;
        if (!entry_repairable(p))
            continue;
        if ((r = clear_entry(c, p)) < 0 || (r = keep_repaired(out, *p)) < 0)
            return r;
        l1_changed |= p->table == QCOW_TABLE_L1;
        *changed = true;
    }
    if (c->xen.present && !l1_little_endian(c) && (xen_bad || l1_changed) &&
        (r = rewrite_xen_checksum(c)) < 0)
        return r;
    return (xen_bad || *changed) ? sync_file(c) : 0;
}

static int truncate_tail(struct checker *c, struct qcow_check_report *out)
{
    for (size_t k = 0; k < c->r->n_problems; k++) {
        const struct qcow_problem *p = &c->r->problems[k];
        int r;
        if (!is_tail_leak(p, c->file_size))
            continue;
        if (ftruncate(c->fd, (off_t)p->host_off) < 0)
            return qc_fail(-errno, "%s: cannot truncate to %" PRIu64 " bytes: %s", c->path,
                           p->host_off, strerror(errno));
        if ((r = keep_repaired(out, *p)) < 0)
            return r;
        return sync_file(c);
    }
    return 0;
}

/* One round: analyse, clear bad entries, or once there are none left
 * (clearing entries frees space), cut off the leaked tail.  *again is true
 * while entries were cleared: there may be more than one report holds. */
static int repair_round(const char *path, struct qcow_check_report *out, bool *again)
{
    struct qcow_check_report now = { 0 };
    struct checker c;
    int r = analyse_path(path, true, true, &now, &c);

    *again = false;
    if (r == 0)
        r = repair_entries(&c, out, again);
    if (r == 0 && !*again)
        r = truncate_tail(&c, out);
    checker_free(&c);
    qcow_check_report_free(&now);
    return r;
}

/* The rounds are bounded: each clears at least one entry of a finite set;
 * the cap only guards against a file that changes under us. */
static int repair(const char *path, struct qcow_check_report *out)
{
    bool again = true;
    int r = 0;

    for (unsigned round = 0; again && round < 1000 && r == 0; round++)
        r = repair_round(path, out, &again);
    return r;
}

/* Move the final analysis into out, after the repaired problems. */
static int merge_final(struct qcow_check_report *out, struct qcow_check_report *final)
{
    int r = 0;

    for (size_t k = 0; k < final->n_problems && r == 0; k++)
        r = keep_problem(out, &final->problems[k]);
    out->problems_dropped += final->problems_dropped;
    out->file_size = final->file_size;
    out->header = final->header;
    out->xen = final->xen;
    out->geo = final->geo;
    out->corruptions = final->corruptions;
    out->leaks = final->leaks;
    out->leaked_bytes = final->leaked_bytes;
    out->l2_tables = final->l2_tables;
    out->data_clusters = final->data_clusters;
    out->compressed_clusters = final->compressed_clusters;
    return r;
}

int qcow_check(const char *path, bool do_repair, struct qcow_check_report *r)
{
    struct qcow_check_report final = { 0 };
    struct checker c;
    int err;

    *r = (struct qcow_check_report){ 0 };
    qc_clear_error();
    if (do_repair && (err = repair(path, r)) < 0)
        return err;
    err = analyse_path(path, false, true, do_repair ? &final : r, &c);
    checker_free(&c);
    if (do_repair && err == 0)
        err = merge_final(r, &final);
    qcow_check_report_free(&final);
    r->repaired = r->repairs > 0;
    return err;
}

int qcow_count_usage(const char *path, struct qcow_usage *u)
{
    struct qcow_check_report rep = { 0 };
    struct checker c;
    int r;

    qc_clear_error();
    r = analyse_path(path, false, false, &rep, &c);
    checker_free(&c);
    *u = (struct qcow_usage){ .l2_tables = rep.l2_tables, .data_clusters = rep.data_clusters,
                              .compressed_clusters = rep.compressed_clusters };
    qcow_check_report_free(&rep);
    return r;
}
