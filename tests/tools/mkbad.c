/* mkbad: write a set of malformed QCOW v1 images into a directory.
 *
 *   mkbad DIR
 *
 * Every case starts from the same small valid image, built here byte by byte
 * (not with the engine under test): 8 MiB virtual, 4 KiB clusters, 512 L2
 * entries, two L2 tables, three data clusters and one compressed cluster.
 * DIR/valid.qcow is that image and DIR/valid.raw its contents, so a test can
 * check the generator against qemu-img and the engine on a good image before
 * trusting any verdict on a bad one.  The cases are listed in `cases` below;
 * tests/interop/malformed.sh holds what each one must produce. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC 0x514649FBu
#define VSIZE (UINT64_C(8) << 20)
#define CLUSTER_BITS 12
#define CLUSTER 4096u
#define L2_BITS 9
#define L2_ENTRIES 512u
#define COMPRESSED_FLAG (UINT64_C(1) << 63)

/* Guest clusters that hold data in the base image. */
#define G_PLAIN0 0u
#define G_PLAIN1 5u
#define G_COMP 7u
#define G_PLAIN2 (L2_ENTRIES + 3u)

static const char *outdir;

struct image {
    uint8_t *b;
    size_t len;
    /* Layout, for the cases to poke at. */
    uint64_t l1_offset, l1_entries;
    uint64_t l2a, l2b;                  /* the two L2 tables */
    uint64_t comp_off;
    uint32_t comp_len;
};

static void grow(struct image *im, size_t len)
{
    if (len <= im->len)
        return;
    uint8_t *nb = realloc(im->b, len);
    if (!nb) {
        perror("mkbad");
        exit(1);
    }
    memset(nb + im->len, 0, len - im->len);
    im->b = nb;
    im->len = len;
}

static void put32(struct image *im, uint64_t off, uint32_t v)
{
    grow(im, off + 4);
    for (int i = 0; i < 4; i++)
        im->b[off + i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(struct image *im, uint64_t off, uint64_t v)
{
    grow(im, off + 8);
    for (int i = 0; i < 8; i++)
        im->b[off + i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t align(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* The contents of the data clusters (also written to valid.raw). */
static void cluster_content(unsigned g, uint8_t *out)
{
    switch (g) {
    case G_PLAIN0:
        for (unsigned i = 0; i < CLUSTER; i++)
            out[i] = (uint8_t)(i * 7 + 1);
        break;
    case G_PLAIN1:
        for (unsigned i = 0; i < CLUSTER; i++)
            out[i] = (uint8_t)"qcowd mkbad "[i % 12];
        break;
    case G_COMP:
        for (unsigned i = 0; i < CLUSTER; i += 32) {
            char line[40];
            snprintf(line, sizeof line, "compressed cluster line %07u\n", i / 32);
            memcpy(out + i, line, 32);
        }
        break;
    default:
        memset(out, 0xA5, CLUSTER);
        break;
    }
}

static uint32_t deflate_raw(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap)
{
    z_stream s;

    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, Z_BEST_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        exit(1);
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)in_len;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END) {
        fputs("mkbad: deflate failed\n", stderr);
        exit(1);
    }
    deflateEnd(&s);
    return (uint32_t)(cap - s.avail_out);
}

/* Build the valid base image.  backing: name stored at offset 48 (or NULL);
 * l1_at: where to put the L1 table (0: right after the header/name). */
static void build(struct image *im, const char *backing, uint64_t l1_at)
{
    uint8_t data[CLUSTER], z[CLUSTER];
    uint64_t blen = backing ? strlen(backing) : 0, end;

    memset(im, 0, sizeof *im);
    grow(im, 48);
    put32(im, 0, MAGIC);
    put32(im, 4, 1);
    put64(im, 8, backing ? 48 : 0);
    put32(im, 16, (uint32_t)blen);
    put32(im, 20, 0);
    put64(im, 24, VSIZE);
    im->b[32] = CLUSTER_BITS;
    im->b[33] = L2_BITS;
    put32(im, 36, 0);
    if (backing) {
        grow(im, 48 + blen);
        memcpy(im->b + 48, backing, blen);
    }
    im->l1_offset = l1_at ? l1_at : align(48 + blen, 8);
    im->l1_entries = VSIZE >> (CLUSTER_BITS + L2_BITS);
    put64(im, 40, im->l1_offset);
    grow(im, im->l1_offset + im->l1_entries * 8);

    end = align(im->len, CLUSTER);
    im->l2a = end;
    end += L2_ENTRIES * 8;
    put64(im, im->l1_offset, im->l2a);
    grow(im, end);

    cluster_content(G_PLAIN0, data);
    grow(im, end + CLUSTER);
    memcpy(im->b + end, data, CLUSTER);
    put64(im, im->l2a + 8 * G_PLAIN0, end);
    end += CLUSTER;

    cluster_content(G_PLAIN1, data);
    grow(im, end + CLUSTER);
    memcpy(im->b + end, data, CLUSTER);
    put64(im, im->l2a + 8 * G_PLAIN1, end);
    end += CLUSTER;

    /* Compressed: packed at a 512-byte boundary, as QEMU does. */
    cluster_content(G_COMP, data);
    im->comp_off = end;
    im->comp_len = deflate_raw(data, CLUSTER, z, sizeof z);
    grow(im, end + align(im->comp_len, 512));
    memcpy(im->b + end, z, im->comp_len);
    put64(im, im->l2a + 8 * G_COMP,
          COMPRESSED_FLAG | ((uint64_t)im->comp_len << (63 - CLUSTER_BITS)) | im->comp_off);
    end = align(end + im->comp_len, CLUSTER);

    im->l2b = end;
    put64(im, im->l1_offset + 8, im->l2b);
    end += L2_ENTRIES * 8;
    grow(im, end);

    cluster_content(G_PLAIN2, data);
    grow(im, end + CLUSTER);
    memcpy(im->b + end, data, CLUSTER);
    put64(im, im->l2b + 8 * (G_PLAIN2 - L2_ENTRIES), end);
}

static void save(const struct image *im, const char *name, size_t len)
{
    char path[4096];
    int fd;

    snprintf(path, sizeof path, "%s/%s", outdir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, im->b, len) != (ssize_t)len || close(fd) < 0) {
        fprintf(stderr, "mkbad: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void save_raw(void)
{
    char path[4096];
    uint8_t data[CLUSTER];
    static const unsigned gs[] = { G_PLAIN0, G_PLAIN1, G_COMP, G_PLAIN2 };
    int fd;

    snprintf(path, sizeof path, "%s/valid.raw", outdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)VSIZE) < 0) {
        fprintf(stderr, "mkbad: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        cluster_content(gs[i], data);
        if (pwrite(fd, data, CLUSTER, (off_t)gs[i] * CLUSTER) != CLUSTER) {
            fprintf(stderr, "mkbad: %s: %s\n", path, strerror(errno));
            exit(1);
        }
    }
    close(fd);
}

/* One case: build the base (maybe with a backing name), change it, save. */
static void one(const char *name, const char *backing, uint64_t l1_at,
                void (*mutate)(struct image *), size_t cut)
{
    struct image im;

    build(&im, backing, l1_at);
    if (mutate)
        mutate(&im);
    save(&im, name, cut && cut < im.len ? cut : im.len);
    free(im.b);
}

/* ---- mutations ---- */
static void m_magic(struct image *im) { put32(im, 0, 0x514649FAu); }
static void m_version0(struct image *im) { put32(im, 4, 0); }
static void m_version2(struct image *im) { put32(im, 4, 2); }
static void m_size0(struct image *im) { put64(im, 24, 0); }
static void m_size1(struct image *im) { put64(im, 24, 1); }
static void m_cbits8(struct image *im) { im->b[32] = 8; }
static void m_cbits17(struct image *im) { im->b[32] = 17; }
static void m_l2bits5(struct image *im) { im->b[33] = 5; }
static void m_l2bits14(struct image *im) { im->b[33] = 14; }
static void m_crypt2(struct image *im) { put32(im, 36, 2); }
/* size + 2^21 wraps around 2^64. */
static void m_size_overflow(struct image *im) { put64(im, 24, UINT64_MAX - 4096); }
/* 2^41 L1 entries: far beyond what any file can hold. */
static void m_l1_huge(struct image *im) { put64(im, 24, UINT64_C(1) << 62); }
static void m_l1_past_eof(struct image *im) { put64(im, 40, align(im->len, CLUSTER) + 8 * CLUSTER); }
static void m_l1_in_header(struct image *im) { put64(im, 40, 16); }
static void m_bname_1024(struct image *im)
{
    grow(im, im->len + 2048);
    put64(im, 8, im->len - 1536);
    put32(im, 16, 1024);
    memset(im->b + im->len - 1536, 'b', 1024);
}
static void m_bname_past_eof(struct image *im)
{
    put64(im, 8, im->len - 4);
    put32(im, 16, 20);
}
static void m_boff_no_name(struct image *im)
{
    put64(im, 8, 1024);
    put32(im, 16, 0);
}
static void m_blen_no_off(struct image *im)
{
    put64(im, 8, 0);
    put32(im, 16, 10);
}
/* Name at 48..64, L1 moved to 56..88. */
static void m_bname_over_l1(struct image *im)
{
    uint8_t l1[32];

    memcpy(l1, im->b + im->l1_offset, sizeof l1);
    memcpy(im->b + 56, l1, sizeof l1);
    put64(im, 40, 56);
    put64(im, 8, 48);
    put32(im, 16, 16);
}
static void m_l1e_past_eof(struct image *im) { put64(im, im->l1_offset, UINT64_C(1) << 30); }
static void m_l1e_misaligned(struct image *im) { put64(im, im->l1_offset, im->l2a + 4); }
/* (base built with the L1 table at 4096) L1[0] names the L1 table itself. */
static void m_l1e_into_l1(struct image *im) { put64(im, im->l1_offset, im->l1_offset); }
static void m_l2e_past_eof(struct image *im) { put64(im, im->l2a + 8 * G_PLAIN0, UINT64_C(1) << 30); }
/* A cluster that starts inside the file and runs 2 KiB past its end. */
static void m_l2e_runs_past_eof(struct image *im) { put64(im, im->l2a + 8 * G_PLAIN0, im->len - 2048); }
static uint64_t get64(const struct image *im, uint64_t off)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | im->b[off + i];
    return v;
}
static void m_l2e_misaligned(struct image *im)
{
    put64(im, im->l2a + 8 * G_PLAIN0, get64(im, im->l2a + 8 * G_PLAIN0) + 4);
}
static void m_comp_past_eof(struct image *im)
{
    put64(im, im->l2a + 8 * G_COMP,
          COMPRESSED_FLAG | ((uint64_t)im->comp_len << (63 - CLUSTER_BITS)) | (UINT64_C(1) << 30));
}
/* 0xff bytes: a deflate block of the reserved type 3. */
static void m_comp_corrupt(struct image *im) { memset(im->b + im->comp_off, 0xff, im->comp_len); }
/* A valid stream that inflates to 100 bytes only, not one cluster. */
static void m_comp_short(struct image *im)
{
    uint8_t data[100], z[512];
    uint32_t n;

    memset(data, 'x', sizeof data);
    n = deflate_raw(data, sizeof data, z, sizeof z);
    memcpy(im->b + im->comp_off, z, n);
    put64(im, im->l2a + 8 * G_COMP,
          COMPRESSED_FLAG | ((uint64_t)n << (63 - CLUSTER_BITS)) | im->comp_off);
}

int main(int argc, char **argv)
{
    char name[64], next[64];

    if (argc != 2) {
        fputs("usage: mkbad DIR\n", stderr);
        return 2;
    }
    outdir = argv[1];

    one("valid.qcow", NULL, 0, NULL, 0);
    save_raw();

    /* Header fields. */
    one("bad-magic.qcow", NULL, 0, m_magic, 0);
    one("version-0.qcow", NULL, 0, m_version0, 0);
    one("version-2.qcow", NULL, 0, m_version2, 0);
    one("size-0.qcow", NULL, 0, m_size0, 0);
    one("size-1.qcow", NULL, 0, m_size1, 0);
    one("cluster-bits-8.qcow", NULL, 0, m_cbits8, 0);
    one("cluster-bits-17.qcow", NULL, 0, m_cbits17, 0);
    one("l2-bits-5.qcow", NULL, 0, m_l2bits5, 0);
    one("l2-bits-14.qcow", NULL, 0, m_l2bits14, 0);
    one("crypt-method-2.qcow", NULL, 0, m_crypt2, 0);
    one("size-overflow.qcow", NULL, 0, m_size_overflow, 0);
    one("l1-too-large.qcow", NULL, 0, m_l1_huge, 0);
    one("l1-past-eof.qcow", NULL, 0, m_l1_past_eof, 0);
    one("l1-overlaps-header.qcow", NULL, 0, m_l1_in_header, 0);

    /* The backing file name. */
    one("backing-name-1024.qcow", NULL, 0, m_bname_1024, 0);
    one("backing-name-past-eof.qcow", NULL, 0, m_bname_past_eof, 0);
    one("backing-offset-no-name.qcow", NULL, 0, m_boff_no_name, 0);
    one("backing-name-no-offset.qcow", NULL, 0, m_blen_no_off, 0);
    one("backing-name-overlaps-l1.qcow", NULL, 0, m_bname_over_l1, 0);

    /* L1 and L2 entries, compressed clusters. */
    one("l1-entry-past-eof.qcow", NULL, 0, m_l1e_past_eof, 0);
    one("l1-entry-misaligned.qcow", NULL, 0, m_l1e_misaligned, 0);
    one("l1-entry-into-l1.qcow", NULL, 4096, m_l1e_into_l1, 0);
    one("l2-entry-past-eof.qcow", NULL, 0, m_l2e_past_eof, 0);
    one("l2-entry-runs-past-eof.qcow", NULL, 0, m_l2e_runs_past_eof, 0);
    one("l2-entry-misaligned.qcow", NULL, 0, m_l2e_misaligned, 0);
    one("compressed-past-eof.qcow", NULL, 0, m_comp_past_eof, 0);
    one("compressed-corrupt.qcow", NULL, 0, m_comp_corrupt, 0);
    one("compressed-short.qcow", NULL, 0, m_comp_short, 0);

    /* Truncated files. */
    one("header-only.qcow", NULL, 0, NULL, 48);
    one("half-l1.qcow", NULL, 0, NULL, 48 + 16);

    /* Backing chains: a loop of two, a self-loop, a missing file, and a chain
     * of 66 layers (deep-00 → … → deep-65); deep-02 has exactly 64
     * (IMAGE_DEFAULT_MAX_DEPTH). */
    one("loop-a.qcow", "loop-b.qcow", 0, NULL, 0);
    one("loop-b.qcow", "loop-a.qcow", 0, NULL, 0);
    one("self-loop.qcow", "self-loop.qcow", 0, NULL, 0);
    one("missing-backing.qcow", "does-not-exist.qcow", 0, NULL, 0);
    for (int i = 0; i < 66; i++) {
        snprintf(name, sizeof name, "deep-%02d.qcow", i);
        snprintf(next, sizeof next, "deep-%02d.qcow", i + 1);
        one(name, i < 65 ? next : NULL, 0, NULL, 0);
    }
    return 0;
}
