/* `qcowctl check`: consistency check and repair of a QCOW v1 file.
 *
 * One analysis pass reads the front with qcow_front_read() and collects
 * every byte range the metadata references (the front: header, backing name
 * and L1 area; each L2 table; each cluster or compressed stream), judges each
 * reference on its own by the format's rules (qcow_l1_entry_fault(),
 * qcow_l2_entry_fault()), then against the others (sorted by offset:
 * overlaps with metadata, overlaps between clusters), looks at what nothing
 * references (leaks) and at the Xen extension.  Repair clears bad entries,
 * puts the Xen extension right, punches or cuts off leaked space, and runs
 * the analysis again for the verdict. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "compress.h"
#include "error.h"
#include "qcow_check.h"
#include "util.h"
#include "daemon/common/vec.h"

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
    bool block_device;
    struct qcow_front f;        /* header, Xen extension, L1 table */
    struct ref_vec tables;      /* L1 entries that name an L2 table */
    struct ref_vec clusters;    /* L2 entries that name a cluster */
    struct ref_vec meta;        /* front + accepted L2 tables, sorted */
    bool inflate;               /* check that compressed clusters inflate */
    uint64_t broken_extents;    /* L2 tables that are not blktap's whole extent */
    uint64_t first_broken_extent; /* the L1 index of the first one */
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
    case QCOW_PROBLEM_XEN_PADDING: return "xen-padding";
    case QCOW_PROBLEM_XEN_EXTENT: return "xen-extent";
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
    if (array_reserve(r->problems, r->problems_cap, r->n_problems, 1) < 0)
        return qc_fail(-ENOMEM, "out of memory for the list of problems");
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

static enum qcow_problem_kind fault_kind(enum qcow_fault f)
{
    switch (f) {
    case QCOW_FAULT_MISALIGNED: return QCOW_PROBLEM_MISALIGNED;
    case QCOW_FAULT_IN_FRONT: return QCOW_PROBLEM_OVERLAP;
    case QCOW_FAULT_PAST_EOF: return QCOW_PROBLEM_PAST_EOF;
    case QCOW_FAULT_EMPTY:
    case QCOW_FAULT_NONE: break;
    }
    return QCOW_PROBLEM_BAD_COMPRESSED;
}

void qcow_check_report_free(struct qcow_check_report *r)
{
    free(r->problems);
    r->problems = NULL;
    r->n_problems = r->problems_cap = 0;
}

/* ---- references --------------------------------------------------------- */

static int ref_push(struct ref_vec *rv, const struct ref *ref)
{
    if (vec_push(rv, *ref) < 0)
        return qc_fail(-ENOMEM, "out of memory for %zu references", rv->n);
    return 0;
}

static void ref_vec_free(struct ref_vec *rv)
{
    vec_free(rv);
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
    int r;

    c->fd = open(c->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (c->fd < 0)
        return qc_fail(-errno, "%s: cannot open: %s", c->path, strerror(errno));
    if ((r = fd_image_size(c->fd, &c->file_size, &c->block_device)) == -EINVAL)
        return qc_fail(r, "%s: not a regular file or block device", c->path);
    if (r < 0)
        return qc_fail(r, "%s: %s", c->path, strerror(-r));
    return 0;
}

/* ---- L1: which L2 tables can be walked ---------------------------------- */

static int judge_l1_entry(struct checker *c, uint64_t i)
{
    uint64_t e = c->f.l1[i];
    struct ref t = { .kind = REF_L2, .entry_pos = c->f.h.l1_offset + i * 8,
                     .guest_off = i << c->f.g.shift, .l1_index = i };
    struct qcow_span s;
    enum qcow_fault f = qcow_l1_entry_fault(&c->f.g, &c->f.lay, c->file_size, e, &s);

    t.start = s.start;
    t.len = s.len;
    if (f == QCOW_FAULT_NONE)
        return ref_push(&c->tables, &t);
    if (f == QCOW_FAULT_PAST_EOF)
        return report(c, entry_problem(fault_kind(f), &t),
                      "L1 entry %" PRIu64 " (guest offset %" PRIu64 "): L2 table at %#" PRIx64
                      " %s (%" PRIu64 " bytes)", i, t.guest_off, t.start, qcow_fault_text(f),
                      c->file_size);
    return report(c, entry_problem(fault_kind(f), &t),
                  "L1 entry %" PRIu64 " (guest offset %" PRIu64 "): L2 table at %#" PRIx64 " %s",
                  i, t.guest_off, t.start, qcow_fault_text(f));
}

/* Each L2 table must stay clear of the tables before it; the tables kept
 * are disjoint, so walking them reads no byte twice. */
static int judge_l2_overlaps(struct checker *c)
{
    const struct ref *prev = NULL;
    int r;

    sort_refs(&c->tables, cmp_by_start);
    for (size_t k = 0; k < c->tables.n; k++) {
        struct ref *t = &c->tables.v[k];
        if (prev && t->start < ref_end(prev)) {
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

/* The pieces of metadata detached from the front (a moved L1 table or
 * backing name), each taken to its whole sectors. */
static size_t detached_pieces(const struct checker *c, struct ref out[2])
{
    const struct qcow_layout *lay = &c->f.lay;
    size_t n = 0;

    if (lay->l1_end)
        out[n++] = (struct ref){ .kind = REF_FRONT, .start = lay->l1_start,
                                 .len = align_up(lay->l1_end, QCOW_SECTOR_SIZE) - lay->l1_start };
    if (lay->name_end)
        out[n++] = (struct ref){ .kind = REF_FRONT, .start = lay->name_start,
                                 .len = align_up(lay->name_end, QCOW_SECTOR_SIZE) - lay->name_start };
    if (n == 2 && out[1].start < out[0].start) {
        struct ref t = out[0];
        out[0] = out[1];
        out[1] = t;
    }
    return n;
}

static int check_l1(struct checker *c)
{
    struct ref front = { .kind = REF_FRONT, .start = 0, .len = c->f.lay.front_end }, pieces[2];
    size_t npieces = detached_pieces(c, pieces);
    int r;

    if ((r = ref_push(&c->meta, &front)) < 0)
        return r;
    for (size_t i = 0; i < npieces; i++)
        if ((r = ref_push(&c->meta, &pieces[i])) < 0)
            return r;
    for (uint64_t i = 0; i < c->f.g.l1_entries; i++)
        if (c->f.l1[i] && (r = judge_l1_entry(c, i)) < 0)
            return r;
    return judge_l2_overlaps(c);
}

/* ---- L2: the clusters --------------------------------------------------- */

static int judge_l2_entry(struct checker *c, struct ref *ref, uint64_t e)
{
    struct qcow_span s;
    enum qcow_fault f = qcow_l2_entry_fault(&c->f.g, &c->f.lay, c->file_size, e, &s);

    ref->kind = s.compressed ? REF_COMPRESSED : REF_DATA;
    ref->start = s.start;
    ref->len = s.len;
    if (f == QCOW_FAULT_NONE)
        return ref_push(&c->clusters, ref);
    if (s.compressed)
        return report(c, entry_problem(fault_kind(f), ref),
                      "guest offset %" PRIu64 ": compressed cluster (%" PRIu64 " bytes at %#"
                      PRIx64 ") %s", ref->guest_off, ref->len, ref->start, qcow_fault_text(f));
    if (f == QCOW_FAULT_PAST_EOF)
        return report(c, entry_problem(fault_kind(f), ref),
                      "guest offset %" PRIu64 ": cluster at %#" PRIx64 " %s (%" PRIu64 " bytes)",
                      ref->guest_off, ref->start, qcow_fault_text(f), c->file_size);
    return report(c, entry_problem(fault_kind(f), ref), "guest offset %" PRIu64 ": cluster at %#"
                  PRIx64 " %s", ref->guest_off, ref->start, qcow_fault_text(f));
}

/* blktap's fast path takes cluster j of an L2 table to be at table + table
 * size + j * cluster size when the header asks for whole extents. */
static bool is_whole_extent(const struct checker *c, const struct ref *t, const uint8_t *l2)
{
    const struct qcow_geometry *g = &c->f.g;

    for (uint32_t j = 0; j < g->l2_entries; j++)
        if (load_be64(l2 + (size_t)j * 8) != t->start + g->l2_bytes + (uint64_t)j * g->cluster_size)
            return false;
    return true;
}

static int walk_l2_table(struct checker *c, const struct ref *t)
{
    int r;

    if ((r = read_exact(c, c->l2_buf, c->f.g.l2_bytes, t->start, "an L2 table")) < 0)
        return r;
    if (!is_whole_extent(c, t, c->l2_buf) && c->broken_extents++ == 0)
        c->first_broken_extent = t->l1_index;
    for (uint32_t j = 0; j < c->f.g.l2_entries; j++) {
        uint64_t e = load_be64(c->l2_buf + (size_t)j * 8);
        struct ref ref = { .entry_pos = t->start + (uint64_t)j * 8,
                           .guest_off = t->guest_off + ((uint64_t)j << c->f.h.cluster_bits) };
        if (e != 0 && (r = judge_l2_entry(c, &ref, e)) < 0)
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

/* The L2 table overlapping ref, if any (meta is sorted and disjoint; the
 * front is in it, but no accepted cluster starts inside it). */
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
    if (qcow_inflate_cluster(c->stream_buf, ref->len, c->cluster_buf, c->f.g.cluster_size) == 0)
        return 0;
    ref->bad = true;
    return report(c, entry_problem(QCOW_PROBLEM_BAD_COMPRESSED, ref),
                  "guest offset %" PRIu64 ": compressed cluster (%" PRIu64 " bytes at %#" PRIx64
                  ") does not inflate to one cluster of %" PRIu32 " bytes",
                  ref->guest_off, ref->len, ref->start, c->f.g.cluster_size);
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
    uint64_t end = align_up(c->f.lay.front_end, QCOW_SECTOR_SIZE);

    if (qcow_l1_detached(&c->f.lay))
        return end;
    return MAX(end, c->f.h.l1_offset + align_up(c->f.g.l1_bytes, QCOW_SECTOR_SIZE));
}

static int report_leak(struct checker *c, uint64_t start, uint64_t len, bool tail)
{
    struct qcow_problem p = { .kind = QCOW_PROBLEM_LEAK, .host_off = start, .length = len };
    uint64_t clusters = len / c->f.g.cluster_size + !!(len % c->f.g.cluster_size);

    c->r->leaks += clusters;
    c->r->leaked_bytes += len;
    if (tail)
        return report(c, p, "%" PRIu64 " bytes at the end of the file (from offset %#" PRIx64
                      ") are not referenced: leaked tail", len, start);
    return report(c, p, "%" PRIu64 " bytes (%" PRIu64 " cluster%s) at offset %#" PRIx64
                  " are not referenced: leaked", len, clusters, clusters == 1 ? "" : "s", start);
}

static bool all_zero(const uint8_t *p, size_t len)
{
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* The first byte in [from, end) of a block device that is not zero, or end. */
static uint64_t next_nonzero(struct checker *c, uint64_t from, uint64_t end)
{
    uint32_t unit = c->f.g.cluster_size;

    for (uint64_t off = from; off < end; off += unit) {
        size_t len = (size_t)MIN(unit, end - off);
        if (read_full_at(c->fd, c->cluster_buf, len, off) != (ssize_t)len ||
            !all_zero(c->cluster_buf, len))
            return off;
    }
    return end;
}

/* The next run of [from, end) that holds data, as [*start, *stop); false when
 * there is none.  Holes hold none; a block device has no holes, but an
 * all-zero cluster there (a punched one reads so) holds none either. */
static bool next_data(struct checker *c, uint64_t from, uint64_t end, uint64_t *start,
                      uint64_t *stop)
{
    off_t d, h;

    if (c->block_device) {
        *start = next_nonzero(c, from, end);
        *stop = MIN(align_down(*start, c->f.g.cluster_size) + c->f.g.cluster_size, end);
        return *start < end;
    }
    d = lseek(c->fd, (off_t)from, SEEK_DATA);
    if (d < 0) {
        if (errno == ENXIO)
            return false;           /* nothing but a hole up to the end of the file */
        d = (off_t)from;            /* no hole support: all of it is data */
    }
    if ((uint64_t)d >= end)
        return false;
    h = lseek(c->fd, d, SEEK_HOLE);
    *start = (uint64_t)d;
    *stop = h < 0 ? end : MIN((uint64_t)h, end);
    return true;
}

/* A file system makes holes in whole blocks only: a cluster smaller than a
 * page that shares one with referenced data stays "data" once punched.
 * Such a cluster holds data only if it is not all zeros. */
#define HOLE_UNIT 4096

static bool zero_cluster(struct checker *c, uint64_t off)
{
    uint32_t cs = c->f.g.cluster_size;

    return cs < HOLE_UNIT && !c->block_device &&
           read_full_at(c->fd, c->cluster_buf, cs, off) == (ssize_t)cs &&
           all_zero(c->cluster_buf, cs);
}

/* The data run [*start, *stop) without the zero clusters at its ends
 * (between data, they cost nothing either, but runs are short: the ends
 * are enough for what a punched cluster leaves). */
static void trim_zero_clusters(struct checker *c, uint64_t *start, uint64_t *stop)
{
    uint32_t cs = c->f.g.cluster_size;

    while (*start < *stop && zero_cluster(c, *start))
        *start += cs;
    while (*stop > *start && zero_cluster(c, *stop - cs))
        *stop -= cs;
}

/* Whole clusters of [gap_start, gap_end) that nothing references and that
 * hold data. */
static int report_gap(struct checker *c, uint64_t gap_start, uint64_t gap_end)
{
    uint64_t cs = c->f.g.cluster_size;
    uint64_t lo = align_up(gap_start, cs), hi = align_down(gap_end, cs);
    uint64_t run_lo = 0, run_hi = 0, start, stop;
    int r;

    for (uint64_t pos = lo; pos < hi && next_data(c, pos, hi, &start, &stop); pos = stop) {
        start = align_down(start, cs);
        stop = MIN(align_up(stop, cs), hi);
        trim_zero_clusters(c, &start, &stop);
        if (start >= stop)
            continue;           /* all zeros: stop is still the run's end */
        if (run_hi && start <= run_hi) {
            run_hi = MAX(run_hi, stop);
            continue;
        }
        if (run_hi && (r = report_leak(c, run_lo, run_hi - run_lo, false)) < 0)
            return r;
        run_lo = start;
        run_hi = stop;
    }
    return run_hi ? report_leak(c, run_lo, run_hi - run_lo, false) : 0;
}

/* Every in-file reference counts as used, the corrupt ones too: a leak
 * report should only name space nothing claims. */
/* The next of three lists sorted by start, merged. */
static const struct ref *next_used(const struct ref *a, size_t na, size_t *ia, const struct ref *b,
                                   size_t nb, size_t *ib, const struct ref *p, size_t np, size_t *ip)
{
    const struct ref *best = NULL;
    size_t *which = NULL;

    if (*ia < na) {
        best = &a[*ia];
        which = ia;
    }
    if (*ib < nb && (!best || b[*ib].start < best->start)) {
        best = &b[*ib];
        which = ib;
    }
    if (*ip < np && (!best || p[*ip].start < best->start)) {
        best = &p[*ip];
        which = ip;
    }
    if (which)
        (*which)++;
    return best;
}

static int find_leaks(struct checker *c)
{
    uint64_t front = front_used_end(c), used_end = front, refs_end = 0, tail;
    struct ref pieces[2];
    size_t ti = 0, ci = 0, pi = 0, np = detached_pieces(c, pieces);
    const struct ref *ref;
    int r;

    /* Tables, clusters and detached metadata are each sorted by start:
     * merge them. */
    sort_refs(&c->tables, cmp_by_start);
    while ((ref = next_used(c->tables.v, c->tables.n, &ti, c->clusters.v, c->clusters.n, &ci,
                            pieces, np, &pi))) {
        if (ref->start > used_end && (r = report_gap(c, used_end, ref->start)) < 0)
            return r;
        used_end = MAX(used_end, ref_end(ref));
        refs_end = MAX(refs_end, ref_end(ref));
    }
    /* The tail starts after the last referenced byte (rounded up to a
     * sector), but not inside the front's padding.  A block device is as
     * large as it is: the rest of it is not the image's. */
    tail = MAX(align_up(refs_end, QCOW_SECTOR_SIZE), front);
    if (c->file_size > tail && !c->block_device)
        return report_leak(c, tail, c->file_size - tail, true);
    return 0;
}

/* ---- the Xen extension -------------------------------------------------- */

static int check_xen(struct checker *c)
{
    const struct qcow_front *f = &c->f;
    struct qcow_problem p = { .kind = QCOW_PROBLEM_XEN_CHECKSUM,
                              .host_off = QCOW_HEADER_SIZE + 4, .length = 4 };
    int r;

    /* Where blktap does not read it (a backing file), neither do we. */
    if (!f->xen_honoured)
        return 0;
    if (!f->l1_padding_zero) {
        struct qcow_problem pad = { .kind = QCOW_PROBLEM_XEN_PADDING,
                                    .host_off = f->h.l1_offset + f->g.l1_bytes,
                                    .length = f->l1_area_bytes - f->g.l1_bytes };
        if ((r = report(c, pad, "Xen header: the unused entries of the long L1 table (%" PRIu64
                        " bytes at %#" PRIx64 ") are not zero", pad.length, pad.host_off)) < 0)
            return r;
    }
    if (!f->xen_checksum_ok)
        return report(c, p, "Xen header: L1 checksum %#010" PRIx32 " does not match the L1 "
                      "table (%#010" PRIx32 ")", f->xen.checksum, f->xen_checksum_now);
    if (f->xen.min_cluster_alloc == f->g.l2_entries && c->broken_extents) {
        p = (struct qcow_problem){ .kind = QCOW_PROBLEM_XEN_EXTENT,
                                   .host_off = QCOW_HEADER_SIZE + 8, .length = 4 };
        return report(c, p, "Xen header: whole-extent allocation, but %" PRIu64 " L2 table%s "
                      "(the first of L1 entry %" PRIu64 ") %s not followed by its clusters: "
                      "blktap would read the wrong clusters", c->broken_extents,
                      c->broken_extents == 1 ? "" : "s", c->first_broken_extent,
                      c->broken_extents == 1 ? "is" : "are");
    }
    return 0;
}

/* ---- one analysis ------------------------------------------------------- */

static void checker_free(struct checker *c)
{
    if (c->fd >= 0)
        close(c->fd);
    qcow_front_free(&c->f);
    free(c->l2_buf);
    free(c->stream_buf);
    free(c->cluster_buf);
    ref_vec_free(&c->tables);
    ref_vec_free(&c->clusters);
    ref_vec_free(&c->meta);
}

static int alloc_buffers(struct checker *c)
{
    c->l2_buf = malloc(c->f.g.l2_bytes);
    c->stream_buf = malloc(c->f.g.cluster_size);
    c->cluster_buf = malloc(c->f.g.cluster_size);
    if (!c->l2_buf || !c->stream_buf || !c->cluster_buf)
        return qc_fail(-ENOMEM, "%s: out of memory", c->path);
    return 0;
}

static void fill_report_file(const struct checker *c, struct qcow_check_report *r)
{
    r->file_size = c->file_size;
    r->header = c->f.h;
    r->xen = c->f.xen;
    r->geo = c->f.g;
    r->xen_honoured = c->f.xen_honoured;
    r->l1_long = c->f.l1_long;
}

/* Analyse the file (already open in c) into c->r. */
static int analyse(struct checker *c)
{
    int r;

    if ((r = qcow_front_read(c->fd, c->path, c->file_size, &c->f)) < 0)
        return r;
    fill_report_file(c, c->r);
    if ((r = alloc_buffers(c)) < 0 || (r = check_l1(c)) < 0 || (r = walk_l2_tables(c)) < 0 ||
        (r = judge_clusters(c)) < 0 || (r = find_leaks(c)) < 0 || (r = check_xen(c)) < 0)
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

static int keep_repaired(struct qcow_check_report *r, struct qcow_problem p, const char *remedy)
{
    p.repaired = true;
    p.remedy = remedy;
    r->repairs++;
    return keep_problem(r, &p);
}

static int sync_file(struct checker *c)
{
    if (fsync(c->fd) < 0)
        return qc_fail(-errno, "%s: fsync: %s", c->path, strerror(errno));
    return 0;
}

static int write_at(struct checker *c, const void *buf, size_t len, uint64_t off, const char *what)
{
    int r = write_full_at(c->fd, buf, len, off);

    if (r < 0)
        return qc_fail(r, "%s: cannot write %s at offset %" PRIu64 ": %s", c->path, what, off,
                       strerror(-r));
    return 0;
}

static const char *entry_remedy(const struct qcow_problem *p)
{
    return p->table == QCOW_TABLE_L1
               ? "L1 entry cleared: the guest data of its whole L2 table is lost"
               : "L2 entry cleared: the guest data of this cluster is lost";
}

/* Clear the entries this analysis condemned; *changed tells whether any
 * was. */
static int repair_entries(struct checker *c, struct qcow_check_report *out, bool *changed)
{
    static const uint8_t zero[8];
    const struct qcow_check_report *found = c->r;
    int r;

    *changed = false;
    for (size_t k = 0; k < found->n_problems; k++) {
        const struct qcow_problem *p = &found->problems[k];
        if (!p->corruption || p->table == QCOW_TABLE_NONE)
            continue;
        if ((r = write_at(c, zero, sizeof zero, p->entry_pos, "an entry")) < 0 ||
            (r = keep_repaired(out, *p, entry_remedy(p))) < 0)
            return r;
        *changed = true;
    }
    return *changed ? sync_file(c) : 0;
}

/* One round: analyse and clear bad entries.  *again is true while entries
 * were cleared: there may be more than one report holds. */
static int entries_round(const char *path, struct qcow_check_report *out, bool *again)
{
    struct qcow_check_report now = { 0 };
    struct checker c;
    int r = analyse_path(path, true, true, &now, &c);

    *again = false;
    if (r == 0)
        r = repair_entries(&c, out, again);
    checker_free(&c);
    qcow_check_report_free(&now);
    return r;
}

static const struct qcow_problem *find_kind(const struct qcow_check_report *r,
                                            enum qcow_problem_kind kind)
{
    for (size_t k = 0; k < r->n_problems; k++)
        if (r->problems[k].kind == kind)
            return &r->problems[k];
    return NULL;
}

static int zero_l1_padding(struct checker *c)
{
    static const uint8_t zeros[64 << 10];
    uint64_t off = c->f.h.l1_offset + c->f.g.l1_bytes, end = c->f.h.l1_offset + c->f.l1_area_bytes;
    int r = 0;

    for (size_t n; off < end && r == 0; off += n) {
        n = (size_t)MIN(end - off, sizeof zeros);
        r = write_at(c, zeros, n, off, "the L1 table");
    }
    return r;
}

/* The checksum of the L1 area as it is now (its padding zero). */
static int area_checksum(struct checker *c, uint32_t *sum)
{
    _cleanup_free_ uint8_t *be = malloc(c->f.g.l1_bytes ? c->f.g.l1_bytes : 1);

    if (!be)
        return -ENOMEM;
    for (uint64_t i = 0; i < c->f.g.l1_entries; i++)
        store_be64(be + i * 8, c->f.l1[i]);
    *sum = qcow_xen_area_checksum(be, c->f.g.l1_bytes, c->f.l1_area_bytes);
    return 0;
}

static int write_xen_fields(struct checker *c, uint32_t checksum, uint32_t min_cluster_alloc)
{
    struct qcow_xen_header x = c->f.xen;
    uint8_t raw[QCOW_XEN_HEADER_SIZE];

    x.checksum = checksum;
    x.min_cluster_alloc = min_cluster_alloc;
    qcow_xen_header_encode(&x, raw);
    return write_at(c, raw, sizeof raw, QCOW_HEADER_SIZE, "the Xen header");
}

/* The Xen extension, after the entries are cleared.  The rule: never make
 * blktap trust more than the image holds.  The checksum is made right (so
 * blktap honours the sparse flag and allocation hint again), but where the
 * header promises whole extents that some L2 table does not have, blktap's
 * fast path would read the wrong clusters: the promise is withdrawn
 * (min_cluster_alloc 1) and blktap reads the L2 tables instead. */
static int repair_xen(struct checker *c, struct qcow_check_report *out)
{
    const struct qcow_problem *pad = find_kind(c->r, QCOW_PROBLEM_XEN_PADDING);
    const struct qcow_problem *sum = find_kind(c->r, QCOW_PROBLEM_XEN_CHECKSUM);
    const struct qcow_problem *ext = find_kind(c->r, QCOW_PROBLEM_XEN_EXTENT);
    struct qcow_front *f = &c->f;
    uint32_t min = f->xen.min_cluster_alloc;
    bool extents_promised = min == f->g.l2_entries;
    uint32_t checksum = f->xen.checksum;
    int r;

    if (!pad && !sum && !ext)
        return 0;
    if (pad && ((r = zero_l1_padding(c)) < 0 ||
                (r = keep_repaired(out, *pad, "zeroed")) < 0))
        return r;
    if ((sum || pad) && (r = area_checksum(c, &checksum)) < 0)
        return r;
    /* A checksum blktap will trust, with whole extents promised and not there. */
    if (extents_promised && c->broken_extents && (ext || sum || pad))
        min = 1;
    if ((r = write_xen_fields(c, checksum, min)) < 0)
        return r;
    if (sum && (r = keep_repaired(out, *sum, "rewritten")) < 0)
        return r;
    if (min != f->xen.min_cluster_alloc) {
        struct qcow_problem p = ext ? *ext : (struct qcow_problem){
            .kind = QCOW_PROBLEM_XEN_EXTENT, .corruption = true,
            .host_off = QCOW_HEADER_SIZE + 8, .length = 4 };
        if (!ext)
            snprintf(p.message, sizeof p.message, "Xen header: whole-extent allocation, but "
                     "%" PRIu64 " L2 table%s not followed by its clusters", c->broken_extents,
                     c->broken_extents == 1 ? " is" : "s are");
        if ((r = keep_repaired(out, p, "min_cluster_alloc set to 1: blktap reads the L2 "
                               "tables instead")) < 0)
            return r;
    }
    return sync_file(c);
}

static int punch(struct checker *c, uint64_t off, uint64_t len)
{
    if (fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (errno == EOPNOTSUPP)
        return 1;
    return qc_fail(-errno, "%s: cannot punch a hole at offset %" PRIu64 ": %s", c->path, off,
                   strerror(errno));
}

/* Leaked clusters inside the file get a hole punched in them (their space
 * goes back to the file system; they read as zeros), a leaked tail is cut
 * off. */
static int reclaim_leaks(struct checker *c, struct qcow_check_report *out)
{
    bool changed = false;
    int r;

    for (size_t k = 0; k < c->r->n_problems; k++) {
        const struct qcow_problem *p = &c->r->problems[k];
        if (p->kind != QCOW_PROBLEM_LEAK)
            continue;
        if (p->host_off + p->length == c->file_size) {
            if (ftruncate(c->fd, (off_t)p->host_off) < 0)
                return qc_fail(-errno, "%s: cannot truncate to %" PRIu64 " bytes: %s", c->path,
                               p->host_off, strerror(errno));
            r = keep_repaired(out, *p, "file truncated");
        } else if ((r = punch(c, p->host_off, p->length)) == 0) {
            r = keep_repaired(out, *p, "hole punched: the space is free again");
        } else if (r > 0) {
            continue;               /* the file system cannot: the leak stays */
        }
        if (r < 0)
            return r;
        changed = true;
    }
    return changed ? sync_file(c) : 0;
}

/* Analyse again and run one fixer on what is found. */
static int fix_round(const char *path, struct qcow_check_report *out, bool leaks)
{
    struct qcow_check_report now = { 0 };
    struct checker c;
    int r = analyse_path(path, true, true, &now, &c);

    if (r == 0)
        r = leaks ? reclaim_leaks(&c, out) : repair_xen(&c, out);
    checker_free(&c);
    qcow_check_report_free(&now);
    return r;
}

int qcow_reclaim_leaks(const char *path, uint64_t *bytes)
{
    struct qcow_check_report out = { 0 };
    int r;

    qc_clear_error();
    *bytes = 0;
    r = fix_round(path, &out, true);
    for (size_t k = 0; k < out.n_problems; k++)
        if (out.problems[k].repaired)
            *bytes += out.problems[k].length;
    qcow_check_report_free(&out);
    return r;
}

/* The rounds are bounded: each clears at least one entry of a finite set;
 * the cap only guards against a file that changes under us.  Then the Xen
 * extension (which depends on the L1 as it ends up), then the leaks (which
 * clearing entries may have made). */
static int repair(const char *path, struct qcow_check_report *out)
{
    bool again = true;
    int r = 0;

    for (unsigned round = 0; again && round < 1000 && r == 0; round++)
        r = entries_round(path, out, &again);
    if (r == 0)
        r = fix_round(path, out, false);
    if (r == 0)
        r = fix_round(path, out, true);
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
    out->xen_honoured = final->xen_honoured;
    out->l1_long = final->l1_long;
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
    for (size_t k = 0; k < rep.n_problems; k++)
        u->bad_entries += rep.problems[k].table != QCOW_TABLE_NONE;
    qcow_check_report_free(&rep);
    return r;
}
