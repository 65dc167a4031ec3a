/* Metadata writeback order (image_meta_prepare): a newly allocated L2 table
 * goes in phase 1 (written and flushed before anything points at it), the L1
 * entry that points at it in phase 2; an update of an existing L2 table is
 * phase 2 only; on a Xen image the L1 checksum is phase 2 and right after.
 * A crash after phase 1 (simulated by a child that exits there) leaves an
 * image that opens and reads the cluster as zeros. */
#include "config.h"

#include <sys/wait.h>

#include "error.h"
#include "image.h"
#include "util.h"
#include "unit.h"

#define CL 4096u

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* The write of wb's phase covering byte `at`, or NULL. */
static const struct meta_write *covering(const struct meta_write *w, size_t n, uint64_t at, uint64_t len)
{
    for (size_t i = 0; i < n; i++)
        if (w[i].off <= at && at + len <= w[i].off + w[i].len)
            return &w[i];
    return NULL;
}

static void dump(const struct meta_writeback *wb)
{
    for (size_t i = 0; i < wb->n1; i++)
        fprintf(stderr, "    phase1 [%zu] off %" PRIu64 " len %zu\n", i, wb->phase1[i].off, wb->phase1[i].len);
    for (size_t i = 0; i < wb->n2; i++)
        fprintf(stderr, "    phase2 [%zu] off %" PRIu64 " len %zu\n", i, wb->phase2[i].off, wb->phase2[i].len);
}

/* Plan, write and commit one whole cluster at guest cluster c, the way an
 * executor does.  Returns the host offset. */
static uint64_t write_whole_cluster(struct image *img, uint64_t c, uint8_t fill)
{
    struct write_piece *pieces = NULL;
    size_t n = 0, cap = 0;
    uint8_t *buf = alloc_aligned(4096, CL);
    uint64_t host = 0;

    REQUIRE(buf);
    memset(buf, fill, CL);
    CHECK_OK(image_plan_write(img, c * CL, CL, &pieces, &n, &cap));
    REQUIRE(n == 1);
    CHECK(pieces[0].kind == WRITE_ALLOC);
    CHECK(pieces[0].fill == FILL_NONE);
    CHECK_U64(pieces[0].guest_off, c * CL);
    CHECK_U64(pieces[0].len, CL);
    CHECK_U64(pieces[0].cluster_size, CL);
    CHECK(is_aligned(pieces[0].host_off, CL));
    host = pieces[0].host_off;
    REQUIRE(write_full_at(pieces[0].fd, buf, CL, host) == 0);
    CHECK_OK(image_commit_write(img, &pieces[0]));
    free(pieces);
    free(buf);
    return host;
}

static int run_phase(const struct meta_write *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (write_full_at(w[i].fd, w[i].buf, w[i].len, w[i].off) < 0)
            return -1;
    return 0;
}

static int run_writeback(struct meta_writeback *wb)
{
    if (run_phase(wb->phase1, wb->n1) < 0 || fdatasync(wb->fd) < 0 ||
        run_phase(wb->phase2, wb->n2) < 0 || fdatasync(wb->fd) < 0)
        return -1;
    return 0;
}

/* Check the shape of the writeback after allocating cluster 0 of a fresh
 * image, whose data went to `data_host`. */
static void check_first_alloc(const struct meta_writeback *wb, const struct layer_info *li,
                              uint64_t data_host, bool xen)
{
    uint64_t l1_bytes = li->l1_entries * 8, l2_bytes = (uint64_t)li->l2_entries * 8;
    uint64_t front_end = li->l1_offset + l1_bytes;
    const struct meta_write *l2 = NULL, *l1w;
    int failures = unit_failures;

    /* Phase 1: the new L2 table, whole, and nothing at the front. */
    CHECK(wb->n1 >= 1);
    for (size_t i = 0; i < wb->n1; i++) {
        CHECK(!overlaps(wb->phase1[i].off, wb->phase1[i].len, 0, front_end));
        if (wb->phase1[i].len == l2_bytes && load_be64(wb->phase1[i].buf) == data_host)
            l2 = &wb->phase1[i];
    }
    CHECK(l2 != NULL);
    if (l2) {
        CHECK(is_aligned(l2->off, CL));
        CHECK(!overlaps(l2->off, l2_bytes, data_host, CL));
        for (uint64_t k = 1; k < li->l2_entries; k++)
            CHECK(load_be64(l2->buf + 8 * k) == 0);
    }
    /* Phase 2: L1 entry 0 pointing at it; no new L2 table again. */
    l1w = covering(wb->phase2, wb->n2, li->l1_offset, 8);
    CHECK(l1w != NULL);
    if (l1w && l2)
        CHECK_U64(load_be64(l1w->buf + (li->l1_offset - l1w->off)), l2->off);
    for (size_t i = 0; i < wb->n2; i++)
        CHECK(!l2 || !overlaps(wb->phase2[i].off, wb->phase2[i].len, l2->off, l2_bytes));
    /* Xen: the checksum (bytes 52..55) is rewritten in phase 2, not phase 1. */
    if (xen) {
        CHECK(covering(wb->phase2, wb->n2, 52, 4) != NULL);
        for (size_t i = 0; i < wb->n1; i++)
            CHECK(!overlaps(wb->phase1[i].off, wb->phase1[i].len, 48, 16));
    }
    if (unit_failures != failures)
        dump(wb);
}

static void read_cluster(const char *path, uint64_t c, uint8_t want, const char *when)
{
    struct image_open_opts oo = { .format = IMAGE_FORMAT_QCOW, .read_only = true };
    struct image *img = NULL;
    uint8_t buf[CL];
    bool ok = true;

    qc_clear_error();
    int r = image_open(path, &oo, &img);
    if (r) {
        fprintf(stderr, "%s: image_open: %s\n", when, qc_error_message(r));
        unit_failures++;
        return;
    }
    CHECK_OK(image_read(img, buf, CL, c * CL));
    for (unsigned k = 0; k < CL && ok; k++)
        ok = buf[k] == want;
    unit_checks++;
    if (!ok) {
        fprintf(stderr, "%s: cluster %" PRIu64 " does not read as 0x%02x\n", when, c, want);
        unit_failures++;
    }
    CHECK_OK(image_close(img));
}

static void test_order(bool xen)
{
    const char *path = unit_path(xen ? "meta-xen.qcow" : "meta.qcow");
    struct qcow_create_opts co = { .size = UINT64_C(64) << 20, .cluster_bits = 12, .l2_bits = 9,
                                   .xen_header = xen, .xen_sparse = true };
    struct image_open_opts oo = { .format = IMAGE_FORMAT_QCOW };
    struct meta_writeback wb;
    struct image *img = NULL;
    struct layer_info li;
    uint64_t host0, host1;
    const struct meta_write *w;
    pid_t pid;
    int status;

    CHECK_OK(qcow_create(path, &co));

    /* The crash: a child writes the data and phase 1, then dies. */
    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (image_open(path, &oo, &img) != 0)
            _exit(3);
        write_whole_cluster(img, 0, 0xAB);
        memset(&wb, 0, sizeof wb);
        if (image_meta_prepare(img, &wb) != 0 || wb.n1 == 0)
            _exit(4);
        if (run_phase(wb.phase1, wb.n1) < 0 || fdatasync(wb.fd) < 0)
            _exit(5);
        _exit(unit_failures ? 6 : 0);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    read_cluster(path, 0, 0x00, "after a crash between phase 1 and phase 2");

    /* The full sequence. */
    CHECK_OK(image_open(path, &oo, &img));
    REQUIRE(img);
    layer_get_info(img->top, &li);
    CHECK(li.xen_header == xen);
    if (xen)
        CHECK_U64(li.l1_offset, 4096);
    host0 = write_whole_cluster(img, 0, 0x5A);
    memset(&wb, 0, sizeof wb);
    CHECK_OK(image_meta_prepare(img, &wb));
    check_first_alloc(&wb, &li, host0, xen);
    REQUIRE(run_writeback(&wb) == 0);
    image_meta_finish(img, &wb, 0);

    /* Nothing left dirty. */
    memset(&wb, 0, sizeof wb);
    CHECK_OK(image_meta_prepare(img, &wb));
    CHECK(wb.n1 == 0 && wb.n2 == 0);
    image_meta_finish(img, &wb, 0);

    /* A second cluster under the same L2 table: phase 2 only. */
    host1 = write_whole_cluster(img, 1, 0x5B);
    memset(&wb, 0, sizeof wb);
    CHECK_OK(image_meta_prepare(img, &wb));
    CHECK_U64(wb.n1, 0);
    w = NULL;
    for (size_t i = 0; i < wb.n2; i++)
        if (wb.phase2[i].len >= 8 && !overlaps(wb.phase2[i].off, wb.phase2[i].len, 0, li.l1_offset + li.l1_entries * 8))
            w = &wb.phase2[i];
    CHECK(w != NULL);
    if (w) {
        /* Whatever part of the L2 table it rewrites holds both entries right. */
        bool found1 = false;
        for (uint64_t at = w->off; at + 8 <= w->off + w->len; at += 8)
            if (load_be64(w->buf + (at - w->off)) == host1)
                found1 = true;
        CHECK(found1);
    }
    REQUIRE(run_writeback(&wb) == 0);
    image_meta_finish(img, &wb, 0);
    CHECK_OK(image_close(img));

    read_cluster(path, 0, 0x5A, "after the writeback");
    read_cluster(path, 1, 0x5B, "after the writeback");
    read_cluster(path, 2, 0x00, "after the writeback");

    if (xen) {
        img = NULL;
        oo.read_only = true;
        CHECK_OK(image_open(path, &oo, &img));
        REQUIRE(img);
        layer_get_info(img->top, &li);
        CHECK(li.xen_header);
        CHECK(li.xen_checksum_ok);
        CHECK_OK(image_close(img));
    }
}

int main(void)
{
    test_order(false);
    test_order(true);
    return unit_result("test-meta");
}
