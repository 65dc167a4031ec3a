/* Creating qcow v1 images: the header, optional Xen extension header and
 * backing name, an empty L1 table, and optional preallocation.  With the Xen
 * extension the image is laid out as blktap lays it out (L1 at 4096, its
 * long L1 table, the checksum over all of it), so blktap can open it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#include "driver.h"
#include "error.h"
#include "qcow.h"
#include "util.h"

/* The size of the backing file, resolved like image_open resolves it. */
static int backing_size(const char *path, const struct qcow_create_opts *o, uint64_t *size)
{
    _cleanup_free_ char *resolved = NULL;
    struct image_open_opts bo = { .format = o->backing_format, .read_only = true,
                                  .key = o->key, .key_len = o->key_len };
    struct image *b;
    int r;

    if ((r = image_resolve_backing(path, o->backing_file, &resolved)) < 0 ||
        (r = image_open(resolved, &bo, &b)) < 0)
        return r;
    *size = b->size;
    image_close(b);
    return 0;
}

static int fill_header(const char *path, const struct qcow_create_opts *o, uint64_t size,
                       struct qcow_header *h, struct qcow_geometry *g)
{
    size_t name_len = o->backing_file ? strlen(o->backing_file) : 0;
    uint64_t front = QCOW_HEADER_SIZE + (o->xen_header ? QCOW_XEN_HEADER_SIZE : 0);
    bool backed = o->backing_file != NULL;

    if (name_len > QCOW_MAX_BACKING_NAME)
        return qc_fail(-ENAMETOOLONG, "%s: backing file name longer than %d bytes", path,
                       QCOW_MAX_BACKING_NAME);
    *h = (struct qcow_header){
        .magic = QCOW_MAGIC, .version = QCOW_VERSION, .size = size,
        .cluster_bits = (uint8_t)(o->cluster_bits ? o->cluster_bits : backed ? 9 : 12),
        .l2_bits = (uint8_t)(o->l2_bits ? o->l2_bits : backed ? 12 : 9),
        .crypt_method = o->key ? QCOW_CRYPT_AES : QCOW_CRYPT_NONE,
    };
    if (backed) {
        h->backing_offset = front;
        h->backing_len = (uint32_t)name_len;
        front += name_len;
    }
    h->l1_offset = o->xen_header ? align_up(front, QCOW_XEN_L1_OFFSET) : align_up(front, 8);
    return qcow_header_validate(path, h, o->xen_header, UINT64_MAX, g);
}

/* Bytes of the file given to the L1 table: blktap's long table with the Xen
 * extension (blktap cannot open the image without it), else QEMU's. */
static int l1_area_bytes(const char *path, const struct qcow_create_opts *o,
                         const struct qcow_header *h, const struct qcow_geometry *g,
                         uint64_t *bytes)
{
    uint64_t entries;

    *bytes = g->l1_bytes;
    if (!o->xen_header)
        return 0;
    if (!qcow_blktap_l1_entries(h, &entries))
        return qc_fail(-EFBIG, "%s: a Xen header image of %" PRIu64 " bytes cannot be opened "
                       "by blktap, whose L1 table has one entry per byte of the disk (about "
                       "255 MiB at most)", path, h->size);
    *bytes = entries * 8;
    return 0;
}

static int write_front(int fd, const char *path, const struct qcow_create_opts *o,
                       const struct qcow_header *h, const struct qcow_geometry *g)
{
    uint64_t len = align_up(h->l1_offset + g->l1_bytes, QCOW_SECTOR_SIZE), area, end;
    _cleanup_free_ uint8_t *front = calloc(1, len);
    int r;

    if (!front)
        return -ENOMEM;
    if ((r = l1_area_bytes(path, o, h, g, &area)) < 0)
        return r;
    /* blktap's file ends on a page after its L1; QEMU's on a sector. */
    end = o->xen_header ? align_up(h->l1_offset + area, 4096) : len;
    qcow_header_encode(h, front);
    if (o->xen_header) {
        struct qcow_xen_header x = {
            .present = true,
            .checksum = qcow_xen_area_checksum(front + h->l1_offset, g->l1_bytes, area),
            .min_cluster_alloc = o->xen_extent_alloc ? g->l2_entries : 1,
            .flags = QCOW_XEN_FLAG_L1_BIG_ENDIAN | (o->xen_sparse ? QCOW_XEN_FLAG_SPARSE : 0),
        };
        qcow_xen_header_encode(&x, front + QCOW_HEADER_SIZE);
    }
    if (o->backing_file)
        memcpy(front + h->backing_offset, o->backing_file, h->backing_len);
    if ((r = write_full_at(fd, front, len, 0)) < 0)
        return qc_fail(r, "%s: cannot write: %s", path, strerror(-r));
    if (ftruncate(fd, (off_t)end) < 0)
        return qc_fail(-errno, "%s: cannot write: %s", path, strerror(errno));
    /* Not sparse: blktap writes its L1 out whole; give it disk space. */
    if (o->xen_header && !o->xen_sparse && fallocate(fd, 0, 0, (off_t)end) < 0 &&
        errno != EOPNOTSUPP)
        return qc_fail(-errno, "%s: cannot allocate %" PRIu64 " bytes: %s", path, end,
                       strerror(errno));
    if (fsync(fd) < 0)
        return qc_fail(-errno, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

static int preallocate(const char *path, const struct qcow_create_opts *o)
{
    struct image_open_opts oo = { .format = IMAGE_FORMAT_QCOW, .key = o->key,
                                  .key_len = o->key_len };
    struct layer_info info;
    struct image *img;
    int r;

    if ((r = image_open(path, &oo, &img)) < 0)
        return r;
    layer_get_info(img->top, &info);
    for (uint64_t i = 0; i < info.l1_entries && r == 0; i++) {
        r = qcow_preallocate_span(img->top, i, o->prealloc);
        if (r == 0 && image_meta_pressure(img))
            r = image_flush(img);
    }
    int rc = image_close(img);
    return r < 0 ? r : rc;
}

static int check_options(const char *path, const struct qcow_create_opts *o)
{
    if (o->prealloc == PREALLOC_FULL && (o->backing_file || o->key))
        return qc_fail(-EINVAL, "%s: full preallocation is not possible with a backing file or "
                       "encryption (preallocated clusters would hide their contents)", path);
    if (o->key && o->key_len == 0)
        return qc_fail(-EINVAL, "%s: the encryption password is empty", path);
    return 0;
}

int qcow_create_on_fd(int fd, const char *path, const struct qcow_create_opts *o)
{
    struct qcow_header h;
    struct qcow_geometry g;
    int r;

    qc_clear_error();
    if (o->size == 0 || o->size % QCOW_SECTOR_SIZE || o->prealloc != PREALLOC_OFF || o->key ||
        o->xen_header)
        return qc_fail(-EINVAL, "%s: only a plain image of a given size is made on a descriptor",
                       path);
    if ((r = fill_header(path, o, o->size, &h, &g)) < 0)
        return r;
    return write_front(fd, path, o, &h, &g);
}

int qcow_create(const char *path, const struct qcow_create_opts *o)
{
    struct qcow_header h;
    struct qcow_geometry g;
    uint64_t size = o->size;
    _cleanup_close_ int fd = -1;
    int r;

    qc_clear_error();
    if ((r = check_options(path, o)) < 0)
        return r;
    if (size == 0 && o->backing_file && (r = backing_size(path, o, &size)) < 0)
        return r;
    if (size > UINT64_MAX - QCOW_SECTOR_SIZE)
        return qc_fail(-EFBIG, "%s: virtual size %" PRIu64 " is too large", path, size);
    size = align_up(size, QCOW_SECTOR_SIZE);
    if ((r = fill_header(path, o, size, &h, &g)) < 0)
        return r;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return qc_fail(-errno, "%s: cannot create: %s", path, strerror(errno));
    if ((r = write_front(fd, path, o, &h, &g)) < 0)
        return r;
    if (o->prealloc != PREALLOC_OFF)
        return preallocate(path, o);
    return 0;
}
