/* image_map on small images made with qcow_create + image_write: extents
 * come in guest order and cover the range exactly, adjacent clusters that
 * are contiguous on the host merge into one DATA extent and others do not,
 * compressed clusters map to COMPRESSED extents, and a backing chain maps
 * each range to the layer that holds it (zeros past the backing file). */
#include "config.h"

#include <fcntl.h>

#include "error.h"
#include "image.h"
#include "util.h"
#include "unit.h"

#define CL 4096u

static const char *kind_name(enum extent_kind k)
{
    return k == EXTENT_DATA ? "DATA" : k == EXTENT_ZERO ? "ZERO" : k == EXTENT_COMPRESSED ? "COMPRESSED" : "?";
}

static void dump(const struct extent_vec *ev)
{
    for (size_t i = 0; i < ev->n; i++)
        fprintf(stderr, "    [%zu] %s guest %" PRIu64 "+%" PRIu64 " host %" PRIu64 " depth %u\n", i,
                kind_name(ev->v[i].kind), ev->v[i].guest_off, ev->v[i].len, ev->v[i].host_off,
                ev->v[i].depth);
}

/* Extents must tile [off, off+len) in order, with no empty extent. */
static bool tiles(const struct extent_vec *ev, uint64_t off, uint64_t len)
{
    uint64_t at = off;

    for (size_t i = 0; i < ev->n; i++) {
        if (ev->v[i].guest_off != at || ev->v[i].len == 0)
            return false;
        at += ev->v[i].len;
    }
    return at == off + len;
}

/* Index of the extent holding guest byte g, or -1. */
static long find(const struct extent_vec *ev, uint64_t g)
{
    for (size_t i = 0; i < ev->n; i++)
        if (g >= ev->v[i].guest_off && g < ev->v[i].guest_off + ev->v[i].len)
            return (long)i;
    return -1;
}

/* The range [g, g+len) is zeros: only ZERO extents. */
static bool all_zero(const struct extent_vec *ev, uint64_t g, uint64_t len)
{
    for (size_t i = 0; i < ev->n; i++) {
        const struct extent *e = &ev->v[i];
        if (e->guest_off < g + len && g < e->guest_off + e->len && e->kind != EXTENT_ZERO)
            return false;
    }
    return true;
}

static void write_cluster(struct image *img, uint64_t c, unsigned n, uint8_t fill)
{
    uint8_t *buf = alloc_aligned(4096, (size_t)n * CL);

    REQUIRE(buf);
    memset(buf, fill, (size_t)n * CL);
    CHECK_OK(image_write(img, buf, (uint64_t)n * CL, c * CL));
    free(buf);
}

/* The bytes a DATA extent points at are the ones written. */
static bool host_holds(const struct extent *e, uint8_t fill)
{
    uint8_t *buf = malloc(e->len);
    bool ok;

    REQUIRE(buf);
    ok = read_full_at(e->fd, buf, e->len, e->host_off) == (ssize_t)e->len;
    for (uint64_t i = 0; ok && i < e->len; i++)
        ok = buf[i] == fill;
    free(buf);
    return ok;
}

static void check_single_layer(struct image *img, bool fresh)
{
    struct extent_vec ev = { 0 };
    long i;

    CHECK_OK(image_map(img, 0, 8 * CL, &ev));
    CHECK(tiles(&ev, 0, 8 * CL));
    /* Clusters 0-2 were allocated by one write: one extent. */
    i = find(&ev, 0);
    CHECK(i == 0 && ev.v[0].kind == EXTENT_DATA && ev.v[0].len == 3 * CL && ev.v[0].depth == 0 &&
          is_aligned(ev.v[0].host_off, CL) && host_holds(&ev.v[0], 0x11));
    CHECK(all_zero(&ev, 3 * CL, CL));
    /* Cluster 5 was allocated before cluster 4: host order reversed, no merge. */
    i = find(&ev, 4 * CL);
    CHECK(i >= 0 && ev.v[i].kind == EXTENT_DATA && ev.v[i].guest_off == 4 * CL && ev.v[i].len == CL &&
          host_holds(&ev.v[i], 0x44));
    i = find(&ev, 5 * CL);
    CHECK(i >= 0 && ev.v[i].kind == EXTENT_DATA && ev.v[i].guest_off == 5 * CL && ev.v[i].len == CL &&
          host_holds(&ev.v[i], 0x55));
    /* Cluster 6 is compressed. */
    i = find(&ev, 6 * CL);
    CHECK(i >= 0 && ev.v[i].kind == EXTENT_COMPRESSED && ev.v[i].guest_off == 6 * CL &&
          ev.v[i].len == CL && ev.v[i].cluster_guest_off == 6 * CL && ev.v[i].comp_len > 0 &&
          ev.v[i].comp_len < CL);
    CHECK(all_zero(&ev, 7 * CL, CL));
    if (unit_failures) {
        fprintf(stderr, "  map of [0, 8 clusters) (%s):\n", fresh ? "while open" : "after reopening");
        dump(&ev);
    }

    /* A range inside one extent. */
    extent_vec_reset(&ev);
    CHECK_OK(image_map(img, 1000, 5000, &ev));
    CHECK(ev.n == 1 && ev.v[0].kind == EXTENT_DATA && ev.v[0].guest_off == 1000 && ev.v[0].len == 5000);
    {
        struct extent_vec whole = { 0 };
        CHECK_OK(image_map(img, 0, CL, &whole));
        CHECK(whole.n == 1 && ev.n == 1 && ev.v[0].host_off == whole.v[0].host_off + 1000);
        extent_vec_free(&whole);
    }

    /* Part of the compressed cluster inflates to just those bytes. */
    extent_vec_reset(&ev);
    CHECK_OK(image_map(img, 6 * CL + 100, 50, &ev));
    CHECK(ev.n == 1 && ev.v[0].kind == EXTENT_COMPRESSED && ev.v[0].guest_off == 6 * CL + 100 &&
          ev.v[0].len == 50 && ev.v[0].cluster_guest_off == 6 * CL);
    if (ev.n == 1 && ev.v[0].kind == EXTENT_COMPRESSED) {
        uint8_t stream[CL], out[CL];
        const struct extent *e = &ev.v[0];

        REQUIRE(e->comp_len <= CL);
        REQUIRE(read_full_at(e->fd, stream, e->comp_len, e->host_off) == (ssize_t)e->comp_len);
        memset(out, 0, sizeof out);
        CHECK_OK(extent_inflate(e, stream, out));
        for (unsigned k = 0; k < 50; k++)
            CHECK(out[k] == (uint8_t)("compressible "[(100 + k) % 13]));
    }

    /* The whole image: zeros to the end. */
    extent_vec_reset(&ev);
    CHECK_OK(image_map(img, 0, img->size, &ev));
    CHECK(tiles(&ev, 0, img->size));
    CHECK(all_zero(&ev, 8 * CL, img->size - 8 * CL));
    extent_vec_free(&ev);
}

static void test_single_layer(void)
{
    struct qcow_create_opts co = { .size = 1 << 20, .cluster_bits = 12, .l2_bits = 9 };
    struct image_open_opts oo = { .format = IMAGE_FORMAT_QCOW };
    struct image *img = NULL;
    const char *path = unit_path("map.qcow");
    uint8_t comp[CL];

    CHECK_OK(qcow_create(path, &co));
    CHECK_OK(image_open(path, &oo, &img));
    REQUIRE(img);
    CHECK_U64(img->size, 1 << 20);
    CHECK_U64(img->depth, 1);
    write_cluster(img, 0, 3, 0x11);
    write_cluster(img, 5, 1, 0x55);
    write_cluster(img, 4, 1, 0x44);
    for (unsigned k = 0; k < CL; k++)
        comp[k] = (uint8_t)("compressible "[k % 13]);
    CHECK_OK(image_write_compressed(img, 6 * CL, comp));
    check_single_layer(img, true);
    CHECK_OK(image_close(img));

    oo.read_only = true;
    img = NULL;
    CHECK_OK(image_open(path, &oo, &img));
    REQUIRE(img);
    check_single_layer(img, false);
    CHECK_OK(image_close(img));
}

static void test_backing(void)
{
    const char *base = unit_path("base.raw"), *over = unit_path("over.qcow");
    struct qcow_create_opts co = { .size = 8 * CL, .cluster_bits = 12, .l2_bits = 9,
                                   .backing_file = "base.raw", .backing_format = IMAGE_FORMAT_RAW };
    struct image_open_opts oo = { .format = IMAGE_FORMAT_QCOW };
    struct extent_vec ev = { 0 };
    struct image *img = NULL;
    struct layer_info li;
    uint8_t buf[3 * CL];
    int fd;
    long i;

    /* A raw backing file of three clusters: 0xB0, 0xB1, 0xB2. */
    for (unsigned k = 0; k < sizeof buf; k++)
        buf[k] = (uint8_t)(0xB0 + k / CL);
    fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0 && write(fd, buf, sizeof buf) == (ssize_t)sizeof buf);
    close(fd);

    CHECK_OK(qcow_create(over, &co));
    CHECK_OK(image_open(over, &oo, &img));
    REQUIRE(img);
    CHECK_U64(img->depth, 2);
    REQUIRE(layer_backing(img->top));
    layer_get_info(layer_backing(img->top), &li);
    CHECK(li.format == IMAGE_FORMAT_RAW);
    CHECK_U64(li.size, 3 * CL);
    layer_get_info(img->top, &li);
    CHECK(li.backing_name && !strcmp(li.backing_name, "base.raw"));

    write_cluster(img, 1, 1, 0x77);
    CHECK_OK(image_map(img, 0, 8 * CL, &ev));
    CHECK(tiles(&ev, 0, 8 * CL));
    i = find(&ev, 0);
    CHECK(i == 0 && ev.v[0].kind == EXTENT_DATA && ev.v[0].depth == 1 && ev.v[0].len == CL &&
          ev.v[0].host_off == 0 && host_holds(&ev.v[0], 0xB0));
    i = find(&ev, CL);
    CHECK(i >= 0 && ev.v[i].kind == EXTENT_DATA && ev.v[i].depth == 0 && ev.v[i].guest_off == CL &&
          ev.v[i].len == CL && host_holds(&ev.v[i], 0x77));
    i = find(&ev, 2 * CL);
    CHECK(i >= 0 && ev.v[i].kind == EXTENT_DATA && ev.v[i].depth == 1 && ev.v[i].guest_off == 2 * CL &&
          ev.v[i].len == CL && ev.v[i].host_off == 2 * CL && host_holds(&ev.v[i], 0xB2));
    /* Past the end of the backing file: zeros. */
    CHECK(all_zero(&ev, 3 * CL, 5 * CL));
    if (unit_failures) {
        fprintf(stderr, "  map of the overlay:\n");
        dump(&ev);
    }
    extent_vec_free(&ev);
    CHECK_OK(image_close(img));
}

int main(void)
{
    test_single_layer();
    test_backing();
    return unit_result("test-map");
}
