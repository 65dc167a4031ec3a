/* Consistency check and repair of a QCOW v1 file, working on the file itself
 * (not through the driver), so that it can look at images the driver refuses.
 * The header, the L1 table and every entry are read and judged by the
 * format rules of qcow_format.h, the same the driver applies.
 *
 * The check never trusts the file: every offset is range-checked with
 * overflow-safe arithmetic, memory grows with the size of the file (never
 * with a number read from it), every L2 table is read at most once and no
 * byte of the file is walked twice, so any input ends in bounded time.
 *
 * What counts as what:
 *  - corruption: an L1 entry whose L2 table is misaligned, not entirely
 *    inside the file, or overlaps other metadata; an L2 entry whose cluster
 *    is misaligned, not entirely inside the file, overlaps metadata or
 *    another cluster; a compressed cluster that does not inflate to exactly
 *    one cluster; in a Xen extension blktap reads: a wrong L1 checksum,
 *    non-zero entries in the unused part of a long L1, or (where blktap
 *    trusts the header for whole-extent allocation) an L2 table whose
 *    clusters are not the extent right behind it.
 *  - leak: space in the file that nothing references and that holds data
 *    (a hole costs nothing and is not a leak): whole clusters between
 *    referenced data, and a tail past the last referenced byte (rounded up
 *    to a sector; not on a block device, whose size is not the image's).
 *    Padding up to the next cluster boundary is not a leak.
 *
 * Repair clears the offending L1/L2 entries (the guest data behind them is
 * lost; the range then reads from the backing file, or as zeros), puts the
 * Xen extension right in a way that never makes blktap trust more than the
 * image holds, punches holes in leaked clusters inside the file and cuts a
 * leaked tail off. */
#ifndef QCOWD_QCOW_CHECK_H
#define QCOWD_QCOW_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qcow_format.h"

enum qcow_problem_kind {
    QCOW_PROBLEM_LEAK,          /* unreferenced space (leak, not corruption) */
    QCOW_PROBLEM_PAST_EOF,      /* an L2 table or cluster not inside the file */
    QCOW_PROBLEM_MISALIGNED,    /* an L2 table or cluster not 512-byte aligned */
    QCOW_PROBLEM_OVERLAP,       /* shares bytes with metadata or another cluster */
    QCOW_PROBLEM_BAD_COMPRESSED,/* does not inflate to exactly one cluster */
    QCOW_PROBLEM_XEN_CHECKSUM,  /* the Xen header's L1 checksum is wrong */
    QCOW_PROBLEM_XEN_PADDING,   /* the unused part of a long L1 is not zero */
    QCOW_PROBLEM_XEN_EXTENT,    /* blktap would read a whole extent that is not there */
};

/* Where a problem sits. */
enum qcow_problem_table {
    QCOW_TABLE_NONE,            /* leaks, the Xen header */
    QCOW_TABLE_L1,              /* an L1 entry (its L2 table) */
    QCOW_TABLE_L2,              /* an L2 entry (its cluster) */
};

struct qcow_problem {
    enum qcow_problem_kind kind;
    enum qcow_problem_table table;
    bool corruption;            /* false for leaks */
    bool repaired;
    uint64_t host_off;          /* the bytes concerned in the file */
    uint64_t length;
    uint64_t guest_off;         /* L1/L2: first guest byte the entry maps */
    uint64_t entry_pos;         /* L1/L2: file offset of the entry itself */
    char message[256];          /* one line, without the file name */
    const char *remedy;         /* repaired: what was done, and what it cost */
};

/* At most this many problems are kept; the counts go on past it. */
#define QCOW_CHECK_MAX_PROBLEMS 10000

struct qcow_check_report {
    /* The file. */
    uint64_t file_size;
    struct qcow_header header;
    struct qcow_xen_header xen;
    struct qcow_geometry geo;
    bool xen_honoured;          /* blktap reads the extension */
    bool l1_long;               /* blktap's long L1 layout */

    /* After the check (after repair, when repairing). */
    uint64_t corruptions;       /* corruption problems */
    uint64_t leaks;             /* leaked clusters (a partial one counts) */
    uint64_t leaked_bytes;

    /* Usage, counting the entries that are valid. */
    uint64_t l2_tables;
    uint64_t data_clusters;     /* allocated normally (not compressed) */
    uint64_t compressed_clusters;

    /* What was found: problems repaired first (repaired = true), then the
     * ones that remain. */
    struct qcow_problem *problems;
    size_t n_problems, problems_cap;
    uint64_t problems_dropped;  /* not kept past QCOW_CHECK_MAX_PROBLEMS */

    uint64_t repairs;           /* problems repaired */
    bool repaired;              /* repairs > 0 */
};

/* Check the QCOW v1 file at path; with repair, fix what can be fixed and
 * check again.  Returns 0 when the check ran (the verdict is in *r: clean
 * when corruptions == 0 && leaks == 0), or -errno when it could not run
 * (cannot open or read, not qcow, invalid header), with a message in
 * qc_error_message().  Free *r with qcow_check_report_free() either way. */
int qcow_check(const char *path, bool repair, struct qcow_check_report *r);

void qcow_check_report_free(struct qcow_check_report *r);

/* Give back leaked space only (as check --repair does for leaks), for
 * what a shrink dropped: *bytes gets how much. */
int qcow_reclaim_leaks(const char *path, uint64_t *bytes);

/* "leak", "past-eof", "misaligned", "overlap", "bad-compressed", "xen-checksum",
 * "xen-padding", "xen-extent". */
const char *qcow_problem_kind_name(enum qcow_problem_kind k);

/* What the L1/L2 tables of a qcow file hold: valid L2 tables and cluster
 * entries.  Read-only, fast (no decompression, no overlap analysis); for
 * `qcowctl info`.  Returns 0 or -errno with a message. */
struct qcow_usage {
    uint64_t l2_tables;
    uint64_t data_clusters;
    uint64_t compressed_clusters;
    uint64_t bad_entries;       /* L1/L2 entries check calls corrupt (inflation untried) */
};

int qcow_count_usage(const char *path, struct qcow_usage *u);

#endif
