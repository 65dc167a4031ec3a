/*
 * qcowring.h - the qcowd shared-memory ring ABI, version 1.2.
 *
 * This is the one public, versioned description of the memory shared between
 * a qcowd worker (the "server", Xen's "back end") and a client (Xen's "front
 * end").  The request ring is binary-compatible with Xen's blkif protocol on
 * x86-64 (xen/io/ring.h + xen/io/blkif.h): a client written against Xen's
 * public headers can drive a qcowd ring unchanged, with two substitutions:
 *
 *   - where Xen has a grant reference, qcowd has the index of a 4 KiB page in
 *     the ring's data area (field "page" below, Xen's "gref");
 *   - where Xen has an event channel, qcowd has an eventfd.
 *
 * This header needs no Xen header.  All structures have explicit padding, so
 * their layout is the same on every ABI where uint64_t is 4- or 8-byte
 * aligned (x86-64 and i386 included); _Static_assert pins every size and
 * offset.  All integers are in host byte order (both peers run on one host).
 *
 * Memory layout of the shared memfd (offsets in bytes):
 *
 *     0                      the qcowd page (struct qcowring_info), 4 KiB
 *     4096                   the shared ring, 4096 << ring_page_order bytes
 *     4096 + ring bytes      the data area: data_pages pages of 4 KiB
 *
 * The complete specification, including the rules the server enforces
 * against an untrusted client, is doc/ring.md.
 */
#ifndef QCOWRING_H
#define QCOWRING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define QCOWRING_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define QCOWRING_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ------------------------------------------------------------------------ */
/* Versioning                                                               */
/* ------------------------------------------------------------------------ */

/* A client refuses a ring whose major version differs from the one it was
 * built for.  Minor versions only add: new feature bits, new fields in the
 * reserved tail of the qcowd page.  A client ignores what it does not know. */
#define QCOWRING_VERSION_MAJOR 1
#define QCOWRING_VERSION_MINOR 2

/* The 8 bytes at offset 0 of the memfd: ASCII "QCOWRING", no terminator. */
#define QCOWRING_MAGIC "QCOWRING"
#define QCOWRING_MAGIC_LEN 8

/* ------------------------------------------------------------------------ */
/* Fixed sizes                                                              */
/* ------------------------------------------------------------------------ */

#define QCOWRING_PAGE_SIZE 4096u        /* ring and data page size */
#define QCOWRING_PAGE_SHIFT 12
#define QCOWRING_SECTOR_SIZE 512u       /* unit of sector_number & co */
#define QCOWRING_SECTOR_SHIFT 9
#define QCOWRING_SECTORS_PER_PAGE 8u    /* first_sect/last_sect are 0..7 */

/* Offset of the shared ring in the memfd: right after the qcowd page. */
#define QCOWRING_RING_OFFSET QCOWRING_PAGE_SIZE
/* Largest ring page order this ABI version allows (256 pages, 8192 slots). */
#define QCOWRING_MAX_RING_PAGE_ORDER 8u

/* Direct segments in one read/write request (Xen's
 * BLKIF_MAX_SEGMENTS_PER_REQUEST). */
#define QCOWRING_MAX_SEGMENTS 11u
/* Indirect page references in one indirect request (Xen's
 * BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST). */
#define QCOWRING_MAX_INDIRECT_PAGES 8u
/* Segment descriptors in one indirect page: 4096 / 8. */
#define QCOWRING_SEGMENTS_PER_INDIRECT_PAGE 512u
/* Upper bound of qcowring_info.max_indirect_segments. */
#define QCOWRING_MAX_INDIRECT_SEGMENTS \
    (QCOWRING_MAX_INDIRECT_PAGES * QCOWRING_SEGMENTS_PER_INDIRECT_PAGE)

/* ------------------------------------------------------------------------ */
/* Operations and statuses (same numbers as Xen's BLKIF_OP_* / BLKIF_RSP_*) */
/* ------------------------------------------------------------------------ */

#define QCOWRING_OP_READ 0            /* read into the segments' pages */
#define QCOWRING_OP_WRITE 1           /* write from the segments' pages */
#define QCOWRING_OP_WRITE_BARRIER 2   /* ordered write + flush (0..11 segs) */
#define QCOWRING_OP_FLUSH_DISKCACHE 3 /* flush (+ optional write, 0..11 segs) */
#define QCOWRING_OP_RESERVED_1 4      /* never valid */
#define QCOWRING_OP_DISCARD 5         /* struct qcowring_request_discard */
#define QCOWRING_OP_INDIRECT 6        /* struct qcowring_request_indirect */
/* qcowd's own operations take codes from 128 up, far from Xen's. */
#define QCOWRING_OP_MAP 128           /* struct qcowring_request_map (F_MAP) */

#define QCOWRING_RSP_OKAY 0           /* done */
#define QCOWRING_RSP_ERROR (-1)       /* failed or malformed request */
#define QCOWRING_RSP_EOPNOTSUPP (-2)  /* operation unknown or not offered */

/* Bits of qcowring_request_discard.flag. */
#define QCOWRING_DISCARD_SECURE 0x01  /* honoured only with F_DISCARD_SECURE */

/* ------------------------------------------------------------------------ */
/* Feature bits (qcowring_info.features), set by the server                 */
/* ------------------------------------------------------------------------ */

#define QCOWRING_F_READ_ONLY (1ull << 0)   /* writes and discards fail */
#define QCOWRING_F_FLUSH (1ull << 1)       /* FLUSH_DISKCACHE accepted */
#define QCOWRING_F_BARRIER (1ull << 2)     /* WRITE_BARRIER accepted */
#define QCOWRING_F_DISCARD (1ull << 3)     /* DISCARD accepted */
#define QCOWRING_F_INDIRECT (1ull << 4)    /* INDIRECT accepted */
#define QCOWRING_F_PERSISTENT (1ull << 5)  /* data pages stay mapped (always) */
#define QCOWRING_F_DISCARD_SECURE (1ull << 6) /* DISCARD_SECURE honoured */
#define QCOWRING_F_MAP (1ull << 7)         /* MAP accepted (minor 1) */
#define QCOWRING_F_DISCARD_ZEROES (1ull << 8) /* discarded sectors read zeros (minor 1) */
#define QCOWRING_F_RESIZE (1ull << 9)      /* capacity_sectors may grow (minor 2) */

/* ------------------------------------------------------------------------ */
/* Server state (qcowring_info.server_state)                                */
/* ------------------------------------------------------------------------ */

#define QCOWRING_STATE_RUNNING 0   /* the server serves the ring */
#define QCOWRING_STATE_BROKEN 1    /* the client broke the protocol: stopped */
#define QCOWRING_STATE_SHUTDOWN 2  /* the server stopped serving this ring */

/* ------------------------------------------------------------------------ */
/* The qcowd page: offset 0 of the memfd, 4096 bytes                        */
/* ------------------------------------------------------------------------ */

/*
 * Written once by whoever creates the ring, before any client sees it; from
 * then on only server_state changes, and with F_RESIZE capacity_sectors,
 * which only ever grows (both written by the server only, with release
 * ordering: read them with acquire ordering).  The
 * server never reads this page back: it keeps its own trusted copy of the
 * geometry.  A client validates every field before using any of them.
 */
struct qcowring_info {
    uint8_t magic[QCOWRING_MAGIC_LEN]; /* @0  "QCOWRING" */
    uint16_t version_major;            /* @8  QCOWRING_VERSION_MAJOR */
    uint16_t version_minor;            /* @10 QCOWRING_VERSION_MINOR */
    uint32_t info_size;                /* @12 bytes of this structure that
                                        *     the creator filled (>= 128) */
    uint32_t page_size;                /* @16 4096 */
    uint32_t ring_page_order;          /* @20 ring = 4096 << order bytes */
    uint64_t ring_offset;              /* @24 4096 */
    uint32_t ring_entries;             /* @32 slots: qcowring_ring_entries() */
    uint32_t sector_size;              /* @36 512 */
    uint64_t capacity_sectors;         /* @40 disk size in 512-byte sectors;
                                        *     grows while served with F_RESIZE */
    uint64_t features;                 /* @48 QCOWRING_F_* */
    uint64_t data_offset;              /* @56 memfd offset of data page 0 */
    uint64_t data_pages;               /* @64 number of 4 KiB data pages */
    uint32_t max_indirect_segments;    /* @72 0, or 12..4096 with F_INDIRECT */
    uint32_t discard_granularity;      /* @76 bytes, 0 = 512 */
    uint32_t discard_alignment;        /* @80 bytes */
    uint32_t server_state;             /* @84 QCOWRING_STATE_*, server-written,
                                        *     read with acquire ordering */
    uint64_t total_size;               /* @88 data_offset + data_pages*4096:
                                        *     the memfd's size */
    uint8_t reserved[32];              /* @96 zero; later minor versions */
};                                     /* 128 bytes; the rest of the page is
                                        * zero and reserved */

QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, magic) == 0, "magic@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, version_major) == 8, "version_major@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, version_minor) == 10, "version_minor@10");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, info_size) == 12, "info_size@12");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, page_size) == 16, "page_size@16");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, ring_page_order) == 20, "ring_page_order@20");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, ring_offset) == 24, "ring_offset@24");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, ring_entries) == 32, "ring_entries@32");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, sector_size) == 36, "sector_size@36");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, capacity_sectors) == 40, "capacity_sectors@40");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, features) == 48, "features@48");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, data_offset) == 56, "data_offset@56");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, data_pages) == 64, "data_pages@64");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, max_indirect_segments) == 72, "max_indirect_segments@72");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, discard_granularity) == 76, "discard_granularity@76");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, discard_alignment) == 80, "discard_alignment@80");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, server_state) == 84, "server_state@84");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, total_size) == 88, "total_size@88");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_info, reserved) == 96, "reserved@96");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_info) == 128, "qcowring_info is 128 bytes");

/* ------------------------------------------------------------------------ */
/* Requests and responses (Xen blkif layout)                                */
/* ------------------------------------------------------------------------ */

/* One segment: sectors first_sect..last_sect (inclusive, 0..7) of one data
 * page.  Xen's struct blkif_request_segment, "gref" being "page". */
struct qcowring_segment {
    uint32_t page;       /* @0 index of a page in the data area (Xen gref) */
    uint8_t first_sect;  /* @4 first 512-byte sector of the page used */
    uint8_t last_sect;   /* @5 last sector used (inclusive), >= first_sect */
    uint16_t pad;        /* @6 zero */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_segment, page) == 0, "seg.page@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_segment, first_sect) == 4, "seg.first_sect@4");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_segment, last_sect) == 5, "seg.last_sect@5");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_segment) == 8, "segment is 8 bytes");

/* READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE (Xen's struct blkif_request).
 * The data is the concatenation of the segments, in order, and lands at
 * sector_number * 512 of the disk. */
struct qcowring_request {
    uint8_t operation;    /* @0 QCOWRING_OP_* */
    uint8_t nr_segments;  /* @1 1..11 for READ/WRITE, 0..11 for FLUSH and
                           *    WRITE_BARRIER */
    uint16_t handle;      /* @2 Xen's virtual device; ignored, write 0 */
    uint32_t pad0;        /* @4 zero (implicit padding on x86-64 Xen) */
    uint64_t id;          /* @8 client's value, echoed in the response */
    uint64_t sector_number; /* @16 first disk sector (512 bytes) */
    struct qcowring_segment seg[QCOWRING_MAX_SEGMENTS]; /* @24 */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request, operation) == 0, "req.operation@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request, nr_segments) == 1, "req.nr_segments@1");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request, handle) == 2, "req.handle@2");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request, id) == 8, "req.id@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request, sector_number) == 16, "req.sector_number@16");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request, seg) == 24, "req.seg@24");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_request) == 112, "request is 112 bytes");

/* DISCARD (Xen's struct blkif_request_discard). */
struct qcowring_request_discard {
    uint8_t operation;    /* @0 QCOWRING_OP_DISCARD */
    uint8_t flag;         /* @1 0 or QCOWRING_DISCARD_SECURE */
    uint16_t handle;      /* @2 ignored */
    uint32_t pad0;        /* @4 zero */
    uint64_t id;          /* @8 echoed */
    uint64_t sector_number; /* @16 first sector to discard */
    uint64_t nr_sectors;  /* @24 sectors to discard, >= 1 */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_discard, operation) == 0, "discard.operation@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_discard, flag) == 1, "discard.flag@1");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_discard, handle) == 2, "discard.handle@2");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_discard, id) == 8, "discard.id@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_discard, sector_number) == 16, "discard.sector_number@16");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_discard, nr_sectors) == 24, "discard.nr_sectors@24");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_request_discard) == 32, "discard request is 32 bytes");

/* INDIRECT (Xen's struct blkif_request_indirect): the segment descriptors
 * (struct qcowring_segment) live in ceil(nr_segments / 512) data pages named
 * by indirect_pages[]; segment i is entry i % 512 of indirect page i / 512. */
struct qcowring_request_indirect {
    uint8_t operation;    /* @0 QCOWRING_OP_INDIRECT */
    uint8_t indirect_op;  /* @1 QCOWRING_OP_READ or QCOWRING_OP_WRITE */
    uint16_t nr_segments; /* @2 1..max_indirect_segments */
    uint32_t pad0;        /* @4 zero */
    uint64_t id;          /* @8 echoed */
    uint64_t sector_number; /* @16 first disk sector */
    uint16_t handle;      /* @24 ignored */
    uint16_t pad1;        /* @26 zero */
    uint32_t indirect_pages[QCOWRING_MAX_INDIRECT_PAGES]; /* @28 Xen grefs */
    uint32_t pad2;        /* @60 zero */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, operation) == 0, "indirect.operation@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, indirect_op) == 1, "indirect.indirect_op@1");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, nr_segments) == 2, "indirect.nr_segments@2");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, id) == 8, "indirect.id@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, sector_number) == 16, "indirect.sector_number@16");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, handle) == 24, "indirect.handle@24");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_indirect, indirect_pages) == 28, "indirect.indirect_pages@28");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_request_indirect) == 64, "indirect request is 64 bytes");

/* Xen's struct blkif_response. */
struct qcowring_response {
    uint64_t id;          /* @0 the request's id */
    uint8_t operation;    /* @8 the request's operation (indirect_op for an
                           *    indirect request) */
    uint8_t pad0;         /* @9 zero */
    int16_t status;       /* @10 QCOWRING_RSP_* */
    uint32_t pad1;        /* @12 zero */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_response, id) == 0, "rsp.id@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_response, operation) == 8, "rsp.operation@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_response, status) == 10, "rsp.status@10");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_response) == 16, "response is 16 bytes");

/* MAP (a qcowd extension, with F_MAP): how sectors [sector_number,
 * sector_number + nr_sectors) are allocated.  The server writes the answer
 * (struct qcowring_map_reply, then its extents) into nr_pages data pages
 * starting at page, which the request owns like a read buffer. */
struct qcowring_request_map {
    uint8_t operation;    /* @0 QCOWRING_OP_MAP */
    uint8_t flag;         /* @1 zero */
    uint16_t handle;      /* @2 ignored */
    uint32_t pad0;        /* @4 zero */
    uint64_t id;          /* @8 echoed */
    uint64_t sector_number; /* @16 first sector asked about */
    uint64_t nr_sectors;  /* @24 >= 1 */
    uint32_t page;        /* @32 first data page of the answer */
    uint32_t nr_pages;    /* @36 1..QCOWRING_MAP_MAX_PAGES, contiguous */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, operation) == 0, "map.operation@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, flag) == 1, "map.flag@1");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, id) == 8, "map.id@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, sector_number) == 16, "map.sector_number@16");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, nr_sectors) == 24, "map.nr_sectors@24");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, page) == 32, "map.page@32");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_request_map, nr_pages) == 36, "map.nr_pages@36");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_request_map) == 40, "map request is 40 bytes");

#define QCOWRING_MAP_MAX_PAGES 16u

/* The answer to MAP, at the start of its first page: nr_extents extents
 * follow, contiguous from sector_number, covering nr_sectors in all
 * (1 <= nr_sectors <= the sectors asked; fewer when the pages filled up:
 * ask again from where the answer ends). */
struct qcowring_map_reply {
    uint32_t nr_extents;  /* @0 >= 1 */
    uint32_t pad0;        /* @4 zero */
    uint64_t nr_sectors;  /* @8 sectors the extents cover */
};
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_map_reply) == 16, "map reply is 16 bytes");

struct qcowring_map_extent {
    uint64_t nr_sectors;  /* @0 >= 1 */
    uint32_t flags;       /* @8 QCOWRING_MAP_* */
    uint32_t pad0;        /* @12 zero */
};
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_map_extent) == 16, "map extent is 16 bytes");

#define QCOWRING_MAP_HOLE 0x1   /* no layer of the image allocates it */
#define QCOWRING_MAP_ZERO 0x2   /* it reads as zeros */

/* One ring slot holds a request or, once consumed, a response. */
union qcowring_entry {
    struct qcowring_request req;
    struct qcowring_request_discard discard;
    struct qcowring_request_indirect indirect;
    struct qcowring_request_map map;
    struct qcowring_response rsp;
};
QCOWRING_STATIC_ASSERT(sizeof(union qcowring_entry) == 112, "ring entry is 112 bytes");

/* ------------------------------------------------------------------------ */
/* The shared ring (Xen's struct blkif_sring)                               */
/* ------------------------------------------------------------------------ */

/*
 * All four indices are free-running u32 counters (they wrap at 2^32); slot
 * of index i is ring[i & (entries - 1)].  Each has exactly one writer:
 *   req_prod   client: requests [0, req_prod) are published
 *   req_event  server: "notify me when req_prod passes req_event - 1"
 *   rsp_prod   server: responses [0, rsp_prod) are published
 *   rsp_event  client: "notify me when rsp_prod passes rsp_event - 1"
 */
struct qcowring_sring {
    uint32_t req_prod;    /* @0 */
    uint32_t req_event;   /* @4 */
    uint32_t rsp_prod;    /* @8 */
    uint32_t rsp_event;   /* @12 */
    uint8_t pad[48];      /* @16 zero (Xen's pvt + __pad) */
    union qcowring_entry ring[]; /* @64 */
};
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_sring, req_prod) == 0, "req_prod@0");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_sring, req_event) == 4, "req_event@4");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_sring, rsp_prod) == 8, "rsp_prod@8");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_sring, rsp_event) == 12, "rsp_event@12");
QCOWRING_STATIC_ASSERT(offsetof(struct qcowring_sring, ring) == 64, "entries@64");
QCOWRING_STATIC_ASSERT(sizeof(struct qcowring_sring) == 64, "ring header is 64 bytes");

/* ------------------------------------------------------------------------ */
/* Geometry                                                                 */
/* ------------------------------------------------------------------------ */

/* Bytes of the shared ring for a page order (order <= MAX_RING_PAGE_ORDER). */
static inline uint64_t qcowring_ring_bytes(uint32_t ring_page_order)
{
    return (uint64_t)QCOWRING_PAGE_SIZE << ring_page_order;
}

/* Slots in a ring of ring_bytes bytes: the largest power of two not above
 * (ring_bytes - 64) / 112 (Xen's __RING_SIZE).  32 for one 4 KiB page. */
static inline uint32_t qcowring_entries_for_bytes(uint64_t ring_bytes)
{
    uint64_t fit, entries = 1;

    if (ring_bytes < sizeof(struct qcowring_sring) + sizeof(union qcowring_entry))
        return 0;
    fit = (ring_bytes - sizeof(struct qcowring_sring)) / sizeof(union qcowring_entry);
    while (entries * 2 <= fit && entries < (1ull << 31))
        entries *= 2;
    return (uint32_t)entries;
}

/* Slots for a ring page order: 32 << order. */
static inline uint32_t qcowring_ring_entries(uint32_t ring_page_order)
{
    return qcowring_entries_for_bytes(qcowring_ring_bytes(ring_page_order));
}

/* memfd offset of the data area for a ring page order. */
static inline uint64_t qcowring_data_offset(uint32_t ring_page_order)
{
    return QCOWRING_RING_OFFSET + qcowring_ring_bytes(ring_page_order);
}

/* Size of the whole memfd for a ring page order and a data page count. */
static inline uint64_t qcowring_total_size(uint32_t ring_page_order, uint64_t data_pages)
{
    return qcowring_data_offset(ring_page_order) + data_pages * QCOWRING_PAGE_SIZE;
}

/* Largest capacity whose size in bytes fits in a uint64_t. */
#define QCOWRING_MAX_CAPACITY_SECTORS (UINT64_MAX >> QCOWRING_SECTOR_SHIFT)

/* ------------------------------------------------------------------------ */
/* Index ordering and event-index notification suppression                  */
/* ------------------------------------------------------------------------ */

/*
 * Memory-ordering rules (the GCC/Clang __atomic builtins used here are the
 * C11 <stdatomic.h> orders on plain uint32_t fields):
 *   - a producer writes its entries, then release-stores its prod index;
 *   - a consumer acquire-loads the peer's prod index once, then reads the
 *     entries below it;
 *   - between publishing an index (or an event index) and reading the peer's
 *     event index (or prod index) there is a full sequentially consistent
 *     fence: acquire/release cannot order a store before a later load.
 */
static inline uint32_t qcowring_load_acquire(const uint32_t *shared)
{
    return __atomic_load_n(shared, __ATOMIC_ACQUIRE);
}

static inline uint32_t qcowring_load_relaxed(const uint32_t *shared)
{
    return __atomic_load_n(shared, __ATOMIC_RELAXED);
}

static inline void qcowring_store_release(uint32_t *shared, uint32_t value)
{
    __atomic_store_n(shared, value, __ATOMIC_RELEASE);
}

static inline void qcowring_full_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Does moving a producer index from old_prod to new_prod cross the peer's
 * event index, i.e. event in (old_prod, new_prod] in u32 arithmetic? */
static inline int qcowring_event_crossed(uint32_t old_prod, uint32_t new_prod,
                                         uint32_t event)
{
    return (uint32_t)(new_prod - event) < (uint32_t)(new_prod - old_prod);
}

/* Publish new_prod in *shared_prod (the producer's index, last published
 * value old_prod, kept privately by the producer) and return non-zero when
 * the peer asked to be woken, i.e. its event index lies in (old, new]. */
static inline int qcowring_publish_and_check_notify(uint32_t *shared_prod,
                                                    const uint32_t *peer_event,
                                                    uint32_t old_prod,
                                                    uint32_t new_prod)
{
    qcowring_store_release(shared_prod, new_prod);
    qcowring_full_fence();
    return qcowring_event_crossed(old_prod, new_prod,
                                  qcowring_load_relaxed(peer_event));
}

/* Client: publish requests [old, new) (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY). */
static inline int qcowring_push_requests_and_check_notify(struct qcowring_sring *s,
                                                          uint32_t old_req_prod,
                                                          uint32_t new_req_prod)
{
    return qcowring_publish_and_check_notify(&s->req_prod, &s->req_event,
                                             old_req_prod, new_req_prod);
}

/* Server: publish responses [old, new) (RING_PUSH_RESPONSES_AND_CHECK_NOTIFY). */
static inline int qcowring_push_responses_and_check_notify(struct qcowring_sring *s,
                                                           uint32_t old_rsp_prod,
                                                           uint32_t new_rsp_prod)
{
    return qcowring_publish_and_check_notify(&s->rsp_prod, &s->rsp_event,
                                             old_rsp_prod, new_rsp_prod);
}

/* Final check before sleeping: non-zero if the peer's producer index differs
 * from my consumer index.  Otherwise ask to be woken by the next entry
 * (my event = consumer + 1), full fence, and look once more: this closes the
 * window where the peer published just before seeing the new event index. */
static inline int qcowring_final_check(const uint32_t *peer_prod, uint32_t *my_event,
                                       uint32_t my_consumer)
{
    if (qcowring_load_acquire(peer_prod) != my_consumer)
        return 1;
    __atomic_store_n(my_event, my_consumer + 1, __ATOMIC_RELAXED);
    qcowring_full_fence();
    return qcowring_load_acquire(peer_prod) != my_consumer;
}

/* Client (RING_FINAL_CHECK_FOR_RESPONSES). */
static inline int qcowring_final_check_for_responses(struct qcowring_sring *s,
                                                     uint32_t rsp_cons)
{
    return qcowring_final_check(&s->rsp_prod, &s->rsp_event, rsp_cons);
}

/* Server (RING_FINAL_CHECK_FOR_REQUESTS). */
static inline int qcowring_final_check_for_requests(struct qcowring_sring *s,
                                                    uint32_t req_cons)
{
    return qcowring_final_check(&s->req_prod, &s->req_event, req_cons);
}

/* SHARED_RING_INIT: both producers 0, both event indices 1, padding zero.
 * In Xen the front end does this; in qcowd the ring's creator (server side)
 * does it before any client exists. */
static inline void qcowring_sring_init(struct qcowring_sring *s)
{
    unsigned i;

    s->req_prod = 0;
    s->rsp_prod = 0;
    s->req_event = 1;
    s->rsp_event = 1;
    for (i = 0; i < sizeof(s->pad); i++)
        s->pad[i] = 0;
}

/* ------------------------------------------------------------------------ */
/* Client presence                                                          */
/* ------------------------------------------------------------------------ */

/* qcowd opens the memfd anew for each client (doc/protocol.md, "connect")
 * and takes an open file description read lock (F_OFD_SETLK, F_RDLCK) on
 * these bytes of it before handing it over: the lock is that client's
 * alone and lasts as long as the client keeps the descriptor or a mapping
 * of the ring.  A qcowd that adopted the worker after a restart tests the
 * lock to tell whether the previous qcowd's client is still there.  Only a
 * lock: the bytes are the qcowd page, which the client never writes.  (A
 * client that asks with "hold-lock": true takes the same lock itself, for
 * an older qcowd that did not; on a newer one that changes nothing.) */
#define QCOWRING_CLIENT_LOCK_START 0
#define QCOWRING_CLIENT_LOCK_LEN 1

#ifdef __cplusplus
}
#endif

#endif /* QCOWRING_H */
