/* libFuzzer target: open the input as a qcow image (and as raw), walk its
 * layers, map and read up to 4 MiB of it, close; then run `qcowctl check`'s
 * analysis on it (qcow_check, without repair), which reads the format
 * through the same decoder.  Nothing an input holds may crash the engine,
 * hang it, or make it allocate without bound.
 *
 * The input is written to a file in a private directory; a backing file name
 * without a slash therefore resolves inside that directory (the input itself
 * or nothing), and one with a slash is not followed (max_depth 1), so that
 * the fuzzer never opens files of the machine it runs on.  Encrypted images
 * are read with the password "fuzz". */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "image.h"
#include "qcow_check.h"
#include "qcow_format.h"
#include "util.h"

#define READ_CAP (UINT64_C(4) << 20)
#define CHUNK (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[4096];
static char path[4200];

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static int setup(void)
{
    const char *tmp = getenv("TMPDIR");

    if (path[0])
        return 0;
    snprintf(dir, sizeof dir, "%s/qcowd-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(path, sizeof path, "%s/fuzz.qcow", dir);
    atexit(cleanup);
    return 0;
}

/* May this input's backing name reach outside the private directory? */
static bool backing_escapes(const uint8_t *d, size_t n)
{
    struct qcow_header h;
    uint64_t off;
    uint32_t len;

    if (n < QCOW_HEADER_SIZE)
        return false;
    qcow_header_decode(d, &h);
    if (h.magic != QCOW_MAGIC)
        return false;
    off = h.backing_offset;
    len = h.backing_len;
    if (!off)
        return false;
    if (off >= n)
        return false;               /* unreadable: the engine refuses it */
    if (len > n - off)
        len = (uint32_t)(n - off);
    if (memchr(d + off, '/', len))
        return true;
    /* "." and ".." name directories; refuse to let them be probed either. */
    return (len == 1 && d[off] == '.') || (len == 2 && d[off] == '.' && d[off + 1] == '.');
}

static void exercise(enum image_format fmt, bool escapes)
{
    static uint8_t buf[CHUNK];
    struct image_open_opts o = {
        .format = fmt,
        .read_only = true,
        .key = (const uint8_t *)"fuzz",
        .key_len = 4,
        .l2_cache_bytes = 1u << 20,
        .max_depth = escapes ? 1 : 4,
    };
    struct extent_vec ev = { 0 };
    struct image *img = NULL;
    uint64_t n, off;

    qc_clear_error();
    if (image_open(path, &o, &img) != 0)
        return;
    for (struct layer *l = img->top; l; l = layer_backing(l)) {
        struct layer_info li;
        layer_get_info(l, &li);
    }
    n = img->size < READ_CAP ? img->size : READ_CAP;
    (void)image_map(img, 0, n, &ev);
    extent_vec_free(&ev);
    for (off = 0; off + IMAGE_SECTOR_SIZE <= n; ) {
        uint64_t len = align_down(MIN(n - off, CHUNK), IMAGE_SECTOR_SIZE);
        if (image_read(img, buf, len, off) != 0)
            break;
        off += len;
    }
    if (off < n && off == align_down(n, IMAGE_SECTOR_SIZE))
        (void)image_pread(img, buf, n - off, off);
    /* A byte-granular read across a sector boundary, if there is one. */
    if (n > 1000)
        (void)image_pread(img, buf, 300, 400);
    image_close(img);
}

/* The checker: never follows the backing file, never writes without
 * --repair.  Bounded by the file's size. */
static void check(size_t size)
{
    struct qcow_check_report rep;

    if (size > (8u << 20))
        return;
    qc_clear_error();
    (void)qcow_check(path, false, &rep);
    qcow_check_report_free(&rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd;

    setup();
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (write_full_at(fd, data, size, 0) != 0)
        abort();
    close(fd);
    exercise(IMAGE_FORMAT_QCOW, backing_escapes(data, size));
    exercise(IMAGE_FORMAT_RAW, false);
    check(size);
    return 0;
}
