/* nbdkit-qcowd-plugin: serve an image attached to qcowd over NBD.
 *
 *     nbdkit qcowd name=NAME [socket=PATH] [retry=SECONDS]
 *
 * The plugin takes the image's ring from qcowd (libqcowring) once, and
 * every NBD connection of the nbdkit process shares it: NBD requests run in
 * parallel through the ring (ring_conn.c).  See nbdkit-qcowd-plugin(1). */
#include "config.h"

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring_conn.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#define DEFAULT_RETRY_S 60
#define MAX_RETRY_S 3600
#define DEFAULT_SPIN_US 0
#define MAX_SPIN_US 1000
#define EXTENTS_PER_MAP 256
/* Map requests per extents call: an answer may cover less than asked. */
#define MAPS_PER_EXTENTS 16

static const char *image_name;
static const char *socket_path;
static unsigned retry_s = DEFAULT_RETRY_S;
static unsigned spin_us = DEFAULT_SPIN_US;
static struct ring_conn conn;
static bool conn_open;
static void *zeros;             /* ring_conn_chunk() bytes of zeros */

/* ---- configuration ----------------------------------------------------------- */

static int parse_unsigned(const char *key, const char *value, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(value, &end, 10);
    if (errno || end == value || *end || v > max) {
        nbdkit_error("%s=%s: expected a number from 0 to %u", key, value, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int qcowd_config(const char *key, const char *value)
{
    if (strcmp(key, "name") == 0)
        image_name = value;
    else if (strcmp(key, "socket") == 0)
        socket_path = value;
    else if (strcmp(key, "retry") == 0)
        return parse_unsigned(key, value, MAX_RETRY_S, &retry_s);
    else if (strcmp(key, "spin") == 0)
        return parse_unsigned(key, value, MAX_SPIN_US, &spin_us);
    else {
        nbdkit_error("unknown parameter '%s' (expected name, socket, retry or spin)", key);
        return -1;
    }
    return 0;
}

static int qcowd_config_complete(void)
{
    if (!image_name) {
        nbdkit_error("name=NAME is required: the name the image is attached as in qcowd");
        return -1;
    }
    return 0;
}

#define qcowd_config_help \
    "name=NAME       (required) the image, as attached to qcowd\n" \
    "socket=PATH     qcowd's control socket (default $QCOWD_SOCKET, else qcowd's)\n" \
    "retry=SECONDS   how long to keep reconnecting when the ring goes away (60)\n" \
    "spin=USEC       how long the completion thread looks for answers before sleeping (0)"

static int qcowd_get_ready(void)
{
    int r = ring_conn_open(&conn, socket_path, image_name, retry_s);

    conn.spin_us = spin_us;
    if (r < 0) {
        nbdkit_error("cannot take the ring of '%s' from qcowd at %s: %s", image_name,
                     socket_path ? socket_path : "its default socket", error_text(-r));
        ring_conn_close(&conn);
        return -1;
    }
    conn_open = true;
    if (!(zeros = calloc(1, (size_t)ring_conn_chunk(&conn)))) {
        nbdkit_error("out of memory");
        return -1;
    }
    return 0;
}

static int qcowd_after_fork(void)
{
    int r = ring_conn_start(&conn);

    if (r < 0) {
        nbdkit_error("cannot start the completion thread: %s", error_text(-r));
        return -1;
    }
    return 0;
}

static void qcowd_cleanup(void)
{
    if (conn_open)
        ring_conn_close(&conn);
    conn_open = false;
    free(zeros);
    zeros = NULL;
}

/* ---- what the export offers ---------------------------------------------------- */

static bool offers(uint64_t feature)
{
    return (conn.geo.features & feature) != 0;
}

static void *qcowd_open(int readonly)
{
    return &conn;
}

static int64_t qcowd_get_size(void *handle)
{
    return (int64_t)(conn.geo.capacity_sectors * conn.geo.sector_size);
}

static int qcowd_block_size(void *handle, uint32_t *minimum, uint32_t *preferred,
                            uint32_t *maximum)
{
    *minimum = conn.geo.sector_size;
    *preferred = conn.geo.discard_granularity > QCOWRING_PAGE_SIZE
                     ? conn.geo.discard_granularity : QCOWRING_PAGE_SIZE;
    *maximum = conn.geo.max_request_bytes;
    return 0;
}

static int qcowd_can_write(void *handle) { return !offers(QCOWRING_F_READ_ONLY); }
static int qcowd_can_flush(void *handle) { return offers(QCOWRING_F_FLUSH); }
static int qcowd_can_fua(void *handle)
{
    return offers(QCOWRING_F_FLUSH) ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}
static int qcowd_can_trim(void *handle)
{
    return offers(QCOWRING_F_DISCARD) && !offers(QCOWRING_F_READ_ONLY);
}
static int qcowd_can_zero(void *handle) { return !offers(QCOWRING_F_READ_ONLY); }
/* A fast zero either costs no writes or fails at once with ENOTSUP. */
static int qcowd_can_fast_zero(void *handle) { return !offers(QCOWRING_F_READ_ONLY); }
/* Every connection shares one ring, and a flush covers every write that
 * completed before it, on any connection. */
static int qcowd_can_multi_conn(void *handle) { return 1; }
static int qcowd_can_extents(void *handle) { return offers(QCOWRING_F_MAP); }
static int qcowd_is_rotational(void *handle) { return 0; }

/* ---- data ---------------------------------------------------------------------- */

static int fail(int r, const char *what, uint32_t count, uint64_t offset)
{
    if (r == -EOPNOTSUPP)
        r = -ENOTSUP;
    if (r != -ENOTSUP)
        nbdkit_error("qcowd: %s of %u bytes at %llu on '%s': %s", what, count,
                     (unsigned long long)offset, image_name, error_text(-r));
    nbdkit_set_error(-r);
    return -1;
}

static bool aligned(uint32_t count, uint64_t offset)
{
    if ((count | offset) % conn.geo.sector_size == 0)
        return true;
    nbdkit_error("qcowd: %u bytes at %llu: not a multiple of %u bytes (the export's "
                 "minimum block size)", count, (unsigned long long)offset,
                 conn.geo.sector_size);
    nbdkit_set_error(EINVAL);
    return false;
}

/* Transfers larger than one ring request go as several, in order. */
static int chunked(int op, uint8_t *dst, const uint8_t *src, uint32_t count, uint64_t offset)
{
    uint64_t chunk = ring_conn_chunk(&conn);

    for (uint64_t done = 0; done < count;) {
        uint64_t n = count - done < chunk ? count - done : chunk;
        int r = ring_conn_io(&conn, op, dst ? dst + done : NULL,
                             src == zeros ? zeros : src ? src + done : NULL, offset + done, n);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

static int flush_all(void)
{
    return ring_conn_io(&conn, QCOWRING_OP_FLUSH_DISKCACHE, NULL, NULL, 0, 0);
}

static int qcowd_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    int r;

    if (!aligned(count, offset))
        return -1;
    r = chunked(QCOWRING_OP_READ, buf, NULL, count, offset);
    return r < 0 ? fail(r, "read", count, offset) : 0;
}

/* A small write with FUA is one FLUSH_DISKCACHE that carries the data
 * (blkif's preflush + FUA write); a larger one is a write, then a flush. */
static int qcowd_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset,
                        uint32_t flags)
{
    bool fua = flags & NBDKIT_FLAG_FUA;
    int r;

    if (!aligned(count, offset))
        return -1;
    if (fua && count <= QCOWRING_MAX_SEGMENTS * QCOWRING_PAGE_SIZE) {
        r = ring_conn_io(&conn, QCOWRING_OP_FLUSH_DISKCACHE, NULL, buf, offset, count);
    } else {
        r = chunked(QCOWRING_OP_WRITE, NULL, buf, count, offset);
        if (r == 0 && fua)
            r = flush_all();
    }
    return r < 0 ? fail(r, "write", count, offset) : 0;
}

static int qcowd_flush(void *handle, uint32_t flags)
{
    int r = flush_all();

    return r < 0 ? fail(r, "flush", 0, 0) : 0;
}

static int qcowd_trim(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    int r;

    if (!aligned(count, offset))
        return -1;
    r = ring_conn_io(&conn, QCOWRING_OP_DISCARD, NULL, NULL, offset, count);
    if (r == 0 && (flags & NBDKIT_FLAG_FUA))
        r = flush_all();
    return r < 0 ? fail(r, "trim", count, offset) : 0;
}

/* Zero one extent that does not read as zeros yet: punch it when a discard
 * is known to read back as zeros, else write zeros (not fast). */
static int zero_extent(uint64_t offset, uint64_t len, uint32_t flags)
{
    if ((flags & NBDKIT_FLAG_MAY_TRIM) && offers(QCOWRING_F_DISCARD_ZEROES))
        return ring_conn_io(&conn, QCOWRING_OP_DISCARD, NULL, NULL, offset, len);
    if (flags & NBDKIT_FLAG_FAST_ZERO)
        return -ENOTSUP;
    return chunked(QCOWRING_OP_WRITE, NULL, zeros, (uint32_t)len, offset);
}

/* Ranges that already read as zeros (per the worker's map) need nothing. */
static int zero_range(uint32_t count, uint64_t offset, uint32_t flags)
{
    struct qcowring_map_extent ext[EXTENTS_PER_MAP];
    uint64_t end = offset + count;

    if (!offers(QCOWRING_F_MAP))
        return zero_extent(offset, count, flags);
    while (offset < end) {
        uint64_t covered;
        int n = ring_conn_map(&conn, offset, end - offset, ext, EXTENTS_PER_MAP, &covered);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            uint64_t len = ext[i].nr_sectors * QCOWRING_SECTOR_SIZE;
            int r = (ext[i].flags & QCOWRING_MAP_ZERO) ? 0 : zero_extent(offset, len, flags);
            if (r < 0)
                return r;
            offset += len;
        }
    }
    return 0;
}

static int qcowd_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    int r;

    if (!aligned(count, offset))
        return -1;
    r = zero_range(count, offset, flags);
    if (r == 0 && (flags & NBDKIT_FLAG_FUA))
        r = flush_all();
    return r < 0 ? fail(r, "zero", count, offset) : 0;
}

static uint32_t extent_type(uint32_t map_flags)
{
    return ((map_flags & QCOWRING_MAP_HOLE) ? NBDKIT_EXTENT_HOLE : 0) |
           ((map_flags & QCOWRING_MAP_ZERO) ? NBDKIT_EXTENT_ZERO : 0);
}

static int qcowd_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                         struct nbdkit_extents *extents)
{
    struct qcowring_map_extent ext[EXTENTS_PER_MAP];
    uint64_t end = offset + count;

    if (!aligned(count, offset))
        return -1;
    for (unsigned maps = 0; offset < end && maps < MAPS_PER_EXTENTS; maps++) {
        uint64_t covered;
        int n = ring_conn_map(&conn, offset, end - offset, ext, EXTENTS_PER_MAP, &covered);
        if (n < 0)
            return fail(n, "map", count, offset);
        for (int i = 0; i < n; i++) {
            uint64_t len = ext[i].nr_sectors * QCOWRING_SECTOR_SIZE;
            if (nbdkit_add_extent(extents, offset, len, extent_type(ext[i].flags)) < 0)
                return -1;
            offset += len;
        }
        if (flags & NBDKIT_FLAG_REQ_ONE)
            break;
    }
    return 0;
}

static struct nbdkit_plugin plugin = {
    .name = "qcowd",
    .longname = "qcowd: images attached to qcowd, through their shared-memory ring",
    .version = PACKAGE_VERSION,
    .description = "Serves a QCOW or raw image attached to qcowd over NBD.",
    .config = qcowd_config,
    .config_complete = qcowd_config_complete,
    .config_help = qcowd_config_help,
    .magic_config_key = "name",
    .get_ready = qcowd_get_ready,
    .after_fork = qcowd_after_fork,
    .cleanup = qcowd_cleanup,
    .open = qcowd_open,
    .get_size = qcowd_get_size,
    .block_size = qcowd_block_size,
    .can_write = qcowd_can_write,
    .can_flush = qcowd_can_flush,
    .can_fua = qcowd_can_fua,
    .can_trim = qcowd_can_trim,
    .can_zero = qcowd_can_zero,
    .can_fast_zero = qcowd_can_fast_zero,
    .can_multi_conn = qcowd_can_multi_conn,
    .can_extents = qcowd_can_extents,
    .is_rotational = qcowd_is_rotational,
    .pread = qcowd_pread,
    .pwrite = qcowd_pwrite,
    .flush = qcowd_flush,
    .trim = qcowd_trim,
    .zero = qcowd_zero,
    .extents = qcowd_extents,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
