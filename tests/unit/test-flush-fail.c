/* A failed flush is sticky (image_flush_failed): after fdatasync fails once,
 * every later flush and write of the image fails, although fdatasync works
 * again, because the kernel may have dropped the data the new L2/L1 entries
 * would point at.  Nothing more is published: reopened, the image is
 * consistent and the cluster written before the failure reads as zeros.
 * fdatasync is this program's own (the engine is linked in statically), so
 * it can fail on demand. */
#include "config.h"

#include <errno.h>
#include <sys/syscall.h>

#include "error.h"
#include "image.h"
#include "qcow_check.h"
#include "util.h"
#include "unit.h"

#define CL 4096u

static int fdatasync_failures;  /* how many of the next calls fail */
static int fdatasync_calls;

int fdatasync(int fd)
{
    fdatasync_calls++;
    if (fdatasync_failures > 0) {
        fdatasync_failures--;
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

static void fill(uint8_t *buf, uint8_t v)
{
    memset(buf, v, CL);
}

static bool all(const uint8_t *buf, uint8_t v)
{
    for (unsigned i = 0; i < CL; i++)
        if (buf[i] != v)
            return false;
    return true;
}

int main(void)
{
    const char *path = unit_path("sticky.qcow");
    struct qcow_create_opts co = { .size = UINT64_C(16) << 20 };
    struct image_open_opts oo = { .format = IMAGE_FORMAT_QCOW };
    struct qcow_check_report report;
    struct image *img = NULL;
    uint8_t buf[CL];
    int r;

    CHECK_OK(qcow_create(path, &co));
    CHECK_OK(image_open(path, &oo, &img));
    REQUIRE(img);

    /* Published before anything fails. */
    fill(buf, 0x11);
    CHECK_OK(image_write(img, buf, CL, 0));
    CHECK_OK(image_flush(img));

    /* A new cluster, then a flush whose fdatasync fails. */
    fill(buf, 0x22);
    CHECK_OK(image_write(img, buf, CL, 4 * CL));
    fdatasync_failures = 1;
    CHECK(image_flush(img) == -EIO);
    CHECK(fdatasync_failures == 0);

    /* fdatasync works again, but nothing may be published now. */
    int calls = fdatasync_calls;
    qc_clear_error();
    r = image_flush(img);
    CHECK(r == -EIO);
    CHECK(strstr(qc_error_message(r), "an earlier flush failed") != NULL);
    CHECK(fdatasync_calls == calls);
    fill(buf, 0x33);
    CHECK(image_write(img, buf, CL, 8 * CL) == -EIO);

    /* Reads still see what this process has. */
    CHECK_OK(image_read(img, buf, CL, 4 * CL));
    CHECK(all(buf, 0x22));
    CHECK(image_close(img) == -EIO);

    /* On disk: the state of the last good flush, consistent. */
    oo.read_only = true;
    CHECK_OK(image_open(path, &oo, &img));
    REQUIRE(img);
    CHECK_OK(image_read(img, buf, CL, 0));
    CHECK(all(buf, 0x11));
    CHECK_OK(image_read(img, buf, CL, 4 * CL));
    CHECK(all(buf, 0x00));
    CHECK_OK(image_read(img, buf, CL, 8 * CL));
    CHECK(all(buf, 0x00));
    CHECK_OK(image_close(img));
    CHECK_OK(qcow_check(path, false, &report));
    CHECK_U64(report.corruptions, 0);
    qcow_check_report_free(&report);
    return unit_result("test-flush-fail");
}
