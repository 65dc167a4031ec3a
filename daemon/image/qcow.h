/* The qcow v1 driver's private state (engine-internal; qcowctl's check and
 * info use the format helpers in qcow_format.h instead). */
#ifndef QCOWD_QCOW_H
#define QCOWD_QCOW_H

#include "crypt.h"
#include "driver.h"
#include "l2cache.h"
#include "qcow_format.h"

struct qcow_layer {
    struct qcow_header h;
    struct qcow_xen_header xen;
    bool xen_honoured;          /* blktap reads the extension (no backing file) */
    bool xen_checksum_ok;       /* its checksum matched when the image was opened */
    bool xen_maintained;        /* so it is kept right at every writeback */
    bool l1_little_endian;      /* an old blktap image, until converted */
    uint64_t l1_area_bytes;     /* bytes of the file given to the L1 table */
    bool extent_alloc;          /* Xen: each new L2 table comes with all its clusters */
    bool sparse;                /* false: allocate file space for new clusters */
    struct qcow_geometry g;
    uint64_t *l1;               /* in memory, host order; may point at fresh tables */
    uint64_t *l1_disk;          /* what the file's L1 holds */
    struct qcow_layout lay;     /* the front, and the pieces detached from it */
    uint8_t *front;             /* the sectors that hold the L1 table, as on disk: with
                                 * the L1 in the front, the file's first front_len bytes
                                 * (header, backing name and L1, not a long L1's zeros) */
    uint64_t front_off;         /* where they start: 0, or a detached L1's first sector */
    size_t front_len;
    uint64_t alloc_end;         /* next free byte at the end of the file */
    uint64_t file_extent;       /* the file's size: kept ahead of alloc_end */
    uint64_t prealloc_end;      /* not sparse: [alloc_end, prealloc_end) has its blocks */
    uint64_t growth_to;         /* a growth in flight makes the file this long; 0: none */
    uint64_t space_wanted;      /* a plan waits for the file ready up to here */
    bool growth_minimal;        /* the last growth failed: ask for no more than needed */
    uint64_t generation;        /* of the allocations: a reset voids growths in flight */
    struct l2_cache cache;
    struct qcow_crypt *crypt;
    uint8_t *zcluster;          /* last inflated cluster */
    uint64_t zcluster_entry;    /* its L2 entry; 0 = none */
};

/* (Re)read the sectors that hold the L1 table (qcow.c). */
int qcow_load_front(struct layer *l, struct qcow_layer *q);

/* The end of the last piece of metadata at the front or detached from it. */
uint64_t qcow_metadata_end(const struct qcow_layer *q);

/* Reserve len bytes at the end of the file, aligned to align. */
uint64_t qcow_reserve(struct layer *l, struct qcow_layer *q, uint64_t len, uint64_t align);

/* Clear the L2 entries from the cluster at guest_off (cluster aligned) to
 * the end of its table (they reach the disk at the next writeback). */
int qcow_clear_entries_from(struct layer *l, uint64_t guest_off);

/* Change the header's size (qcow_resize.c): the layer op. */
int qcow_resize(struct layer *l, uint64_t new_size);

/* Sector 0 rewritten (qcow_resize.c): the header h, and len bytes at off
 * (off + len <= 512), the rest as it is; whole and through the data
 * descriptor (see qcow_load_front).  Not flushed. */
int qcow_write_first_sector(struct layer *l, struct qcow_layer *q, const struct qcow_header *h,
                            const void *bytes, size_t off, size_t len);

/* fdatasync the layer's file, with a message on failure. */
int qcow_sync(struct layer *l);

/* The end of the front without the L1 table: header, Xen extension and a
 * backing name that lies in the front. */
uint64_t qcow_rest_of_front(const struct qcow_layer *q);

/* [start, end) held a piece of metadata nothing names any more (an old L1
 * table, an old backing name): its whole sectors become a hole, the ones it
 * shares are zeroed in its part; at the end of the file, it is cut off when
 * the layer closes.  Best effort: what stays is leaked space. */
void qcow_release_area(struct layer *l, struct qcow_layer *q, uint64_t start, uint64_t end);

/* Name another backing file in the header (qcow_backing.c): the layer op. */
int qcow_set_backing(struct layer *l, const char *name);

/* Allocate the L2 table of one L1 entry (and, for PREALLOC_FULL, all its
 * clusters) in a new, empty image.  Used by qcow_create. */
int qcow_preallocate_span(struct layer *l, uint64_t l1_index, enum prealloc_mode mode);

#endif
