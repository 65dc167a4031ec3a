/* Images as chains of layers: opening the backing chain, resolving guest
 * ranges down it, and handing writes and metadata to the top layer. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <limits.h>
#include <sys/stat.h>

#include "driver.h"
#include "error.h"
#include "util.h"
#include "daemon/common/vec.h"

const char *image_format_name(enum image_format f)
{
    switch (f) {
    case IMAGE_FORMAT_RAW: return "raw";
    case IMAGE_FORMAT_QCOW: return "qcow";
    default: return "auto";
    }
}

int image_format_parse(const char *name, enum image_format *out)
{
    static const enum image_format all[] = { IMAGE_FORMAT_AUTO, IMAGE_FORMAT_RAW, IMAGE_FORMAT_QCOW };

    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        if (strcmp(name, image_format_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -EINVAL;
}

/* ---- opening ---------------------------------------------------------- */

static void layer_free(struct layer *l)
{
    if (!l)
        return;
    if (l->ops)
        l->ops->close(l);
    if (l->fd >= 0 && l->fd != l->meta_fd)
        close(l->fd);
    if (l->meta_fd >= 0)
        close(l->meta_fd);
    free(l->backing_name);
    free(l->path);
    free(l);
}
DEFINE_POINTER_CLEANUP(layer_free, struct layer)

static int probe_format(struct layer *l, enum image_format *f)
{
    uint8_t magic[4];
    ssize_t n = read_full_at(l->meta_fd, magic, sizeof magic, 0);

    if (n < 0)
        return qc_fail((int)n, "%s: cannot read: %s", l->path, strerror((int)-n));
    *f = (n == 4 && load_be32(magic) == 0x514649FBu) ? IMAGE_FORMAT_QCOW : IMAGE_FORMAT_RAW;
    return 0;
}

/* A second description of the file behind l->meta_fd, with O_DIRECT: through
 * /proc/self/fd, so that it is the same file even if the path now names
 * another (or nothing, for a descriptor a client passed).  -EINVAL when the
 * file system refuses O_DIRECT. */
static int reopen_direct(const struct layer *l, int flags)
{
    char proc[40];
    struct stat a, b;
    int fd;

    snprintf(proc, sizeof proc, "/proc/self/fd/%d", l->meta_fd);
    fd = open(proc, flags | O_DIRECT);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT)
        return -errno;
    /* No /proc: the path, if it still names the same file. */
    if ((fd = open(l->path, flags | O_DIRECT)) < 0)
        return -errno;
    if (fstat(fd, &a) == 0 && fstat(l->meta_fd, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        return fd;
    close(fd);
    return -ESTALE;
}

/* fd (owned by l from now on) must allow what the layer does with it. */
/* A file said to be raw whose first sector is another format's header is
 * not opened for writing: probing disagrees with what the caller stated,
 * and a guest would see (and could rewrite) that format's metadata as its
 * disk.  Read-only, or with the format it has, it opens. */
static int check_stated_raw(struct layer *l)
{
    uint8_t sector[IMAGE_SECTOR_SIZE];
    ssize_t n = read_full_at(l->meta_fd, sector, sizeof sector, 0);
    const char *found;

    if (n < 0)
        return qc_fail((int)n, "%s: cannot read: %s", l->path, strerror((int)-n));
    if (!(found = image_probe_header(sector, (size_t)n)))
        return 0;
    return qc_fail(-EINVAL, "%s: given as raw, but its first sector is a %s header: refusing to "
                   "open it for writing (open it read-only%s)", l->path, found,
                   strcmp(found, "qcow") == 0 ? ", or as qcow" : "");
}

static int open_fds(struct layer *l, int fd, int direct_fd, bool direct)
{
    int flags = (l->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    int mode = fd >= 0 ? fcntl(fd, F_GETFL) & O_ACCMODE : -1;
    int r;

    l->meta_fd = fd;
    if (fd < 0)
        return qc_fail(fd, "%s: cannot open: %s", l->path, strerror(-fd));
    if (mode != O_RDWR && (mode != O_RDONLY || !l->read_only))
        return qc_fail(-EBADF, "%s: the descriptor is not open for %s", l->path,
                       l->read_only ? "reading" : "reading and writing");
    if ((r = fd_image_size(l->meta_fd, &l->file_size, &l->block_device)) == -EINVAL)
        return qc_fail(r, "%s: not a regular file or block device", l->path);
    if (r < 0)
        return qc_fail(r, "%s: cannot get its size: %s", l->path, strerror(-r));
    l->fd = l->meta_fd;
    if (direct_fd >= 0) {
        l->fd = direct_fd;
        l->direct = true;
    } else if (direct) {
        int dfd = reopen_direct(l, flags);
        if (dfd >= 0) {
            l->fd = dfd;
            l->direct = true;
        } else if (dfd != -EINVAL) {
            return qc_fail(dfd, "%s: cannot open with O_DIRECT: %s", l->path, strerror(-dfd));
        }
    }
    return 0;
}

static int open_path(const char *path, bool read_only)
{
    int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    return fd;
}

static bool same_file(const struct layer *a, const struct layer *b);

/* Open a layer on fd (taken over, even on failure; a negative errno when
 * opening it failed) and direct_fd (its O_DIRECT twin, or -1). */
static int layer_open_fds(const char *path, int fd, int direct_fd, enum image_format fmt,
                          bool read_only, const struct image_open_opts *o, struct layer **out)
{
    _cleanup_close_ int owned_fd = fd, owned_direct = direct_fd;
    _cleanup_(layer_freep) struct layer *l = calloc(1, sizeof *l);
    int r;

    if (!l)
        return -ENOMEM;
    *l = (struct layer){ .fd = -1, .meta_fd = -1, .read_only = read_only };
    if (!(l->path = strdup(path)))
        return -ENOMEM;
    /* open_fds takes fd in any case, the O_DIRECT twin only when it succeeds. */
    if ((r = open_fds(l, TAKE_FD(owned_fd), owned_direct, o->direct)) < 0)
        return r;
    (void)TAKE_FD(owned_direct);
    l->probed = fmt == IMAGE_FORMAT_AUTO;
    if (l->probed && (r = probe_format(l, &fmt)) < 0)
        return r;
    if (fmt == IMAGE_FORMAT_RAW && !l->probed && !read_only && (r = check_stated_raw(l)) < 0)
        return r;
    l->ops = fmt == IMAGE_FORMAT_QCOW ? &qcow_ops : &raw_ops;
    if (l->file_size == 0 && fmt == IMAGE_FORMAT_QCOW)
        return qc_fail(-EINVAL, "%s: empty file is not a qcow image", path);
    if ((r = l->ops->open(l, o)) < 0)
        return r;
    *out = TAKE_PTR(l);
    return 0;
}

static int layer_open(const char *path, int fd, enum image_format fmt, bool read_only,
                      const struct image_open_opts *o, struct layer **out)
{
    return layer_open_fds(path, fd, -1, fmt, read_only, o, out);
}

/* l must name img's top as its backing file (by a name that resolves to
 * the very path the top was opened by) and have its size. */
static int check_overlay(const struct image *img, const struct layer *l)
{
    _cleanup_free_ char *resolved = NULL;
    struct layer_info info;
    int r;

    layer_get_info(l, &info);
    if (!l->backing_name)
        return qc_fail(-EINVAL, "%s: has no backing file (it must name %s)", l->path,
                       img->top->path);
    if ((r = image_resolve_backing(l->path, l->backing_name, &resolved)) < 0)
        return r;
    if (strcmp(resolved, img->top->path) != 0)
        return qc_fail(-EINVAL, "%s: its backing file is %s, not the image served (%s)", l->path,
                       resolved, img->top->path);
    if (l->size != img->size)
        return qc_fail(-EINVAL, "%s: its size (%" PRIu64 " bytes) is not the image's (%" PRIu64
                       ")", l->path, l->size, img->size);
    if (info.encrypted)
        return qc_fail(-ENOTSUP, "%s: encrypted: an overlay here takes no key", l->path);
    return 0;
}

int image_push_top(struct image *img, const char *path, int fd, int direct_fd,
                   const struct image_open_opts *o)
{
    unsigned max = o->max_depth ? o->max_depth : IMAGE_DEFAULT_MAX_DEPTH;
    struct layer *l;
    int r;

    if (img->depth >= max) {
        if (fd >= 0)
            close(fd);
        if (direct_fd >= 0)
            close(direct_fd);
        return qc_fail(-ELOOP, "%s: the backing chain would be longer than %u layers", path, max);
    }
    if ((r = layer_open_fds(path, fd, direct_fd, IMAGE_FORMAT_QCOW, false, o, &l)) < 0)
        return r;
    if ((r = check_overlay(img, l)) < 0) {
        layer_free(l);
        return r;
    }
    l->backing = img->top;
    img->top->read_only = true;
    img->top = l;
    img->depth++;
    return 0;
}

int image_open_below(struct image *img, int fd, int direct_fd, const struct image_open_opts *o,
                     struct image **base)
{
    struct layer *old = img->top->backing, *l;
    struct image *view = calloc(1, sizeof *view);
    int r;

    if (!view || !old) {
        if (fd >= 0)
            close(fd);
        if (direct_fd >= 0)
            close(direct_fd);
        free(view);
        return view ? qc_fail(-EINVAL, "%s: has no backing file", img->top->path) : -ENOMEM;
    }
    if ((r = layer_open_fds(old->path, fd, direct_fd, old->ops->format, false, o, &l)) < 0) {
        free(view);
        return r;
    }
    if (!same_file(old, l)) {
        layer_free(l);
        free(view);
        return qc_fail(-EINVAL, "%s: the descriptor is not the backing file", old->path);
    }
    l->backing = old->backing;
    old->backing = NULL;
    layer_free(old);
    img->top->backing = l;
    *view = (struct image){ .top = l, .depth = img->depth - 1, .size = l->size };
    *base = view;
    return 0;
}

int image_drop_top(struct image *img, struct image *base)
{
    struct layer *top = img->top;

    if (top->backing != base->top || base->size != img->size)
        return qc_fail(-EINVAL, "%s: cannot take the place of %s", base->top->path, top->path);
    img->top = base->top;
    img->depth--;
    img->size = base->size;
    top->backing = NULL;
    top->read_only = true;      /* nothing more is written to it */
    layer_free(top);
    free(base);
    return 0;
}

int image_resolve_backing(const char *child_path, const char *name, char **out)
{
    const char *colon = strchr(name, ':');
    const char *slash = strchr(name, '/');
    _cleanup_free_ char *dir_copy = NULL;

    if (colon && (!slash || colon < slash))
        return qc_fail(-ENOTSUP, "%s: backing file '%s' uses a protocol prefix, which is not "
                       "supported", child_path, name);
    if (name[0] == '/' || !strchr(child_path, '/')) {
        *out = strdup(name);
        return *out ? 0 : -ENOMEM;
    }
    if (!(dir_copy = strdup(child_path)))
        return -ENOMEM;
    if (asprintf(out, "%s/%s", dirname(dir_copy), name) < 0)
        return -ENOMEM;
    return 0;
}

static bool same_file(const struct layer *a, const struct layer *b)
{
    struct stat sa, sb;

    return fstat(a->meta_fd, &sa) == 0 && fstat(b->meta_fd, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int open_backing(struct image *img, struct layer *child, const struct image_open_opts *o)
{
    unsigned max = o->max_depth ? o->max_depth : IMAGE_DEFAULT_MAX_DEPTH;
    _cleanup_free_ char *path = NULL;
    struct layer *b;
    int fd, r;

    if (img->depth >= max)
        return qc_fail(-ELOOP, "%s: backing chain is longer than %u layers", img->top->path, max);
    if ((r = image_resolve_backing(child->path, child->backing_name, &path)) < 0)
        return r;
    fd = o->open_backing ? o->open_backing(o->open_backing_opaque, child->path, path)
                         : open_path(path, true);
    if (fd == -ENOENT)
        return qc_fail(fd, "%s: backing file %s does not exist", child->path, path);
    if (fd < 0 && o->open_backing)
        return fd;
    if ((r = layer_open(path, fd, IMAGE_FORMAT_AUTO, true, o, &b)) < 0)
        return r;
    for (struct layer *l = img->top; l; l = l->backing)
        if (same_file(l, b)) {
            r = qc_fail(-ELOOP, "%s: backing chain loops back to %s", child->path, l->path);
            layer_free(b);
            return r;
        }
    child->backing = b;
    img->depth++;
    return 0;
}

int image_open(const char *path, const struct image_open_opts *opts, struct image **out)
{
    static const struct image_open_opts defaults;
    const struct image_open_opts *o = opts ? opts : &defaults;

    return image_open_fd(path, open_path(path, o->read_only), o, out);
}

int image_open_fd(const char *path, int fd, const struct image_open_opts *opts,
                  struct image **out)
{
    static const struct image_open_opts defaults;
    const struct image_open_opts *o = opts ? opts : &defaults;
    struct image *img = calloc(1, sizeof *img);
    int r;

    qc_clear_error();
    if (!img) {
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    if ((r = layer_open(path, fd, o->format, o->read_only, o, &img->top)) < 0) {
        free(img);
        return r;
    }
    img->depth = 1;
    img->size = img->top->size;
    for (struct layer *l = img->top; l->backing_name; l = l->backing)
        if ((r = open_backing(img, l, o)) < 0) {
            image_close(img);
            return r;
        }
    *out = img;
    return 0;
}

int image_close(struct image *img)
{
    int r = 0;

    if (!img)
        return 0;
    if (img->top && !img->top->read_only)
        r = image_flush(img);
    for (struct layer *l = img->top, *next; l; l = next) {
        next = l->backing;
        layer_free(l);
    }
    free(img);
    return r;
}

void layer_get_info(const struct layer *l, struct layer_info *info)
{
    *info = (struct layer_info){ .format = l->ops->format, .path = l->path, .size = l->size,
                                 .file_size = l->file_size, .backing_name = l->backing_name };
    l->ops->info(l, info);
}

bool image_first_sector_guarded(const struct image *img)
{
    return img->top->probed && img->top->ops->format == IMAGE_FORMAT_RAW && !img->top->read_only;
}

struct layer *layer_backing(const struct layer *l)
{
    return l->backing;
}

int layer_fd(const struct layer *l, bool direct)
{
    return direct && l->direct ? l->fd : l->meta_fd;
}

bool layer_is_direct(const struct layer *l)
{
    return l->direct;
}

/* ---- extents ---------------------------------------------------------- */

void extent_vec_reset(struct extent_vec *ev)
{
    ev->n = 0;
}

void extent_vec_free(struct extent_vec *ev)
{
    vec_free(ev);
}

static bool extends(const struct extent *a, const struct extent *b)
{
    if (a->kind != b->kind || a->guest_off + a->len != b->guest_off)
        return false;
    if (a->kind == EXTENT_ZERO)
        return true;
    return a->kind == EXTENT_DATA && a->layer == b->layer && a->host_off + a->len == b->host_off &&
           a->encrypted == b->encrypted;
}

int extent_vec_push(struct extent_vec *ev, const struct extent *e)
{
    if (ev->n && extends(&ev->v[ev->n - 1], e)) {
        ev->v[ev->n - 1].len += e->len;
        return 0;
    }
    return vec_push(ev, *e);
}

int layer_map(struct layer *l, uint64_t off, uint64_t len, struct extent *out, bool *allocated)
{
    return l->ops->map(l, off, len, out, allocated);
}

static int push_zero(struct extent_vec *out, uint64_t off, uint64_t len, uint32_t depth)
{
    struct extent z = { .kind = EXTENT_ZERO, .guest_off = off, .len = len, .depth = depth };

    return len ? extent_vec_push(out, &z) : 0;
}

/* Resolve [off, off+len) in l (at depth) and below.  The top layer is not
 * cut at its size (the caller bounds requests); backing layers are: past a
 * parent's end the data reads as zeros. */
static int resolve(struct layer *l, uint32_t depth, uint64_t off, uint64_t len,
                   struct extent_vec *out)
{
    while (len > 0) {
        struct extent e;
        bool allocated;
        uint64_t n = len;
        int r;

        if (!l || (depth > 0 && off >= l->size))
            return push_zero(out, off, len, depth);
        if (depth > 0)
            n = MIN(len, l->size - off);
        if ((r = l->ops->map(l, off, n, &e, &allocated)) < 0)
            return r;
        if (e.len == 0 || e.len > n)
            return qc_fail(-EIO, "%s: internal error mapping offset %" PRIu64, l->path, off);
        if (allocated) {
            e.depth = depth;
            r = extent_vec_push(out, &e);
        } else {
            r = resolve(l->backing, depth + 1, off, e.len, out);
        }
        if (r < 0)
            return r;
        off += e.len;
        len -= e.len;
    }
    return 0;
}

int image_map(struct image *img, uint64_t off, uint64_t len, struct extent_vec *out)
{
    return resolve(img->top, 0, off, len, out);
}

int extent_decrypt(const struct extent *e, uint64_t guest_off, uint8_t *buf, uint64_t len)
{
    if (!e->encrypted)
        return 0;
    return e->layer->ops->decrypt(e->layer, guest_off / IMAGE_SECTOR_SIZE, buf, len);
}

int extent_inflate(const struct extent *e, const uint8_t *stream, uint8_t *out)
{
    return e->layer->ops->inflate(e->layer, e, stream, out);
}

/* ---- writes and metadata ---------------------------------------------- */

int image_plan_write(struct image *img, uint64_t off, uint64_t len,
                     struct write_piece **pieces, size_t *n, size_t *cap)
{
    struct layer *l = img->top;
    int r;

    if (l->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", l->path);
    /* Every table first: a plan that stopped half way would have reserved
     * space for its first pieces. */
    if (l->need && l->ops->need_tables && (r = l->ops->need_tables(l, off, len)) < 0)
        return r;
    if (l->need && l->ops->need_space && (r = l->ops->need_space(l, off, len, false)) < 0)
        return r;
    *n = 0;
    while (len > 0) {
        struct write_piece p;
        r = l->ops->plan_write(l, off, len, &p);
        if (r < 0)
            return r;
        if ((r = array_reserve(*pieces, *cap, *n, 1)) < 0) {
            image_end_write(img, &p);
            return r;
        }
        (*pieces)[(*n)++] = p;
        off += p.len;
        len -= p.len;
    }
    return 0;
}

int image_commit_write(struct image *img, const struct write_piece *p)
{
    return p->layer->ops->commit_write(p->layer, p);
}

void image_end_write(struct image *img, const struct write_piece *p)
{
    (void)img;
    if (p->pinned)
        p->layer->ops->end_write(p->layer, p);
}

int image_adopt_cluster(struct image *img, uint64_t cluster_guest_off, uint64_t host_off)
{
    struct layer *l = img->top;

    if (l->read_only || !l->ops->adopt_cluster)
        return qc_fail(-EINVAL, "%s: nothing to adopt in a %s image", l->path,
                       l->read_only ? "read-only" : image_format_name(l->ops->format));
    return l->ops->adopt_cluster(l, cluster_guest_off, host_off);
}

int image_map_fill(struct image *img, const struct write_piece *p, struct extent_vec *out)
{
    struct extent e;
    bool allocated;
    int r;

    switch (p->fill) {
    case FILL_NONE:
        return 0;
    case FILL_ZERO:
        return push_zero(out, p->cluster_guest_off, p->cluster_size, 0);
    case FILL_BACKING:
        return resolve(p->layer->backing, 1, p->cluster_guest_off, p->cluster_size, out);
    case FILL_COMPRESSED:
        /* The L2 entry still holds the compressed cluster until commit. */
        if ((r = p->layer->ops->map(p->layer, p->cluster_guest_off, p->cluster_size, &e,
                                    &allocated)) < 0)
            return r;
        if (e.kind != EXTENT_COMPRESSED || e.len != p->cluster_size)
            return qc_fail(-EIO, "%s: cluster at guest offset %" PRIu64 " changed under a write",
                           p->layer->path, p->cluster_guest_off);
        return extent_vec_push(out, &e);
    }
    return -EINVAL;
}

int piece_encrypt(const struct write_piece *p, uint64_t guest_off, uint8_t *buf, uint64_t len)
{
    if (!p->encrypted)
        return 0;
    return p->layer->ops->encrypt(p->layer, guest_off / IMAGE_SECTOR_SIZE, buf, len);
}

int image_write_compressed(struct image *img, uint64_t cluster_guest_off, const uint8_t *data)
{
    struct layer *l = img->top;
    int r;

    if (l->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", l->path);
    if (!l->ops->write_compressed)
        return qc_fail(-ENOTSUP, "%s: %s images cannot hold compressed clusters", l->path,
                       image_format_name(l->ops->format));
    r = l->ops->write_compressed(l, cluster_guest_off, data);
    if (r == -E2BIG || r == -EEXIST) {
        struct layer_info info;
        layer_get_info(l, &info);
        return image_write(img, data, MIN(info.cluster_size, img->size - cluster_guest_off),
                           cluster_guest_off);
    }
    return r;
}

int image_growth_next(struct image *img, struct image_growth *g)
{
    struct layer *l = img->top;

    if (l->read_only || !l->ops->growth_next)
        return 0;
    return l->ops->growth_next(l, g);
}

int image_growth_run(const struct image_growth *g)
{
    if (g->physical && fallocate(g->fd, 0, (off_t)g->from, (off_t)(g->to - g->from)) == 0)
        return 0;
    if (g->physical && errno != EOPNOTSUPP)
        return -errno;
    /* Never shorter: extending is all a growth does. */
    struct stat st;
    if (fstat(g->fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size < g->to && ftruncate(g->fd, (off_t)g->to) < 0)
        return -errno;
    return 0;
}

int image_growth_done(struct image *img, const struct image_growth *g, int err)
{
    (void)img;
    return g->layer->ops->growth_done(g->layer, g, err);
}

void image_defer_meta(struct image *img, bool defer)
{
    for (struct layer *l = img->top; l; l = l->backing)
        l->need = defer ? &img->need : NULL;
}

int image_meta_loaded(struct image *img, const struct meta_need *n, const uint8_t *buf, long res)
{
    (void)img;
    return n->layer->ops->meta_loaded(n->layer, n, buf, res);
}

void image_meta_unpin(const struct meta_need *n)
{
    n->layer->ops->meta_unpin(n->layer, n);
}

bool image_meta_pressure(const struct image *img)
{
    return img->top->ops->meta_pressure(img->top);
}

int image_meta_prepare(struct image *img, struct meta_writeback *wb)
{
    if (img->top->read_only) {
        *wb = (struct meta_writeback){ .fd = -1 };
        return 0;
    }
    if (img->flush_error) {
        *wb = (struct meta_writeback){ .fd = -1 };
        return qc_fail(img->flush_error, "%s: an earlier flush failed (%s): nothing more is "
                       "written back", img->top->path, strerror(-img->flush_error));
    }
    return img->top->ops->meta_prepare(img->top, wb);
}

void image_meta_finish(struct image *img, struct meta_writeback *wb, int err)
{
    if (img->top->read_only) {
        *wb = (struct meta_writeback){ .fd = -1 };
        return;
    }
    img->top->ops->meta_finish(img->top, wb, err);
}

void image_flush_failed(struct image *img, int err)
{
    if (!img->flush_error)
        img->flush_error = err < 0 ? err : -EIO;
}

int image_make_empty(struct image *img)
{
    if (img->top->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", img->top->path);
    return img->top->ops->make_empty(img->top);
}
