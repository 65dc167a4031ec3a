/* The qcow v1 driver: open and validate, map guest ranges, plan and commit
 * allocations, and write metadata back in a crash-safe order. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#include "compress.h"
#include "error.h"
#include "qcow.h"
#include "util.h"
#include "daemon/common/vec.h"

static struct qcow_layer *Q(const struct layer *l)
{
    return l->priv;
}

/* ---- open ------------------------------------------------------------- */

static int check_l1(struct layer *l, struct qcow_layer *q)
{
    for (uint64_t i = 0; i < q->g.l1_entries; i++) {
        struct qcow_span s;
        enum qcow_fault f;
        if (!q->l1[i])
            continue;
        f = qcow_l1_entry_fault(&q->g, &q->lay, l->file_size, q->l1[i], &s);
        if (f != QCOW_FAULT_NONE)
            return qc_fail(-EINVAL, "%s: L1 entry %" PRIu64 " (L2 table at %#" PRIx64 ") %s",
                           l->path, i, q->l1[i], qcow_fault_text(f));
    }
    return 0;
}

/* The front as qcow_front_read() found it becomes the layer's. */
static int take_front(struct layer *l, struct qcow_layer *q, struct qcow_front *f)
{
    q->h = f->h;
    q->xen = f->xen;
    q->g = f->g;
    q->xen_honoured = f->xen_honoured;
    q->xen_checksum_ok = f->xen_checksum_ok;
    /* Keep the checksum right only where blktap trusts it now: never make
     * blktap trust an image it did not trust before. */
    q->xen_maintained = f->xen_checksum_ok && f->l1_padding_zero && !qcow_l1_detached(&f->lay);
    q->l1_little_endian = f->l1_little_endian;
    q->l1_area_bytes = f->l1_area_bytes;
    q->lay = f->lay;
    q->l1 = TAKE_PTR(f->l1);
    l->backing_name = TAKE_PTR(f->backing_name);
    if (!(q->l1_disk = calloc(q->g.l1_entries ? q->g.l1_entries : 1, sizeof *q->l1_disk)))
        return -ENOMEM;
    memcpy(q->l1_disk, q->l1, q->g.l1_entries * sizeof *q->l1);
    return check_l1(l, q);
}

/* Metadata is written whole sectors at a time through the same descriptor
 * as the data: with O_DIRECT, a buffered write into a page that a direct
 * write also touches makes the kernel report EIO on the next fsync.  The
 * sectors around the L1 table (and the header, when the L1 follows it) are
 * kept in memory to patch (not the zeros of a long blktap L1, which never
 * change). */
int qcow_load_front(struct layer *l, struct qcow_layer *q)
{
    uint64_t end;
    ssize_t n;

    if (qcow_l1_detached(&q->lay)) {
        q->front_off = align_down(q->h.l1_offset, QCOW_SECTOR_SIZE);
        end = q->h.l1_offset + q->g.l1_bytes;
    } else {
        q->front_off = 0;
        end = qcow_front_bytes_end(&q->h, &q->g, q->xen.present, &q->lay);
    }
    q->front_len = align_up(end, QCOW_SECTOR_SIZE) - q->front_off;
    free(q->front);
    if (!(q->front = alloc_aligned(4096, q->front_len)))
        return -ENOMEM;
    memset(q->front, 0, q->front_len);
    n = read_full_at(l->meta_fd, q->front, q->front_len, q->front_off);
    return n < 0 ? qc_fail((int)n, "%s: cannot read: %s", l->path, strerror((int)-n)) : 0;
}

uint64_t qcow_metadata_end(const struct qcow_layer *q)
{
    return MAX(q->lay.front_end, MAX(q->lay.l1_end, q->lay.name_end));
}

static int write_l1_range(struct layer *l, const uint64_t *l1, uint64_t lo, uint64_t hi);
static int write_xen_header(struct layer *l);

/* Old blktap images keep the L1 in host order; store it big-endian once,
 * as blktap does (the checksum always covered the big-endian form). */
static int convert_le_l1(struct layer *l, struct qcow_layer *q)
{
    int r;

    q->xen.flags |= QCOW_XEN_FLAG_L1_BIG_ENDIAN;
    if ((r = write_l1_range(l, q->l1, 0, q->g.l1_entries)) < 0 || (r = write_xen_header(l)) < 0)
        return r;
    if (fdatasync(l->meta_fd) < 0)
        return qc_fail(-errno, "%s: fdatasync: %s", l->path, strerror(errno));
    q->l1_little_endian = false;
    return 0;
}

static void setup_xen(struct layer *l, struct qcow_layer *q)
{
    q->sparse = true;
    if (!q->xen_maintained)
        return;
    q->sparse = q->xen.flags & QCOW_XEN_FLAG_SPARSE;
    /* Preallocated extents hold zeros in the file, which is only the right
     * content without a backing file (never, when honoured) and without
     * encryption. */
    q->extent_alloc = q->xen.min_cluster_alloc == q->g.l2_entries &&
                      q->h.crypt_method == QCOW_CRYPT_NONE;
}

static int qcow_open(struct layer *l, const struct image_open_opts *o)
{
    struct qcow_layer *q = calloc(1, sizeof *q);
    uint64_t cache_bytes = o->l2_cache_bytes ? o->l2_cache_bytes : IMAGE_DEFAULT_L2_CACHE_BYTES;
    struct qcow_front f;
    int r;

    if (!q)
        return -ENOMEM;
    l->priv = q;
    r = qcow_front_read(l->meta_fd, l->path, l->file_size, &f);
    if (r == 0)
        r = take_front(l, q, &f);
    qcow_front_free(&f);
    if (r < 0 || (r = qcow_load_front(l, q)) < 0)
        return r;
    l->size = qcow_virtual_size(&q->h);
    setup_xen(l, q);
    if (q->l1_little_endian && !l->read_only &&
        ((r = convert_le_l1(l, q)) < 0 || (r = qcow_load_front(l, q)) < 0))
        return r;
    if (q->h.crypt_method == QCOW_CRYPT_AES && o->key &&
        (r = qcow_crypt_new(o->key, o->key_len, &q->crypt)) < 0)
        return r;
    q->zcluster = malloc(q->g.cluster_size);
    if (!q->zcluster || l2_cache_init(&q->cache, MAX(cache_bytes / q->g.l2_bytes, 4),
                                      q->g.l2_entries) < 0)
        return -ENOMEM;
    q->alloc_end = MAX(l->file_size, qcow_metadata_end(q));
    q->file_extent = l->file_size;
    q->prealloc_end = q->alloc_end;
    return 0;
}

static void trim_extension(struct layer *l, struct qcow_layer *q);

static void qcow_close(struct layer *l)
{
    struct qcow_layer *q = Q(l);

    if (!q)
        return;
    trim_extension(l, q);
    l2_cache_destroy(&q->cache);
    qcow_crypt_free(q->crypt);
    free(q->l1);
    free(q->l1_disk);
    free(q->front);
    free(q->zcluster);
    free(q);
    l->priv = NULL;
}

/* ---- L2 tables -------------------------------------------------------- */

/* Where the table of l1_index is and how to read it.  Through the data
 * descriptor: see load_front. */
static struct meta_need table_need(struct layer *l, uint64_t l1_index)
{
    struct qcow_layer *q = Q(l);

    return (struct meta_need){ .layer = l, .key = l1_index, .fd = l->fd,
                               .off = q->l1[l1_index], .len = q->g.l2_bytes };
}

/* The table n describes was read (res: bytes or -errno): cache it. */
static int install_l2(struct layer *l, const struct meta_need *n, const uint8_t *raw, long res,
                      struct l2_table **out)
{
    struct qcow_layer *q = Q(l);
    struct l2_table *t;

    if (res < 0)
        return qc_fail((int)res, "%s: cannot read the L2 table at %#" PRIx64 ": %s", l->path,
                       n->off, strerror((int)-res));
    if ((uint64_t)res != q->g.l2_bytes)
        return qc_fail(-EIO, "%s: L2 table at %#" PRIx64 " is truncated", l->path, n->off);
    if (!(t = l2_cache_insert(&q->cache, n->key, n->off)))
        return -ENOMEM;
    for (uint32_t i = 0; i < q->g.l2_entries; i++)
        t->entries[i] = load_be64(raw + (size_t)i * 8);
    *out = t;
    return 0;
}

static int load_l2(struct layer *l, uint64_t l1_index, struct l2_table **out)
{
    struct qcow_layer *q = Q(l);
    struct meta_need n = table_need(l, l1_index);
    _cleanup_free_ uint8_t *raw = alloc_aligned(4096, q->g.l2_bytes);

    if (!raw)
        return -ENOMEM;
    return install_l2(l, &n, raw, (long)read_full_at(n.fd, raw, n.len, n.off), out);
}

/* In deferred mode: say which table is needed instead of reading it. */
static int need_l2(struct layer *l, uint64_t l1_index)
{
    *l->need = table_need(l, l1_index);
    return IMAGE_NEED_META;
}

static bool l2_missing(struct layer *l, uint64_t l1_index)
{
    struct qcow_layer *q = Q(l);

    return q->l1[l1_index] && !l2_cache_lookup(&q->cache, l1_index);
}

static int qcow_need_tables(struct layer *l, uint64_t off, uint64_t len)
{
    struct qcow_layer *q = Q(l);
    uint64_t last = len ? (off + len - 1) >> q->g.shift : off >> q->g.shift;

    for (uint64_t i = off >> q->g.shift; i <= last && i < q->g.l1_entries; i++)
        if (l2_missing(l, i))
            return need_l2(l, i);
    return 0;
}

static int qcow_meta_loaded(struct layer *l, const struct meta_need *n, const uint8_t *buf,
                            long res)
{
    struct qcow_layer *q = Q(l);
    struct l2_table *t;
    int r;

    /* Meanwhile the table may have been cached (a synchronous load) or the
     * L1 entry changed (make_empty): the read is of no use then. */
    if (n->key >= q->g.l1_entries || q->l1[n->key] != n->off)
        return qc_fail(-EAGAIN, "%s: the L2 table at %#" PRIx64 " moved while it was read",
                       l->path, n->off);
    if ((t = l2_cache_lookup(&q->cache, n->key))) {
        l2_table_pin(t);
        return 0;
    }
    if ((r = install_l2(l, n, buf, res, &t)) < 0)
        return r;
    l2_table_pin(t);
    return 0;
}

static void qcow_meta_unpin(struct layer *l, const struct meta_need *n)
{
    struct l2_table *t = l2_cache_lookup(&Q(l)->cache, n->key);

    assert(t);
    l2_table_unpin(t);
}

/* Writes past the end of the file are slow: the kernel runs an O_DIRECT
 * write that extends a file synchronously inside io_submit().  So the file
 * is grown ahead of the allocations, a few MiB at a time (a hole: it costs no
 * space), and cut back to what is allocated when the image is closed.  A
 * crash leaves the grown tail unreferenced: leaked space, never garbage. */
#define EXTEND_AHEAD (8u << 20)

static void extend_ahead(struct layer *l, struct qcow_layer *q)
{
    uint64_t target;

    if (l->read_only || q->alloc_end <= q->file_extent)
        return;
    /* Never shorter than a growth in flight makes it. */
    target = MAX(align_up(q->alloc_end + EXTEND_AHEAD, 1u << 20), q->growth_to);
    if (ftruncate(l->meta_fd, (off_t)target) == 0)
        q->file_extent = target;
}

static void trim_extension(struct layer *l, struct qcow_layer *q)
{
    if (!l->read_only && q->file_extent > q->alloc_end &&
        ftruncate(l->meta_fd, (off_t)q->alloc_end) == 0)
        q->file_extent = q->prealloc_end = q->alloc_end;
}

/* Reserve len bytes at the end of the file, aligned to align. */
static uint64_t reserve(struct layer *l, struct qcow_layer *q, uint64_t len, uint64_t align)
{
    uint64_t off = align_up(q->alloc_end, align);

    q->alloc_end = off + len;
    extend_ahead(l, q);
    return off;
}

uint64_t qcow_reserve(struct layer *l, struct qcow_layer *q, uint64_t len, uint64_t align)
{
    return reserve(l, q, len, align);
}

/* Make [off, off+len) part of the file (it reads as zeros), with disk
 * blocks behind it when `physical` (non-sparse images, full preallocation). */
static int give_file_space(struct layer *l, uint64_t off, uint64_t len, bool physical)
{
    struct qcow_layer *q = Q(l);

    if (physical && off + len > q->prealloc_end &&
        fallocate(l->meta_fd, 0, (off_t)off, (off_t)len) < 0 && errno != EOPNOTSUPP)
        return qc_fail(-errno, "%s: cannot allocate %" PRIu64 " bytes at %#" PRIx64 ": %s",
                       l->path, len, off, strerror(errno));
    if (off + len > q->file_extent) {
        if (ftruncate(l->meta_fd, (off_t)(off + len)) < 0)
            return qc_fail(-errno, "%s: cannot extend the file: %s", l->path, strerror(errno));
        q->file_extent = off + len;
    }
    return 0;
}

/* ---- growing ahead (image.h: "growing the file") ------------------- */

/* [alloc_end, ready_end) can be reserved without a system call. */
static uint64_t ready_end(const struct qcow_layer *q)
{
    return q->sparse ? q->file_extent : q->prealloc_end;
}

/* How far ahead of the allocations the file is grown: a few MiB, and with
 * Xen extents the next table with its extent too. */
static uint64_t growth_window(const struct qcow_layer *q)
{
    uint64_t w = EXTEND_AHEAD;

    if (q->extent_alloc)
        w += align_up(q->g.l2_bytes, q->g.cluster_size) +
             (uint64_t)q->g.l2_entries * q->g.cluster_size;
    return w;
}

/* The most a new table costs: itself, its extent, and alignment. */
static uint64_t new_table_bound(const struct qcow_layer *q)
{
    uint64_t n = align_up(q->g.l2_bytes, q->g.cluster_size) + q->g.cluster_size;

    return q->extent_alloc ? n + (uint64_t)q->g.l2_entries * q->g.cluster_size : n;
}

/* The most that plans of [off, off+len) reserve (their tables are cached,
 * or do not exist yet), mirroring qcow_plan_write and qcow_plan_discard:
 * more is harmless (the plan waits a little early), less would make a plan
 * grow the file inline. */
static uint64_t reserve_bound(struct layer *l, uint64_t off, uint64_t len, bool discard)
{
    struct qcow_layer *q = Q(l);
    uint64_t cs = q->g.cluster_size, bytes = cs, counted_table = UINT64_MAX;

    for (uint64_t c = align_down(off, cs); c < off + len; c += cs) {
        uint64_t l1_index = c >> q->g.shift, entry = 0;
        struct l2_table *t;

        if (l1_index >= q->g.l1_entries)
            break;
        t = l2_cache_lookup(&q->cache, l1_index);
        if (!t && q->l1[l1_index]) {
            bytes += cs;                /* not cached after all: assume the worst */
            continue;
        }
        if (!t && (!discard || l->backing) && counted_table != l1_index) {
            bytes += new_table_bound(q);
            counted_table = l1_index;
        }
        if (!t && q->extent_alloc)
            continue;                   /* its clusters come with the extent */
        if (t)
            entry = t->entries[(c >> q->h.cluster_bits) & (q->g.l2_entries - 1)];
        if (entry && !(entry & QCOW_OFLAG_COMPRESSED))
            continue;                   /* written in place, or zeroed */
        if (discard && !entry && !l->backing)
            continue;                   /* nothing to discard */
        bytes += cs;
    }
    return bytes;
}

static int qcow_need_space(struct layer *l, uint64_t off, uint64_t len, bool discard)
{
    struct qcow_layer *q = Q(l);
    uint64_t end;

    if (discard ? q->h.crypt_method != 0 : (q->h.crypt_method && !q->crypt))
        return 0;                       /* the plan refuses: no space to wait for */
    end = align_up(q->alloc_end, q->g.cluster_size) + reserve_bound(l, off, len, discard);
    if (end <= ready_end(q))
        return 0;
    q->space_wanted = MAX(q->space_wanted, end);
    *l->need = (struct meta_need){ .kind = NEED_SPACE, .layer = l, .fd = l->meta_fd, .off = end };
    return IMAGE_NEED_META;
}

static int qcow_growth_next(struct layer *l, struct image_growth *g)
{
    struct qcow_layer *q = Q(l);
    uint64_t ready = ready_end(q), window = growth_window(q), to;
    uint64_t ahead = ready > q->alloc_end ? ready - q->alloc_end : 0;

    if (q->growth_to || (q->space_wanted <= ready && ahead >= window / 2))
        return 0;
    if (q->growth_minimal && q->space_wanted > ready)
        to = q->space_wanted;
    else
        to = align_up(MAX(q->alloc_end, q->space_wanted) + window, 1u << 20);
    *g = (struct image_growth){ .layer = l, .fd = l->meta_fd, .from = MAX(ready, q->alloc_end),
                                .to = to, .physical = !q->sparse, .generation = q->generation };
    q->growth_to = to;
    return 1;
}

static int qcow_growth_done(struct layer *l, const struct image_growth *g, int err)
{
    struct qcow_layer *q = Q(l);

    q->growth_to = 0;
    if (g->generation != q->generation)
        return 0;                       /* the allocations were reset: plan again */
    if (err == 0) {
        q->file_extent = MAX(q->file_extent, g->to);
        if (g->physical)
            q->prealloc_end = MAX(q->prealloc_end, g->to);
        q->growth_minimal = false;
        if (q->space_wanted <= ready_end(q))
            q->space_wanted = 0;
        return 0;
    }
    if (!q->growth_minimal && q->space_wanted && g->to > q->space_wanted) {
        q->growth_minimal = true;       /* the window did not fit: just what is needed */
        return 0;
    }
    q->growth_minimal = false;
    q->space_wanted = 0;
    return qc_fail(err, "%s: cannot %s the file to %" PRIu64 " bytes: %s", l->path,
                   g->physical ? "allocate space in" : "extend", g->to, strerror(-err));
}

static int new_l2(struct layer *l, uint64_t l1_index, struct l2_table **out)
{
    struct qcow_layer *q = Q(l);
    uint64_t off = reserve(l, q, q->g.l2_bytes, q->g.cluster_size);
    struct l2_table *t = l2_cache_insert(&q->cache, l1_index, off);
    int r;

    if (!t)
        return -ENOMEM;
    t->fresh = true;
    l2_cache_set_dirty(&q->cache, t, true);
    q->l1[l1_index] = off;
    if (q->extent_alloc) {
        /* Right after the table, where blktap's fast path looks for them. */
        uint64_t first = reserve(l, q, (uint64_t)q->g.l2_entries * q->g.cluster_size,
                                 QCOW_SECTOR_SIZE);
        for (uint32_t i = 0; i < q->g.l2_entries; i++)
            t->entries[i] = first + (uint64_t)i * q->g.cluster_size;
        /* The extent must read as zeros before the table can point at it. */
        if ((r = give_file_space(l, first, (uint64_t)q->g.l2_entries * q->g.cluster_size,
                                 !q->sparse)) < 0)
            return r;
    }
    *out = t;
    return 0;
}

/* The L2 table covering l1_index: from the cache, the file, or (create) new.
 * *out is NULL when the range is unallocated and create is false. */
static int get_l2(struct layer *l, uint64_t l1_index, bool create, struct l2_table **out)
{
    struct qcow_layer *q = Q(l);

    *out = l2_cache_lookup(&q->cache, l1_index);
    if (*out)
        return 0;
    if (q->l1[l1_index])
        return load_l2(l, l1_index, out);
    return create ? new_l2(l, l1_index, out) : 0;
}

/* ---- mapping ---------------------------------------------------------- */

static int bad_entry(struct layer *l, uint64_t guest_off, uint64_t e, const char *why)
{
    return qc_fail(-EIO, "%s: corrupt L2 entry %#" PRIx64 " for guest offset %" PRIu64 ": %s",
                   l->path, e, guest_off, why);
}

static int check_l2_entry(struct layer *l, uint64_t guest_off, uint64_t e)
{
    struct qcow_layer *q = Q(l);
    uint64_t end = MAX(q->alloc_end, l->file_size);
    struct qcow_span s;
    enum qcow_fault f = qcow_l2_entry_fault(&q->g, &q->lay, end, e, &s);
    char why[96];

    if (f == QCOW_FAULT_NONE)
        return 0;
    snprintf(why, sizeof why, "%s %s", s.compressed ? "compressed cluster" : "cluster",
             qcow_fault_text(f));
    return bad_entry(l, guest_off, e, why);
}

static void map_unallocated(struct qcow_layer *q, const struct l2_table *t, uint64_t off,
                            uint64_t len, struct extent *e)
{
    uint64_t span_end = align_down(off, UINT64_C(1) << q->g.shift) + (UINT64_C(1) << q->g.shift);
    uint64_t n = MIN(len, span_end - off);

    if (t) {
        uint32_t i = (uint32_t)((off >> q->h.cluster_bits) & (q->g.l2_entries - 1));
        uint64_t first = q->g.cluster_size - (off & (q->g.cluster_size - 1));
        n = MIN(len, first);
        while (n < len && ++i < q->g.l2_entries && t->entries[i] == 0)
            n = MIN(len, n + q->g.cluster_size);
    }
    *e = (struct extent){ .kind = EXTENT_ZERO, .guest_off = off, .len = n };
}

static int qcow_map(struct layer *l, uint64_t off, uint64_t len, struct extent *e, bool *allocated)
{
    struct qcow_layer *q = Q(l);
    uint64_t l1_index = off >> q->g.shift;
    uint64_t in_cluster = off & (q->g.cluster_size - 1);
    struct l2_table *t = NULL;
    uint32_t i;
    uint64_t entry, n;
    int r;

    if (l1_index >= q->g.l1_entries)
        return qc_fail(-EINVAL, "%s: offset %" PRIu64 " is beyond the image", l->path, off);
    if (l->need && l2_missing(l, l1_index))
        return need_l2(l, l1_index);
    if ((r = get_l2(l, l1_index, false, &t)) < 0)
        return r;
    i = (uint32_t)((off >> q->h.cluster_bits) & (q->g.l2_entries - 1));
    entry = t ? t->entries[i] : 0;
    if (entry == 0) {
        *allocated = false;
        map_unallocated(q, t, off, len, e);
        return 0;
    }
    if ((r = check_l2_entry(l, off, entry)) < 0)
        return r;
    *allocated = true;
    n = MIN(len, q->g.cluster_size - in_cluster);
    if (entry & QCOW_OFLAG_COMPRESSED) {
        *e = (struct extent){ .kind = EXTENT_COMPRESSED, .layer = l, .fd = l->fd,
                              .guest_off = off, .len = n,
                              .host_off = qcow_compressed_offset(&q->g, entry),
                              .comp_len = qcow_compressed_length(&q->g, entry),
                              .cluster_guest_off = off - in_cluster };
        return 0;
    }
    /* Follow clusters that sit one after the other on the host. */
    for (uint64_t next = entry + q->g.cluster_size; n < len && ++i < q->g.l2_entries &&
         t->entries[i] == next && check_l2_entry(l, off + n, next) == 0;
         next += q->g.cluster_size)
        n = MIN(len, n + q->g.cluster_size);
    *e = (struct extent){ .kind = EXTENT_DATA, .layer = l, .fd = l->fd, .guest_off = off, .len = n,
                          .host_off = entry + in_cluster, .encrypted = q->h.crypt_method != 0 };
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

static int need_key(struct layer *l)
{
    return qc_fail(-ENOKEY, "%s: image is encrypted, a key is needed", l->path);
}

static int qcow_plan_write(struct layer *l, uint64_t off, uint64_t len, struct write_piece *p)
{
    struct qcow_layer *q = Q(l);
    uint64_t l1_index = off >> q->g.shift;
    uint64_t in_cluster = off & (q->g.cluster_size - 1);
    uint64_t n = MIN(len, q->g.cluster_size - in_cluster);
    struct l2_table *t;
    uint64_t entry;
    int r;

    if (q->h.crypt_method && !q->crypt)
        return need_key(l);
    if (l1_index >= q->g.l1_entries)
        return qc_fail(-EINVAL, "%s: offset %" PRIu64 " is beyond the image", l->path, off);
    if ((r = get_l2(l, l1_index, true, &t)) < 0)
        return r;
    entry = t->entries[(off >> q->h.cluster_bits) & (q->g.l2_entries - 1)];
    if (entry && (r = check_l2_entry(l, off, entry)) < 0)
        return r;
    *p = (struct write_piece){ .layer = l, .fd = l->fd, .guest_off = off, .len = n,
                               .cluster_guest_off = off - in_cluster,
                               .cluster_size = q->g.cluster_size,
                               .encrypted = q->crypt != NULL };
    if (entry && !(entry & QCOW_OFLAG_COMPRESSED)) {
        p->kind = WRITE_IN_PLACE;
        p->host_off = entry + in_cluster;
        return 0;
    }
    p->kind = WRITE_ALLOC;
    p->host_off = reserve(l, q, q->g.cluster_size, q->g.cluster_size);
    p->old_entry = entry;
    if (n == q->g.cluster_size)
        p->fill = FILL_NONE;
    else if (entry)
        p->fill = FILL_COMPRESSED;
    else
        p->fill = l->backing ? FILL_BACKING : FILL_ZERO;
    if (!q->sparse && (r = give_file_space(l, p->host_off, q->g.cluster_size, true)) < 0)
        return r;
    if (l->need) {
        /* Cached until the commit: no synchronous read of it then. */
        l2_table_pin(t);
        p->pinned = true;
    }
    return 0;
}

static int set_entry(struct layer *l, uint64_t guest_off, uint64_t value)
{
    struct qcow_layer *q = Q(l);
    struct l2_table *t;
    int r;

    if ((r = get_l2(l, guest_off >> q->g.shift, false, &t)) < 0)
        return r;
    if (!t)
        return qc_fail(-EIO, "%s: L2 table for offset %" PRIu64 " vanished", l->path, guest_off);
    t->entries[(guest_off >> q->h.cluster_bits) & (q->g.l2_entries - 1)] = value;
    l2_cache_set_dirty(&q->cache, t, true);
    return 0;
}

int qcow_clear_entries_from(struct layer *l, uint64_t guest_off)
{
    struct qcow_layer *q = Q(l);
    uint64_t l1_index = guest_off >> q->g.shift;
    struct l2_table *t;
    int r;

    if (l1_index >= q->g.l1_entries)
        return 0;
    if ((r = get_l2(l, l1_index, false, &t)) < 0 || !t)
        return r;
    for (uint64_t i = (guest_off >> q->h.cluster_bits) & (q->g.l2_entries - 1);
         i < q->g.l2_entries; i++)
        if (t->entries[i]) {
            t->entries[i] = 0;
            l2_cache_set_dirty(&q->cache, t, true);
        }
    q->zcluster_entry = 0;
    return 0;
}

static int qcow_commit_write(struct layer *l, const struct write_piece *p)
{
    struct qcow_layer *q = Q(l);

    if (p->kind != WRITE_ALLOC)
        return 0;
    if (q->zcluster_entry && q->zcluster_entry == p->old_entry)
        q->zcluster_entry = 0;
    return set_entry(l, p->cluster_guest_off, p->host_off);
}

static void qcow_end_write(struct layer *l, const struct write_piece *p)
{
    struct l2_table *t = l2_cache_lookup(&Q(l)->cache, p->cluster_guest_off >> Q(l)->g.shift);

    assert(t);
    l2_table_unpin(t);
}

static int qcow_adopt_cluster(struct layer *l, uint64_t guest_off, uint64_t host_off)
{
    struct qcow_layer *q = Q(l);
    struct l2_table *t;
    int r;

    struct qcow_span s;

    /* The file as it was opened: what the dead worker wrote is in it. */
    if (!is_aligned(guest_off, q->g.cluster_size) || guest_off >= q->h.size ||
        (host_off & QCOW_OFLAG_COMPRESSED) ||
        qcow_l2_entry_fault(&q->g, &q->lay, q->file_extent, host_off, &s) != QCOW_FAULT_NONE)
        return qc_fail(-EINVAL, "%s: cannot adopt cluster %#" PRIx64 " at %#" PRIx64
                       ": outside the image or the file", l->path, guest_off, host_off);
    if ((r = get_l2(l, guest_off >> q->g.shift, true, &t)) < 0)
        return r;
    q->alloc_end = MAX(q->alloc_end, host_off + q->g.cluster_size);
    return set_entry(l, guest_off, host_off);
}

static int qcow_write_compressed(struct layer *l, uint64_t guest_off, const uint8_t *data)
{
    struct qcow_layer *q = Q(l);
    _cleanup_free_ uint8_t *out = malloc(q->g.cluster_size);
    struct l2_table *t;
    uint64_t host;
    long clen;
    int r;

    if (!out)
        return -ENOMEM;
    if (q->crypt || q->h.crypt_method)
        return qc_fail(-EINVAL, "%s: compression is not possible on an encrypted image", l->path);
    if ((r = get_l2(l, guest_off >> q->g.shift, true, &t)) < 0)
        return r;
    if (t->entries[(guest_off >> q->h.cluster_bits) & (q->g.l2_entries - 1)] != 0)
        return -EEXIST;
    clen = qcow_deflate_cluster(data, q->g.cluster_size, out);
    if (clen < 0)
        return (int)clen;
    if (clen == 0)
        return -E2BIG;
    host = reserve(l, q, (uint64_t)clen, QCOW_SECTOR_SIZE);
    if ((r = write_full_at(l->meta_fd, out, (size_t)clen, host)) < 0)
        return qc_fail(r, "%s: cannot write a compressed cluster: %s", l->path, strerror(-r));
    return set_entry(l, guest_off, qcow_compressed_entry(&q->g, host, (uint32_t)clen));
}

/* ---- discard ----------------------------------------------------------- */

/* A whole cluster: all of it, or all of it the guest can see. */
static bool covers_cluster(const struct qcow_layer *q, uint64_t off, uint64_t n)
{
    uint64_t visible = qcow_virtual_size(&q->h);

    return is_aligned(off, q->g.cluster_size) && (n == q->g.cluster_size || off + n >= visible);
}

/* A fresh cluster for REPLACE: never written, so it reads as zeros. */
static int plan_replace(struct layer *l, uint64_t off, uint64_t entry, struct discard_piece *p)
{
    struct qcow_layer *q = Q(l);

    p->kind = DISCARD_REPLACE;
    p->cluster_guest_off = off;
    p->old_entry = entry;
    p->host_off = reserve(l, q, q->g.cluster_size, q->g.cluster_size);
    return q->sparse ? 0 : give_file_space(l, p->host_off, q->g.cluster_size, true);
}

static int qcow_plan_discard(struct layer *l, uint64_t off, uint64_t len, struct discard_piece *p)
{
    struct qcow_layer *q = Q(l);
    uint64_t l1_index = off >> q->g.shift;
    uint64_t n = MIN(len, q->g.cluster_size - (off & (q->g.cluster_size - 1)));
    struct l2_table *t;
    uint64_t entry;
    int r;

    if (q->h.crypt_method)
        return qc_fail(-EOPNOTSUPP, "%s: cannot discard on an encrypted image (a hole would "
                       "decrypt to garbage)", l->path);
    if (l1_index >= q->g.l1_entries)
        return qc_fail(-EINVAL, "%s: offset %" PRIu64 " is beyond the image", l->path, off);
    *p = (struct discard_piece){ .kind = DISCARD_KEEP, .layer = l, .guest_off = off, .len = n };
    if (!covers_cluster(q, off, n))
        return 0;
    /* Over a backing file an unallocated cluster needs one of its own. */
    if ((r = get_l2(l, l1_index, l->backing != NULL, &t)) < 0)
        return r;
    entry = t ? t->entries[(off >> q->h.cluster_bits) & (q->g.l2_entries - 1)] : 0;
    if (entry == 0) {
        if (!l->backing) {
            p->kind = DISCARD_NOTHING;
            return 0;
        }
        return plan_replace(l, off, entry, p);
    }
    if ((r = check_l2_entry(l, off, entry)) < 0)
        return r;
    if (entry & QCOW_OFLAG_COMPRESSED)
        return plan_replace(l, off, entry, p);
    p->kind = DISCARD_ZERO;
    p->host_off = entry;
    p->host_len = q->g.cluster_size;
    p->keep_blocks = !q->sparse;
    return 0;
}

static int qcow_commit_discard(struct layer *l, const struct discard_piece *p)
{
    struct qcow_layer *q = Q(l);

    if (q->zcluster_entry && q->zcluster_entry == p->old_entry)
        q->zcluster_entry = 0;
    return set_entry(l, p->cluster_guest_off, p->host_off);
}

static uint32_t qcow_discard_granularity(const struct layer *l)
{
    const struct qcow_layer *q = Q(l);

    return q->h.crypt_method ? 0 : q->g.cluster_size;
}

/* ---- metadata writeback ----------------------------------------------- */

struct wb_state {
    uint8_t *front_next;        /* the front sectors after this writeback, or NULL */
    uint64_t *l1_next;          /* the on-disk L1 after this writeback */
    uint64_t *tables;           /* l1 indexes of the tables in it */
    bool *was_fresh;
    size_t ntables;
};

struct wb_builder {
    struct layer *l;
    struct meta_writeback *wb;
    struct wb_state *st;
    size_t cap1, cap2;
    int err;
};

static int push_write(struct meta_write **v, size_t *n, size_t *cap, struct meta_write w)
{
    int r = array_reserve(*v, *cap, *n, 1);

    if (r < 0)
        return r;
    (*v)[(*n)++] = w;
    return 0;
}

static int snapshot_table(struct l2_table *t, void *opaque)
{
    struct wb_builder *b = opaque;
    struct qcow_layer *q = Q(b->l);
    struct meta_write w = { .fd = b->l->fd, .off = t->offset, .len = q->g.l2_bytes };
    int r;

    if (!t->dirty)
        return 0;
    w.buf = alloc_aligned(4096, w.len);
    if (!w.buf)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->g.l2_entries; i++)
        store_be64(w.buf + (size_t)i * 8, t->entries[i]);
    r = t->fresh ? push_write(&b->wb->phase1, &b->wb->n1, &b->cap1, w)
                 : push_write(&b->wb->phase2, &b->wb->n2, &b->cap2, w);
    if (r < 0) {
        free(w.buf);
        return r;
    }
    b->st->tables[b->st->ntables] = t->l1_index;
    b->st->was_fresh[b->st->ntables++] = t->fresh;
    if (t->fresh)
        b->st->l1_next[t->l1_index] = t->offset;
    t->fresh = false;
    t->writeback = true;
    l2_cache_set_dirty(&q->cache, t, false);
    return 0;
}

static uint8_t *encode_l1(const struct qcow_layer *q, const uint64_t *l1, uint64_t lo, uint64_t hi)
{
    uint8_t *buf = malloc((hi - lo) * 8);

    if (buf)
        for (uint64_t i = lo; i < hi; i++)
            store_be64(buf + (i - lo) * 8, l1[i]);
    return buf;
}

/* The L1 entries (and the Xen checksum) change: patch a copy of the front
 * sectors and write the sectors that changed. */
static int push_l1_and_checksum(struct wb_builder *b)
{
    struct qcow_layer *q = Q(b->l);
    uint64_t lo = UINT64_MAX, hi = 0, first, end;
    struct meta_write w = { .fd = b->l->fd };
    uint8_t *front;
    int r;

    for (uint64_t i = 0; i < q->g.l1_entries; i++)
        if (b->st->l1_next[i] != q->l1_disk[i]) {
            lo = MIN(lo, i);
            hi = i + 1;
        }
    if (hi == 0)
        return 0;
    if (!(front = b->st->front_next = alloc_aligned(4096, q->front_len)))
        return -ENOMEM;
    memcpy(front, q->front, q->front_len);
    for (uint64_t i = lo; i < hi; i++)
        store_be64(front + (q->h.l1_offset - q->front_off) + i * 8, b->st->l1_next[i]);
    first = align_down(q->h.l1_offset + lo * 8, QCOW_SECTOR_SIZE) - q->front_off;
    end = align_up(q->h.l1_offset + hi * 8, QCOW_SECTOR_SIZE) - q->front_off;
    if (q->xen_maintained) {
        /* Only with the L1 in the front (front_off 0): see take_front. */
        store_be32(front + QCOW_HEADER_SIZE + 4,
                   qcow_xen_area_checksum(front + q->h.l1_offset, q->g.l1_bytes,
                                          q->l1_area_bytes));
        first = 0;
    }
    w.off = q->front_off + first;
    w.len = end - first;
    if (!(w.buf = alloc_aligned(4096, w.len)))
        return -ENOMEM;
    memcpy(w.buf, front + first, w.len);
    if ((r = push_write(&b->wb->phase2, &b->wb->n2, &b->cap2, w)) < 0)
        free(w.buf);
    return r;
}

static void free_wb_state(struct wb_state *st)
{
    if (!st)
        return;
    free(st->front_next);
    free(st->l1_next);
    free(st->tables);
    free(st->was_fresh);
    free(st);
}

static void qcow_meta_finish(struct layer *l, struct meta_writeback *wb, int err);

static int qcow_meta_prepare(struct layer *l, struct meta_writeback *wb)
{
    struct qcow_layer *q = Q(l);
    struct wb_state *st = calloc(1, sizeof *st);
    struct wb_builder b = { .l = l, .wb = wb, .st = st };
    int r;

    *wb = (struct meta_writeback){ .fd = l->meta_fd, .priv = st };
    if (!st)
        return -ENOMEM;
    st->l1_next = malloc(MAX(q->g.l1_bytes, 8));
    st->tables = calloc(q->cache.dirty + 1, sizeof *st->tables);
    st->was_fresh = calloc(q->cache.dirty + 1, sizeof *st->was_fresh);
    if (!st->l1_next || !st->tables || !st->was_fresh) {
        r = -ENOMEM;
        goto fail;
    }
    memcpy(st->l1_next, q->l1_disk, q->g.l1_bytes);
    if ((r = l2_cache_foreach(&q->cache, snapshot_table, &b)) < 0 ||
        (r = push_l1_and_checksum(&b)) < 0)
        goto fail;
    return 0;
fail:
    qcow_meta_finish(l, wb, r);
    return r;
}

static void free_writes(struct meta_write *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].buf);
    free(v);
}

/* Tables of a writeback are evictable again; after a failure they are dirty
 * again (and fresh ones fresh again).  A failed metadata write is retried by
 * the next writeback; after a failed flush there is none (image_flush_failed:
 * the data the tables point at may be lost, so they are never published). */
static void release_tables(struct layer *l, struct wb_state *st, int err)
{
    struct qcow_layer *q = Q(l);

    for (size_t i = 0; i < st->ntables; i++) {
        struct l2_table *t = l2_cache_lookup(&q->cache, st->tables[i]);
        if (!t)
            continue;
        t->writeback = false;
        if (err < 0) {
            t->fresh = t->fresh || st->was_fresh[i];
            l2_cache_set_dirty(&q->cache, t, true);
        }
    }
}

static void qcow_meta_finish(struct layer *l, struct meta_writeback *wb, int err)
{
    struct qcow_layer *q = Q(l);
    struct wb_state *st = wb->priv;

    if (st) {
        release_tables(l, st, err);
        if (err == 0) {
            memcpy(q->l1_disk, st->l1_next, q->g.l1_bytes);
            if (st->front_next)
                memcpy(q->front, st->front_next, q->front_len);
        }
        free_wb_state(st);
    }
    free_writes(wb->phase1, wb->n1);
    free_writes(wb->phase2, wb->n2);
    *wb = (struct meta_writeback){ .fd = -1 };
}

static bool qcow_meta_pressure(const struct layer *l)
{
    return l2_cache_over(&Q(l)->cache);
}

static int write_l1_range(struct layer *l, const uint64_t *l1, uint64_t lo, uint64_t hi)
{
    struct qcow_layer *q = Q(l);
    _cleanup_free_ uint8_t *buf = encode_l1(q, l1, lo, hi);
    int r;

    if (!buf)
        return -ENOMEM;
    if ((r = write_full_at(l->meta_fd, buf, (hi - lo) * 8, q->h.l1_offset + lo * 8)) < 0)
        return qc_fail(r, "%s: cannot write the L1 table: %s", l->path, strerror(-r));
    return 0;
}

/* The extension header, with the checksum of the L1 in memory when we keep
 * it right (else as found). */
static int write_xen_header(struct layer *l)
{
    struct qcow_layer *q = Q(l);
    _cleanup_free_ uint8_t *all = encode_l1(q, q->l1, 0, q->g.l1_entries);
    uint8_t raw[QCOW_XEN_HEADER_SIZE];
    int r;

    if (!all && q->g.l1_entries)
        return -ENOMEM;
    if (q->xen_maintained)
        q->xen.checksum = qcow_xen_area_checksum(all, q->g.l1_bytes, q->l1_area_bytes);
    qcow_xen_header_encode(&q->xen, raw);
    if ((r = write_full_at(l->meta_fd, raw, sizeof raw, QCOW_HEADER_SIZE)) < 0)
        return qc_fail(r, "%s: cannot write the Xen header: %s", l->path, strerror(-r));
    return 0;
}

/* ---- whole-image operations ------------------------------------------- */

/* With a piece detached at the end of the file, what lay between the front
 * and it was data that nothing references any more: a hole. */
static void free_detached_gap(struct layer *l, struct qcow_layer *q)
{
    uint64_t lo = align_up(q->lay.front_end, QCOW_SECTOR_SIZE), hi = UINT64_MAX;

    if (q->lay.l1_end)
        hi = MIN(hi, q->lay.l1_start);
    if (q->lay.name_end)
        hi = MIN(hi, q->lay.name_start);
    hi = align_down(MIN(hi, q->alloc_end), QCOW_SECTOR_SIZE);
    if (hi > lo)
        fallocate(l->meta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)lo,
                  (off_t)(hi - lo));
}

static int qcow_make_empty(struct layer *l)
{
    struct qcow_layer *q = Q(l);
    int r;

    l2_cache_clear(&q->cache);
    memset(q->l1, 0, q->g.l1_bytes);
    if ((r = write_l1_range(l, q->l1, 0, q->g.l1_entries)) < 0)
        return r;
    if (q->xen_maintained && (r = write_xen_header(l)) < 0)
        return r;
    if (fdatasync(l->meta_fd) < 0)
        return qc_fail(-errno, "%s: fdatasync: %s", l->path, strerror(errno));
    memset(q->l1_disk, 0, q->g.l1_bytes);
    if ((r = qcow_load_front(l, q)) < 0)
        return r;
    q->zcluster_entry = 0;
    q->alloc_end = align_up(qcow_metadata_end(q), QCOW_SECTOR_SIZE);
    if (ftruncate(l->meta_fd, (off_t)q->alloc_end) < 0)
        return qc_fail(-errno, "%s: cannot truncate: %s", l->path, strerror(errno));
    free_detached_gap(l, q);
    l->file_size = q->file_extent = q->prealloc_end = q->alloc_end;
    q->generation++;
    return 0;
}

int qcow_preallocate_span(struct layer *l, uint64_t l1_index, enum prealloc_mode mode)
{
    struct qcow_layer *q = Q(l);
    uint64_t first, bytes = (uint64_t)q->g.l2_entries * q->g.cluster_size;
    struct l2_table *t;
    int r;

    if ((r = get_l2(l, l1_index, true, &t)) < 0)
        return r;
    if (mode != PREALLOC_FULL || q->extent_alloc)
        return 0;
    first = reserve(l, q, bytes, q->g.cluster_size);
    for (uint32_t j = 0; j < q->g.l2_entries; j++)
        t->entries[j] = first + (uint64_t)j * q->g.cluster_size;
    return give_file_space(l, first, bytes, true);
}

static void qcow_info(const struct layer *l, struct layer_info *info)
{
    const struct qcow_layer *q = Q(l);

    info->cluster_size = q->g.cluster_size;
    info->l2_entries = q->g.l2_entries;
    info->l1_entries = q->g.l1_entries;
    info->l1_offset = q->h.l1_offset;
    info->encrypted = q->h.crypt_method == QCOW_CRYPT_AES;
    info->xen_header = q->xen.present;
    info->xen_honoured = q->xen_honoured;
    info->xen_min_cluster_alloc = q->xen.min_cluster_alloc;
    info->xen_flags = q->xen.flags;
    info->xen_checksum_ok = q->xen_checksum_ok;
    info->l1_area_entries = q->l1_area_bytes / 8;
}

static int qcow_crypt_op(struct layer *l, uint64_t sector, uint8_t *buf, uint64_t len, bool enc)
{
    struct qcow_layer *q = Q(l);

    if (!q->crypt)
        return need_key(l);
    if (enc ? qcow_encrypt_sectors(q->crypt, sector, buf, len)
            : qcow_decrypt_sectors(q->crypt, sector, buf, len))
        return qc_fail(-EIO, "%s: AES failed", l->path);
    return 0;
}

static int qcow_decrypt(struct layer *l, uint64_t sector, uint8_t *buf, uint64_t len)
{
    return qcow_crypt_op(l, sector, buf, len, false);
}

static int qcow_encrypt(struct layer *l, uint64_t sector, uint8_t *buf, uint64_t len)
{
    return qcow_crypt_op(l, sector, buf, len, true);
}

static int qcow_inflate(struct layer *l, const struct extent *e, const uint8_t *stream, uint8_t *out)
{
    struct qcow_layer *q = Q(l);
    uint64_t entry = qcow_compressed_entry(&q->g, e->host_off, e->comp_len);
    int r;

    if (q->zcluster_entry != entry) {
        if (!stream)
            return -EAGAIN;
        q->zcluster_entry = 0;
        if ((r = qcow_inflate_cluster(stream, e->comp_len, q->zcluster, q->g.cluster_size)) < 0)
            return qc_fail(r, "%s: compressed cluster at %#" PRIx64 " (guest offset %" PRIu64
                           ") is corrupt", l->path, e->host_off, e->cluster_guest_off);
        q->zcluster_entry = entry;
    }
    memcpy(out, q->zcluster + (e->guest_off - e->cluster_guest_off), e->len);
    return 0;
}

const struct layer_ops qcow_ops = {
    .format = IMAGE_FORMAT_QCOW,
    .open = qcow_open,
    .close = qcow_close,
    .map = qcow_map,
    .plan_write = qcow_plan_write,
    .commit_write = qcow_commit_write,
    .adopt_cluster = qcow_adopt_cluster,
    .write_compressed = qcow_write_compressed,
    .plan_discard = qcow_plan_discard,
    .commit_discard = qcow_commit_discard,
    .discard_granularity = qcow_discard_granularity,
    .meta_prepare = qcow_meta_prepare,
    .meta_finish = qcow_meta_finish,
    .meta_pressure = qcow_meta_pressure,
    .make_empty = qcow_make_empty,
    .resize = qcow_resize,
    .set_backing = qcow_set_backing,
    .info = qcow_info,
    .decrypt = qcow_decrypt,
    .encrypt = qcow_encrypt,
    .inflate = qcow_inflate,
    .need_tables = qcow_need_tables,
    .meta_loaded = qcow_meta_loaded,
    .meta_unpin = qcow_meta_unpin,
    .end_write = qcow_end_write,
    .need_space = qcow_need_space,
    .growth_next = qcow_growth_next,
    .growth_done = qcow_growth_done,
};
