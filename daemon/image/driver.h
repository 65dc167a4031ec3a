/* The driver interface behind a layer (engine-internal). */
#ifndef QCOWD_DRIVER_H
#define QCOWD_DRIVER_H

#include "image.h"

struct layer_ops {
    enum image_format format;
    /* fd/meta_fd/path/read_only are set; read and validate the file. */
    int (*open)(struct layer *l, const struct image_open_opts *o);
    void (*close)(struct layer *l);
    /* First extent at off within this layer (len <= requested). */
    int (*map)(struct layer *l, uint64_t off, uint64_t len, struct extent *e, bool *allocated);
    /* First write piece at off (len <= requested). */
    int (*plan_write)(struct layer *l, uint64_t off, uint64_t len, struct write_piece *p);
    int (*commit_write)(struct layer *l, const struct write_piece *p);
    /* Unpin the table a deferred plan pinned for p (p->pinned). */
    void (*end_write)(struct layer *l, const struct write_piece *p);
    /* Take over an allocation a previous process wrote the data of. */
    int (*adopt_cluster)(struct layer *l, uint64_t cluster_guest_off, uint64_t host_off);
    int (*write_compressed)(struct layer *l, uint64_t cluster_guest_off, const uint8_t *data);
    /* First discard piece at off (len <= requested); NULL: cannot discard. */
    int (*plan_discard)(struct layer *l, uint64_t off, uint64_t len, struct discard_piece *p);
    int (*commit_discard)(struct layer *l, const struct discard_piece *p);
    uint32_t (*discard_granularity)(const struct layer *l);
    int (*meta_prepare)(struct layer *l, struct meta_writeback *wb);
    void (*meta_finish)(struct layer *l, struct meta_writeback *wb, int err);
    bool (*meta_pressure)(const struct layer *l);
    int (*make_empty)(struct layer *l);
    /* Set the virtual size (resize.c says when; metadata written back). */
    int (*resize)(struct layer *l, uint64_t new_size);
    /* Name another backing file (NULL: none) in the header, flushed. */
    int (*set_backing)(struct layer *l, const char *name);
    void (*info)(const struct layer *l, struct layer_info *info);
    int (*decrypt)(struct layer *l, uint64_t first_sector, uint8_t *buf, uint64_t len);
    int (*encrypt)(struct layer *l, uint64_t first_sector, uint8_t *buf, uint64_t len);
    int (*inflate)(struct layer *l, const struct extent *e, const uint8_t *stream, uint8_t *out);
    /* Deferred metadata (image_defer_meta); NULL for drivers without any.
     * need_tables: IMAGE_NEED_META (and *l->need) for the first table that
     * [off, off+len) needs and the cache does not hold, else 0. */
    int (*need_tables)(struct layer *l, uint64_t off, uint64_t len);
    int (*meta_loaded)(struct layer *l, const struct meta_need *n, const uint8_t *buf, long res);
    void (*meta_unpin)(struct layer *l, const struct meta_need *n);
    /* Deferred mode, tables cached: IMAGE_NEED_META (NEED_SPACE) when a
     * plan of [off, off+len) could reserve space that is not ready, else 0.
     * NULL for drivers that never allocate. */
    int (*need_space)(struct layer *l, uint64_t off, uint64_t len, bool discard);
    int (*growth_next)(struct layer *l, struct image_growth *g);
    int (*growth_done)(struct layer *l, const struct image_growth *g, int err);
};

struct layer {
    const struct layer_ops *ops;
    char *path;
    int fd;                     /* data I/O (O_DIRECT when asked and possible) */
    int meta_fd;                /* metadata and synchronous I/O (buffered) */
    bool read_only;
    bool direct;
    bool probed;                /* its format was probed, not given */
    uint64_t size;              /* virtual size */
    uint64_t file_size;         /* size of the file (or block device) when opened */
    bool block_device;
    char *backing_name;         /* as stored, NULL if none */
    struct layer *backing;
    struct meta_need *need;     /* deferred mode: where to say what is needed */
    void *priv;
};

extern const struct layer_ops qcow_ops;
extern const struct layer_ops raw_ops;

/* Serve the layer opened on fd (and direct_fd, its O_DIRECT twin, or -1;
 * both taken over) as img's top, over the current one, which becomes
 * read-only (image.c). */
int image_push_top(struct image *img, const char *path, int fd, int direct_fd,
                   const struct image_open_opts *o);

/* image_resize() without its fault point, for operations that resize as
 * one of their steps (resize.c). */
int image_set_size(struct image *img, uint64_t new_size, bool allow_shrink);

/* Helpers for drivers. */
int extent_vec_push(struct extent_vec *ev, const struct extent *e);

#endif
