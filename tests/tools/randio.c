/* randio: seeded pseudo-random data and write plans for the shell tests.
 *
 *   randio data SEED LEN [random|runs]   LEN bytes to stdout
 *   randio plan SEED COUNT SIZE CLUSTER  COUNT lines "OFFSET LENGTH DATASEED"
 *   randio fill FILE SIZE SEED [PERCENT] a raw FILE of SIZE bytes in which
 *                                        about PERCENT% of the 4 KiB chunks
 *                                        hold data (half of them compressible)
 *
 * The same arguments always give the same output (splitmix64), so a failure
 * seen with QCOWD_TEST_SEED=N can be repeated exactly. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for test purposes; n > 0. */
static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

static void usage(void)
{
    fputs("usage: randio data SEED LEN [random|runs]\n"
          "       randio plan SEED COUNT SIZE CLUSTER\n"
          "       randio fill FILE SIZE SEED [PERCENT]\n", stderr);
    exit(2);
}

static uint64_t num(const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-') {
        fprintf(stderr, "randio: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

/* Fill buf from the generator: uniformly random bytes, or runs of a few
 * repeated bytes that deflate well. */
static void gen(uint8_t *buf, size_t len, int runs)
{
    size_t i = 0;

    if (!runs) {
        while (i < len) {
            uint64_t v = rng_next();
            for (int k = 0; k < 8 && i < len; k++, v >>= 8)
                buf[i++] = (uint8_t)v;
        }
        return;
    }
    while (i < len) {
        uint8_t b = (uint8_t)("qcowd-0123456789"[rng_below(16)]);
        size_t n = 8 + rng_below(120);
        for (size_t k = 0; k < n && i < len; k++)
            buf[i++] = b;
    }
}

static int cmd_data(int argc, char **argv)
{
    uint8_t buf[65536];
    uint64_t len;
    int runs = 0;

    if (argc < 2 || argc > 3)
        usage();
    rng_state = num(argv[0]);
    len = num(argv[1]);
    if (argc == 3) {
        if (!strcmp(argv[2], "runs"))
            runs = 1;
        else if (strcmp(argv[2], "random"))
            usage();
    }
    while (len) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        gen(buf, n, runs);
        if (fwrite(buf, 1, n, stdout) != n) {
            perror("randio: write");
            return 1;
        }
        len -= n;
    }
    return fflush(stdout) ? 1 : 0;
}

/* A mix of writes: byte-granular, sector-aligned, spanning cluster
 * boundaries, whole clusters, now and then a large one, and some that end
 * exactly at the end of the image. */
static int cmd_plan(int argc, char **argv)
{
    uint64_t count, size, cl;

    if (argc != 4)
        usage();
    rng_state = num(argv[0]);
    count = num(argv[1]);
    size = num(argv[2]);
    cl = num(argv[3]);
    if (size < 2 || cl < 512 || (cl & (cl - 1))) {
        fputs("randio: plan needs SIZE >= 2 and a power-of-two CLUSTER >= 512\n", stderr);
        return 2;
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t kind = rng_below(100), off, len;
        uint64_t nclusters = size / cl;

        if (kind < 35) {                        /* byte-granular, small */
            off = rng_below(size);
            len = 1 + rng_below(2 * cl);
        } else if (kind < 65) {                 /* sector-aligned */
            off = size >= 512 ? rng_below(size / 512) * 512 : 0;
            len = 512 * (1 + rng_below(3 * cl / 512));
        } else if (kind < 80 && nclusters >= 2) { /* across a cluster boundary */
            uint64_t b = cl * (1 + rng_below(nclusters - 1));
            uint64_t before = 1 + rng_below(cl < 1024 ? cl : 1024);
            off = b - before;
            len = before + 1 + rng_below(cl);
        } else if (kind < 90 && nclusters >= 1) { /* whole clusters */
            off = rng_below(nclusters) * cl;
            len = cl * (1 + rng_below(3));
        } else if (kind < 93) {                 /* large */
            off = rng_below(size);
            len = 1 + rng_below(256 * 1024);
        } else {                                /* ending at the end of the image */
            len = 1 + rng_below(2 * cl);
            if (len > size)
                len = size;
            off = size - len;
        }
        if (off >= size)
            off = size - 1;
        if (len > size - off)
            len = size - off;
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", off, len, rng_next() >> 32);
    }
    return fflush(stdout) ? 1 : 0;
}

static int cmd_fill(int argc, char **argv)
{
    uint8_t buf[4096];
    uint64_t size, pct = 50;
    int fd;

    if (argc < 3 || argc > 4)
        usage();
    size = num(argv[1]);
    rng_state = num(argv[2]);
    if (argc == 4)
        pct = num(argv[3]);
    fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        fprintf(stderr, "randio: %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    for (uint64_t off = 0; off < size; off += sizeof buf) {
        size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
        uint64_t r = rng_below(200);

        if (r >= 2 * pct)
            continue;
        gen(buf, n, (int)(r & 1));
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
            fprintf(stderr, "randio: %s: %s\n", argv[0], strerror(errno));
            return 1;
        }
    }
    if (close(fd) < 0) {
        fprintf(stderr, "randio: %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "data"))
        return cmd_data(argc - 2, argv + 2);
    if (!strcmp(argv[1], "plan"))
        return cmd_plan(argc - 2, argv + 2);
    if (!strcmp(argv[1], "fill"))
        return cmd_fill(argc - 2, argv + 2);
    usage();
    return 2;
}
