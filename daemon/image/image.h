/* The image engine: an image is a chain of layers (top first), each served by
 * a driver (qcow v1 or raw).  A guest request is *planned* into independent
 * pieces that an executor runs: the synchronous one in sync_io.c for offline
 * tools, the libaio one in the worker.  Both go through the same plans, so the
 * same format code serves `qcowctl convert` and the daemon.
 *
 * Reads:  image_map() resolves [off, off+len) down the chain into extents
 *         (host data in some layer's file, a compressed cluster, or zeros).
 * Writes: image_plan_write() gives one write piece per cluster: in place, or
 *         an allocation of a fresh cluster (reserved at the end of the file)
 *         that may need the rest of the cluster filled from below first.  When
 *         the piece's data is written, image_commit_write() records the new
 *         L2 entry in the cache; it reaches the disk at the next metadata
 *         writeback, after the data has been flushed.
 * Flush:  image_meta_prepare() snapshots dirty metadata into a writeback in
 *         two phases: phase 1 (new L2 tables, not yet referenced), then a
 *         data flush, phase 2 (existing L2 tables, L1 entries, Xen checksum),
 *         then a flush.  A crash at any point leaks tail space at worst.
 *
 * Offsets and lengths of guest I/O are multiples of 512 (QCOW_SECTOR_SIZE).
 * Concurrency: an executor may run pieces of different clusters in parallel,
 * but must not plan a write to a cluster while an allocating piece for that
 * cluster is outstanding (image_plan_write would allocate it twice). */
#ifndef QCOWD_IMAGE_H
#define QCOWD_IMAGE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_SECTOR_SIZE 512
#define IMAGE_DEFAULT_MAX_DEPTH 64
#define IMAGE_DEFAULT_L2_CACHE_BYTES (16u << 20)

enum image_format { IMAGE_FORMAT_AUTO = 0, IMAGE_FORMAT_RAW, IMAGE_FORMAT_QCOW };

const char *image_format_name(enum image_format f);
/* "raw", "qcow" or "auto" → format; -EINVAL otherwise. */
int image_format_parse(const char *name, enum image_format *out);

struct image_open_opts {
    enum image_format format;   /* of the top layer; backing layers are probed */
    bool read_only;
    bool direct;                /* open data fds with O_DIRECT (falls back with a note) */
    const uint8_t *key;         /* password for AES-encrypted qcow layers */
    size_t key_len;
    uint64_t l2_cache_bytes;    /* per qcow layer; 0 = IMAGE_DEFAULT_L2_CACHE_BYTES */
    unsigned max_depth;         /* chain length cap; 0 = IMAGE_DEFAULT_MAX_DEPTH */
    /* Opens a backing file for reading: its descriptor, or -errno after
     * qc_fail() says why.  NULL: open(2) with the process's own rights. */
    int (*open_backing)(void *opaque, const char *child_path, const char *path);
    void *open_backing_opaque;
};

struct layer;

/* What a plan needs and does not have (see "metadata the plans need"
 * below): an L2 table the cache does not hold, or file space that is not
 * ready yet. */
enum meta_need_kind {
    NEED_TABLE,                 /* read len bytes at off of fd */
    NEED_SPACE,                 /* the file ready up to off (image_growth_next) */
};

struct meta_need {
    enum meta_need_kind kind;
    struct layer *layer;
    uint64_t key;               /* which table of the layer (qcow: L1 index) */
    int fd;
    uint64_t off;
    size_t len;
};

struct image {
    struct layer *top;
    unsigned depth;             /* number of layers */
    uint64_t size;              /* virtual size of the top layer in bytes */
    int flush_error;            /* a flush failed: -errno, sticky (image_flush_failed) */
    struct meta_need need;      /* the last IMAGE_NEED_META's table */
};

/* Open path and its whole backing chain.  Relative backing names resolve
 * against the directory of the layer that names them; loops and chains
 * longer than max_depth are refused. */
int image_open(const char *path, const struct image_open_opts *opts, struct image **out);

/* The same with the top layer's file already open as fd (taken over: closed
 * with the image, or at once on failure).  path names it in messages and is
 * where relative backing names resolve.  fd must be open for reading, and
 * for writing unless opts->read_only. */
int image_open_fd(const char *path, int fd, const struct image_open_opts *opts,
                  struct image **out);

/* Where a backing file named `name` in the image at child_path lives:
 * relative names are relative to child_path's directory.  Protocol
 * prefixes ("nbd:...") are refused. */
int image_resolve_backing(const char *child_path, const char *name, char **out);

/* Write back metadata (ordered, flushed) if writable, then free everything.
 * Returns the writeback error, if any; the image is freed either way. */
int image_close(struct image *img);

/* The format whose header the first sector (len bytes of it, 512 suffice)
 * shows: one of those QEMU recognises by their first sector (qcow and
 * qcow2, qed, vmdk, vpc, vhdx, vdi, luks, bochs, parallels, cloop), or NULL
 * for none.  See probe.c for why it matters. */
const char *image_probe_header(const uint8_t *sector, size_t len);

/* The top layer is raw by probing, not by the caller's word: then, as in
 * QEMU, no write may make its first sector another format's header. */
bool image_first_sector_guarded(const struct image *img);

/* ---- layers ---------------------------------------------------------- */

struct layer_info {
    enum image_format format;
    const char *path;           /* as opened */
    uint64_t size;              /* virtual size */
    uint64_t file_size;         /* bytes in the file */
    uint32_t cluster_size;      /* 0 for raw */
    uint32_t l2_entries;
    uint64_t l1_entries;
    uint64_t l1_offset;
    bool encrypted;
    bool xen_header;
    bool xen_honoured;          /* blktap reads it (no backing file, L1 at n * 4096) */
    uint32_t xen_min_cluster_alloc;
    uint32_t xen_flags;
    bool xen_checksum_ok;
    uint64_t l1_area_entries;   /* l1_entries, or blktap's long table */
    const char *backing_name;   /* as stored in the file, NULL if none */
};

void layer_get_info(const struct layer *l, struct layer_info *info);
struct layer *layer_backing(const struct layer *l);

/* The layer's file: the O_DIRECT descriptor when asked for and available,
 * else the buffered one (always safe, any alignment). */
int layer_fd(const struct layer *l, bool direct);
bool layer_is_direct(const struct layer *l);

/* ---- reading: extents ------------------------------------------------ */

enum extent_kind {
    EXTENT_DATA,                /* len bytes at host_off in layer's file */
    EXTENT_ZERO,                /* reads as zeros (nothing allocated in the chain) */
    EXTENT_COMPRESSED,          /* part of a compressed cluster of layer */
};

struct extent {
    enum extent_kind kind;
    struct layer *layer;        /* DATA, COMPRESSED */
    int fd;                     /* DATA, COMPRESSED: file to read */
    uint64_t guest_off;
    uint64_t len;
    uint64_t host_off;          /* DATA: first byte; COMPRESSED: start of the stream */
    uint32_t comp_len;          /* COMPRESSED: stream length */
    uint64_t cluster_guest_off; /* COMPRESSED: guest offset of the cluster start */
    bool encrypted;             /* DATA: decrypt with layer's key, IV from guest sector */
    uint32_t depth;             /* 0 = top layer */
};

struct extent_vec {
    struct extent *v;
    size_t n, cap;
};

void extent_vec_reset(struct extent_vec *ev);
void extent_vec_free(struct extent_vec *ev);

/* Resolve [off, off+len) down the chain, appending extents in guest order.
 * Adjacent DATA extents of one layer that are contiguous on the host are
 * merged.  Returns 0 or -errno (-EIO with a message for corrupt metadata). */
int image_map(struct image *img, uint64_t off, uint64_t len, struct extent_vec *out);

/* Map within one layer only: where [off, off+len) of l starts.  *allocated is
 * false for ranges the layer leaves to its backing file.  Used by map/info. */
int layer_map(struct layer *l, uint64_t off, uint64_t len, struct extent *out, bool *allocated);

/* Decrypt len bytes of a DATA extent read into buf (no-op if unencrypted). */
int extent_decrypt(const struct extent *e, uint64_t guest_off, uint8_t *buf, uint64_t len);

/* Turn the compressed stream of e (comp_len bytes in `stream`) into the
 * extent's bytes in out.  The layer caches the last cluster inflated. */
int extent_inflate(const struct extent *e, const uint8_t *stream, uint8_t *out);

/* ---- writing: pieces ------------------------------------------------- */

enum write_kind {
    WRITE_IN_PLACE,             /* write guest bytes at host_off */
    WRITE_ALLOC,                /* fresh cluster at host_off (cluster aligned) */
};

enum fill_kind {
    FILL_NONE,                  /* the piece covers the whole cluster */
    FILL_ZERO,                  /* the rest of the cluster is zeros */
    FILL_BACKING,               /* read the rest from the backing chain */
    FILL_COMPRESSED,            /* the rest is this layer's compressed cluster */
};

struct write_piece {
    enum write_kind kind;
    enum fill_kind fill;
    struct layer *layer;
    int fd;
    uint64_t guest_off;         /* guest bytes this piece writes */
    uint64_t len;
    uint64_t host_off;          /* IN_PLACE: of guest_off; ALLOC: of the cluster */
    uint64_t cluster_guest_off;
    uint32_t cluster_size;
    uint64_t old_entry;         /* ALLOC over compressed: the compressed L2 entry */
    bool encrypted;             /* encrypt before writing (IV from guest sector) */
    bool pinned;                /* its L2 table stays cached until image_end_write */
};

/* Plan the write of [off, off+len) on the top layer into *pieces (one per
 * cluster, or one for raw), growing the array as needed.  Allocating pieces
 * reserve their space now.  Fails with -EROFS on a read-only image. */
int image_plan_write(struct image *img, uint64_t off, uint64_t len,
                     struct write_piece **pieces, size_t *n, size_t *cap);

/* The piece's data is on its way to the disk: record its L2 entry. */
int image_commit_write(struct image *img, const struct write_piece *p);

/* In deferred mode (image_defer_meta) an allocating piece keeps its L2
 * table cached from its plan on, so that its commit never has to read the
 * table back: the caller ends every piece it planned, committed or not,
 * when it is done with it. */
void image_end_write(struct image *img, const struct write_piece *p);

/* Record an allocation whose data an earlier process (a worker that died)
 * wrote and committed but did not write back: the cluster at
 * cluster_guest_off lives at host_off.  Checked against the file. */
int image_adopt_cluster(struct image *img, uint64_t cluster_guest_off, uint64_t host_off);

/* For FILL_BACKING: the extents of the cluster's base content. */
int image_map_fill(struct image *img, const struct write_piece *p, struct extent_vec *out);

/* Encrypt len bytes at guest_off of a piece's buffer (no-op if unencrypted). */
int piece_encrypt(const struct write_piece *p, uint64_t guest_off, uint8_t *buf, uint64_t len);

/* Write one whole cluster compressed (offline conversion).  Only where the
 * cluster is unallocated; falls back to a normal write when it would not
 * shrink.  Synchronous. */
int image_write_compressed(struct image *img, uint64_t cluster_guest_off, const uint8_t *data);

/* ---- discarding: pieces ----------------------------------------------- */

/* A discard makes the whole clusters of its range read as zeros and gives
 * their space back where it can; parts of clusters keep their contents
 * (raw images have no clusters: all of the range reads as zeros). */
enum discard_kind {
    DISCARD_KEEP,               /* part of a cluster: left as it is */
    DISCARD_NOTHING,            /* a whole cluster that reads as zeros already */
    DISCARD_ZERO,               /* make host [host_off, +host_len) read as zeros (punch a hole) */
    DISCARD_REPLACE,            /* point the cluster at a fresh cluster (host_off) of zeros */
};

struct discard_piece {
    enum discard_kind kind;
    struct layer *layer;
    uint64_t guest_off;         /* guest bytes this piece covers */
    uint64_t len;
    uint64_t cluster_guest_off; /* REPLACE: the cluster */
    uint64_t host_off;          /* ZERO: first byte; REPLACE: the fresh cluster */
    uint64_t host_len;          /* ZERO */
    uint64_t old_entry;         /* REPLACE: what the L2 entry held */
    bool keep_blocks;           /* ZERO: the file is not sparse: zero, keep the space */
};

/* Plan the discard of [off, off+len) on the top layer, one piece per
 * cluster (one for raw), or of as much of it as one plan takes (a bounded
 * number of L2 tables' span): the pieces cover [off, off +
 * image_discard_planned()), and the rest is planned again from there.
 * REPLACE pieces reserve their cluster now.
 * -EOPNOTSUPP on an encrypted layer (a hole would decrypt to garbage). */
uint64_t image_discard_planned(const struct discard_piece *pieces, size_t n);
int image_plan_discard(struct image *img, uint64_t off, uint64_t len,
                       struct discard_piece **pieces, size_t *n, size_t *cap);

/* Do one piece: zero (synchronously) or record the new L2 entry; like a
 * write's, that reaches the disk at the next metadata writeback. */
int image_run_discard_piece(struct image *img, const struct discard_piece *p);

/* The discard unit of the top layer in bytes (its cluster size, 512 for
 * raw), or 0 when it cannot discard (encrypted). */
uint32_t image_discard_granularity(const struct image *img);

/* Plan and run a whole discard (offline); *discarded gets the guest bytes
 * that now read as zeros because of it. */
int image_discard(struct image *img, uint64_t off, uint64_t len, uint64_t *discarded);

/* ---- metadata the plans need ------------------------------------------ */

/* A plan needs an L2 table that is not cached.  By default the engine reads
 * it at once (pread) and goes on: the synchronous executor, the offline
 * tools and the worker's own synchronous operations (map, live commit,
 * resize) never see this.  While image_defer_meta(img, true) holds,
 * image_map(), image_map_fill(), image_plan_write() and image_plan_discard()
 * return IMAGE_NEED_META instead, having done nothing else (no space reserved, no
 * extent to use), and img->need says which table: the caller reads it (an
 * aligned buffer of need.len bytes), hands it to image_meta_loaded(), and
 * plans again.  The planning code is the same either way; only who reads
 * the table differs.  need.kind NEED_SPACE is the same for file space
 * (see "growing the file" below). */
#define IMAGE_NEED_META (-EINPROGRESS)

void image_defer_meta(struct image *img, bool defer);

/* The read of n's table ended with res (bytes, or -errno) into buf: check
 * and cache it, pinned (image_meta_unpin) so that it stays until the plans
 * that waited for it have run.  0 or -errno (with a message): a failed or
 * short read, or an L1 entry that changed meanwhile (nothing cached then,
 * nothing to unpin). */
int image_meta_loaded(struct image *img, const struct meta_need *n, const uint8_t *buf, long res);
void image_meta_unpin(const struct meta_need *n);

/* ---- growing the file ahead of its allocations -------------------------- */

/* Allocations take space at the end of the top layer's file.  Done inline,
 * the file grows a few MiB at a time (ftruncate; fallocate too on images
 * that are not sparse, up to a whole Xen extent).  In deferred mode the
 * plans only take space that is ready: a plan that would reserve beyond it
 * returns IMAGE_NEED_META with need.kind NEED_SPACE, having done nothing,
 * and the caller grows the file off its loop:
 *
 *   image_growth_next()  the growth to run now, if any: the window ahead
 *                        of the allocations runs low, or a plan waits;
 *   image_growth_run()   runs it: system calls on its descriptor only, so
 *                        any thread may, while the image serves requests;
 *   image_growth_done()  back on the image's thread: the space is ready.
 *
 * One growth at a time.  A crash leaves what was grown unreferenced:
 * leaked space, never garbage (nothing points there before it is written
 * and the metadata that points at it is flushed). */
struct image_growth {
    struct layer *layer;
    int fd;
    uint64_t from, to;          /* [from, to) becomes part of the file */
    bool physical;              /* with disk blocks (fallocate), else a hole */
    uint64_t generation;        /* of the layer's allocations, to spot a reset */
};

/* 1 and *g: run g now; 0: nothing to grow (or a growth runs already). */
int image_growth_next(struct image *img, struct image_growth *g);

/* 0 or -errno (errno of the failing call). */
int image_growth_run(const struct image_growth *g);

/* g ended with err.  0: what waited for space may plan again; -errno
 * (with a message) when it must fail. */
int image_growth_done(struct image *img, const struct image_growth *g, int err);

/* ---- metadata writeback ---------------------------------------------- */

struct meta_write {
    int fd;
    uint64_t off;
    uint8_t *buf;               /* owned by the writeback */
    size_t len;
};

struct meta_writeback {
    struct meta_write *phase1;  /* before the data flush: new L2 tables */
    size_t n1;
    struct meta_write *phase2;  /* after it: L2 updates, L1 entries, checksum */
    size_t n2;
    int fd;                     /* the file to flush */
    void *priv;
};

/* True when dirty metadata has piled up past the cache's comfort. */
bool image_meta_pressure(const struct image *img);

/* Snapshot dirty metadata into wb (empty for read-only or raw images). */
int image_meta_prepare(struct image *img, struct meta_writeback *wb);

/* The writeback ran (err 0) or failed (the metadata is marked dirty again).
 * Frees what wb holds. */
void image_meta_finish(struct image *img, struct meta_writeback *wb, int err);

/* A flush (fdatasync) of the image failed with err.  The kernel may have
 * dropped dirty data it could not write, and a later fdatasync would succeed
 * without writing it, so no later flush can vouch for the data that new L2
 * and L1 entries point at.  From now on the failure is sticky: every
 * image_meta_prepare(), image_flush() and image_write() fails with err (as
 * QEMU's file-posix does for flushes), and nothing more is published; the
 * file stays as the last good flush left it, with leaked clusters at worst.
 * Stricter than QEMU, this holds with O_DIRECT too: the file system's own
 * record of the clusters just written is made durable by the same flush. */
void image_flush_failed(struct image *img, int err);

/* ---- synchronous execution (sync_io.c) -------------------------------- */

/* Sector-aligned read/write through the plans above, with pread/pwrite. */
int image_read(struct image *img, void *buf, uint64_t len, uint64_t off);
int image_write(struct image *img, const void *buf, uint64_t len, uint64_t off);
/* Byte-granular helpers (read-modify-write of partial sectors). */
int image_pread(struct image *img, void *buf, uint64_t len, uint64_t off);
int image_pwrite(struct image *img, const void *buf, uint64_t len, uint64_t off);
/* Ordered metadata writeback and fdatasync. */
int image_flush(struct image *img);
/* Drop every allocation of the top layer (qcow: clear L1, truncate). */
int image_make_empty(struct image *img);

/* ---- whole-image operations ------------------------------------------ */

/* Set the virtual size of the top layer (resize.c).  new_size is a
 * multiple of 512.  Growing: what lies past the old end reads as zeros; a
 * qcow L1 table that needs more entries is written anew at the end of the
 * file and flushed before the header names it (a crash leaves the old size
 * or the new one).  Shrinking only with allow_shrink (offline: what lay
 * past the new end is dropped and leaked, see qcow_reclaim_leaks()).
 * Writes metadata back before and after; no I/O may run meanwhile.
 * -EPERM for a refused shrink, -ENOTSUP for images that cannot be resized
 * (blktap's Xen header, block devices). */
int image_resize(struct image *img, uint64_t new_size, bool allow_shrink);

/* Offline changes (alone.c): take QEMU's lock bytes on the file of img's
 * top layer (on fd), or fail with -EBUSY "in use: VERB it when it is not"
 * when qcowd or QEMU holds them.  Held until the image (fd) is closed. */
int image_lock_alone(struct image *img, const char *verb);
int file_lock_alone(int fd, const char *path, const char *verb);

/* True when a and b are the same file (device and inode). */
bool layer_same_file(const struct layer *a, const struct layer *b);

/* External snapshot (snapshot.c): make the empty file open on fd (path
 * names it) a qcow overlay of img's top layer, backing_name stored as
 * given, of the same size and cluster size (512-byte clusters over a raw
 * layer, so that a discard still zeroes every sector it covers), and serve
 * it as img's new top; the old top becomes read-only.  fd and direct_fd
 * (its O_DIRECT twin, or -1) are taken over, even on failure.  o: how the
 * chain was opened (direct, L2 cache).  A failure leaves img as it was (the
 * file may hold a header: the caller removes it).  Refused for an encrypted
 * top layer (-ENOTSUP) and a chain at its depth limit (-ELOOP). */
int image_snapshot(struct image *img, const char *path, const char *backing_name, int fd,
                   int direct_fd, const struct image_open_opts *o);
/* The same with an overlay someone else made (tap-ctl's flow: pause, make
 * the overlay, resume on it): it must name img's top as its backing file
 * (resolving to the path the top was opened by) and have its size; not
 * encrypted. */
int image_take_overlay(struct image *img, const char *path, int fd, int direct_fd,
                       const struct image_open_opts *o);

/* A live commit's base: img's top's backing layer opened again for
 * writing on fd (the same file; direct_fd its O_DIRECT twin or -1; both
 * taken over) in place of the read-only one, and *base a view of the chain
 * from there (free it with image_drop_top, or free() alone).  image.c */
int image_open_below(struct image *img, int fd, int direct_fd, const struct image_open_opts *o,
                     struct image **base);
/* The end of a live commit: base (from image_open_below, holding all of
 * the top's data, of its size) becomes img's top; the old top is
 * closed.  base is freed. */
int image_drop_top(struct image *img, struct image *base);

/* Commit (commit.c): copy what img's top layer holds in [off, off+len)
 * into base, the top's backing file opened for writing with its own chain
 * (at least as large).  *copied: the guest bytes copied. */
int image_commit_range(struct image *img, struct image *base, uint64_t off, uint64_t len,
                       uint64_t *copied);

struct image_commit_result {
    uint64_t copied;            /* guest bytes copied down */
    uint64_t base_old_size;     /* the base grows to the top's size if smaller */
    bool emptied;
};

/* All of it, as qemu-img commit does: the base grows to the top's size if
 * smaller, takes the top's clusters and is flushed; then, with empty, the
 * top is emptied (it reads through to the base). */
int image_commit(struct image *img, struct image *base, bool empty,
                 struct image_commit_result *res);

struct image_rebase_result {
    uint64_t copied;            /* guest bytes kept in the overlay */
};

/* Rebase (rebase.c): img's top layer names `name` (NULL: no backing file)
 * as its backing file.  Unless unsafe, every range the top leaves to its
 * chain whose contents next (the new chain, NULL for none) would change is
 * first copied into the top, so that it reads the same afterwards. */
int image_rebase(struct image *img, struct image *next, const char *name, bool unsafe,
                 struct image_rebase_result *res);

/* ---- creation (qcow_create.c) ----------------------------------------- */

enum prealloc_mode { PREALLOC_OFF = 0, PREALLOC_METADATA, PREALLOC_FULL };

struct qcow_create_opts {
    uint64_t size;              /* 0: take the backing file's size */
    unsigned cluster_bits;      /* 0: 12, or 9 with a backing file (QEMU's choice) */
    unsigned l2_bits;           /* 0: 9, or 12 with a backing file */
    const char *backing_file;   /* stored as given */
    enum image_format backing_format; /* for probing its size; AUTO probes */
    const uint8_t *key;         /* AES password, or NULL */
    size_t key_len;
    bool xen_header;            /* write the Xen extension header */
    bool xen_sparse;            /* its sparse flag (default on) */
    bool xen_extent_alloc;      /* min_cluster_alloc = L2 entries */
    enum prealloc_mode prealloc;
};

int qcow_create(const char *path, const struct qcow_create_opts *opts);
/* The same on an empty file already open for writing (fd stays the
 * caller's): a plain image, size given, no preallocation, key or Xen header. */
int qcow_create_on_fd(int fd, const char *path, const struct qcow_create_opts *opts);

int raw_create(const char *path, uint64_t size, enum prealloc_mode prealloc);

#endif
