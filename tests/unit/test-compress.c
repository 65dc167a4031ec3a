/* Compressed clusters: raw deflate with a 4 KiB window.  Round trips at every
 * cluster size, a stream made by zlib directly (as QEMU makes them), and the
 * streams that must be refused. */
#include "config.h"

#include <errno.h>
#include <zlib.h>

#include "compress.h"
#include "unit.h"

static uint64_t rng = 42;

static uint8_t rnd(void)
{
    rng = rng * UINT64_C(6364136223846793005) + 1442695040888963407u;
    return (uint8_t)(rng >> 56);
}

static void compressible(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)("qcow v1 compressed cluster\n"[i % 27]);
    for (size_t i = 0; i < n; i += 97)
        b[i] = rnd();
}

/* What QEMU does: deflateInit2(level, Z_DEFLATED, -12, 9, ...). */
static size_t zlib_raw_deflate(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream s;

    memset(&s, 0, sizeof s);
    REQUIRE(deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)n;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
    deflateEnd(&s);
    return cap - s.avail_out;
}

static void test_round_trip(void)
{
    for (unsigned cb = 9; cb <= 16; cb++) {
        size_t cl = (size_t)1 << cb;
        uint8_t *in = malloc(cl), *z = malloc(cl), *out = malloc(cl);
        long n;

        REQUIRE(in && z && out);
        compressible(in, cl);
        n = qcow_deflate_cluster(in, cl, z);
        CHECK(n > 0 && (size_t)n < cl);
        if (n > 0) {
            memset(out, 0xcc, cl);
            CHECK_U64(qcow_inflate_cluster(z, (size_t)n, out, cl), 0);
            CHECK(memcmp(in, out, cl) == 0);
            /* A stream followed by padding (QEMU reads whole sectors). */
            memset(z + n, 0, cl - (size_t)n);
            CHECK_U64(qcow_inflate_cluster(z, (size_t)n + (cl - (size_t)n) / 2, out, cl), 0);
            CHECK(memcmp(in, out, cl) == 0);
        }
        /* All zeros compress to almost nothing. */
        memset(in, 0, cl);
        n = qcow_deflate_cluster(in, cl, z);
        CHECK(n > 0 && (size_t)n < cl / 16);
        free(in);
        free(z);
        free(out);
    }
}

static void test_zlib_stream(void)
{
    uint8_t in[65536], z[70000], out[65536];
    size_t n;

    compressible(in, sizeof in);
    n = zlib_raw_deflate(in, sizeof in, z, sizeof z);
    CHECK_U64(qcow_inflate_cluster(z, n, out, sizeof out), 0);
    CHECK(memcmp(in, out, sizeof in) == 0);
}

static void test_incompressible(void)
{
    uint8_t in[4096], z[4096];

    for (size_t i = 0; i < sizeof in; i++)
        in[i] = rnd();
    CHECK_U64(qcow_deflate_cluster(in, sizeof in, z), 0);
}

/* Streams that must be refused, and one that must not. */
static void test_edge_streams(void)
{
    uint8_t in[4096], z[8192], out[4096], junk[256];
    size_t n;

    compressible(in, sizeof in);
    n = zlib_raw_deflate(in, sizeof in, z, sizeof z);
    REQUIRE(n > 16);

    /* Cut short: not a whole cluster. */
    CHECK(qcow_inflate_cluster(z, n / 2, out, sizeof out) == -EIO);
    CHECK(qcow_inflate_cluster(z, 0, out, sizeof out) == -EIO);
    /* A valid stream of less than a cluster. */
    n = zlib_raw_deflate(in, 1000, z, sizeof z);
    CHECK(qcow_inflate_cluster(z, n, out, sizeof out) == -EIO);
    /* Garbage: a block of the reserved type 3. */
    memset(junk, 0xff, sizeof junk);
    CHECK(qcow_inflate_cluster(junk, sizeof junk, out, sizeof out) == -EIO);
    /* Random bytes. */
    for (int t = 0; t < 200; t++) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = rnd();
        int r = qcow_inflate_cluster(junk, sizeof junk, out, sizeof out);
        CHECK(r == 0 || r == -EIO);
    }
    /* A distance beyond the 4 KiB window: zlib, and so QEMU, which inflates
     * a whole cluster in one call, accepts it; a stream QEMU reads must
     * read the same here. */
    {
        static uint8_t big[65536], bz[70000], bo[65536];
        z_stream s;

        for (size_t i = 0; i < 8192; i++)
            big[i] = rnd();
        memcpy(big + 8192, big, 8192);          /* repeats 8 KiB back */
        memset(big + 16384, 0, sizeof big - 16384);
        memset(&s, 0, sizeof s);
        REQUIRE(deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
        s.next_in = big;
        s.avail_in = sizeof big;
        s.next_out = bz;
        s.avail_out = sizeof bz;
        REQUIRE(deflate(&s, Z_FINISH) == Z_STREAM_END);
        n = sizeof bz - s.avail_out;
        deflateEnd(&s);
        CHECK(n < 12000);       /* it did use the far matches */
        CHECK(qcow_inflate_cluster(bz, n, bo, sizeof bo) == 0);
        CHECK(memcmp(bo, big, sizeof big) == 0);
    }
}

int main(void)
{
    test_round_trip();
    test_zlib_stream();
    test_incompressible();
    test_edge_streams();
    return unit_result("test-compress");
}
