/* The QCOW v1 header: encode/decode round trip against hand-written bytes,
 * the Xen extension header, compressed-entry helpers, the Xen L1 checksum,
 * and qcow_header_validate on good and bad headers. */
#include "config.h"

#include <errno.h>

#include "error.h"
#include "qcow_format.h"
#include "unit.h"

static const char *PATH = "/images/unit-test.qcow";

static void test_round_trip(void)
{
    static const uint8_t want[QCOW_HEADER_SIZE] = {
        0x51, 0x46, 0x49, 0xfb,                         /* magic */
        0x00, 0x00, 0x00, 0x01,                         /* version */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, /* backing offset 48 */
        0x00, 0x00, 0x00, 0x0b,                         /* backing length 11 */
        0x01, 0x02, 0x03, 0x04,                         /* mtime */
        0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, /* size */
        0x0c, 0x09, 0x00, 0x00,                         /* cluster_bits, l2_bits, pad */
        0x00, 0x00, 0x00, 0x01,                         /* AES */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, /* L1 at 64 */
    };
    struct qcow_header h = {
        .magic = QCOW_MAGIC, .version = 1, .backing_offset = 48, .backing_len = 11,
        .mtime = 0x01020304, .size = UINT64_C(0x010203040506), .cluster_bits = 12,
        .l2_bits = 9, .crypt_method = QCOW_CRYPT_AES, .l1_offset = 64,
    };
    struct qcow_header d;
    uint8_t raw[QCOW_HEADER_SIZE];

    memset(raw, 0xee, sizeof raw);
    qcow_header_encode(&h, raw);
    CHECK(memcmp(raw, want, sizeof raw) == 0);
    memset(&d, 0x55, sizeof d);
    qcow_header_decode(want, &d);
    CHECK_U64(d.magic, QCOW_MAGIC);
    CHECK_U64(d.version, 1);
    CHECK_U64(d.backing_offset, 48);
    CHECK_U64(d.backing_len, 11);
    CHECK_U64(d.mtime, 0x01020304);
    CHECK_U64(d.size, UINT64_C(0x010203040506));
    CHECK_U64(d.cluster_bits, 12);
    CHECK_U64(d.l2_bits, 9);
    CHECK_U64(d.crypt_method, 1);
    CHECK_U64(d.l1_offset, 64);

    /* Every field at its extreme survives a round trip. */
    h = (struct qcow_header){
        .magic = UINT32_MAX, .version = UINT32_MAX, .backing_offset = UINT64_MAX,
        .backing_len = UINT32_MAX, .mtime = UINT32_MAX, .size = UINT64_MAX,
        .cluster_bits = 255, .l2_bits = 255, .crypt_method = UINT32_MAX, .l1_offset = UINT64_MAX,
    };
    qcow_header_encode(&h, raw);
    CHECK(raw[34] == 0 && raw[35] == 0);        /* padding stays zero */
    qcow_header_decode(raw, &d);
    CHECK(d.magic == h.magic && d.version == h.version && d.backing_offset == h.backing_offset &&
          d.backing_len == h.backing_len && d.mtime == h.mtime && d.size == h.size &&
          d.cluster_bits == h.cluster_bits && d.l2_bits == h.l2_bits &&
          d.crypt_method == h.crypt_method && d.l1_offset == h.l1_offset);
}

static void test_xen(void)
{
    static const uint8_t want[QCOW_XEN_HEADER_SIZE] = {
        0x58, 0x45, 0x4e, 0xfb, 0xde, 0xad, 0xbe, 0xef,
        0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03,
    };
    struct qcow_xen_header x = { .present = true, .checksum = 0xdeadbeef,
                                 .min_cluster_alloc = 512, .flags = 3 }, d;
    uint8_t raw[QCOW_XEN_HEADER_SIZE];

    qcow_xen_header_encode(&x, raw);
    CHECK(memcmp(raw, want, sizeof raw) == 0);
    qcow_xen_header_decode(want, &d);
    CHECK(d.present);
    CHECK_U64(d.checksum, 0xdeadbeef);
    CHECK_U64(d.min_cluster_alloc, 512);
    CHECK_U64(d.flags, 3);
    raw[0] = 'Y';
    qcow_xen_header_decode(raw, &d);
    CHECK(!d.present);
}

/* MD5 of 00 00 00 00 00 00 10 00 + 8 zero bytes (an L1 of two entries, the
 * first pointing at 4096) is 71ce047b7902556cfda08d3cc7684189 (`openssl
 * md5`).  blktap stores the first four digest bytes read as a little-endian
 * integer. */
static void test_xen_checksum(void)
{
    uint8_t l1[16] = { 0, 0, 0, 0, 0, 0, 0x10, 0 };

    CHECK_U64(qcow_xen_l1_checksum(l1, sizeof l1), 0x7b04ce71);
}

static void test_compressed_entries(void)
{
    for (unsigned cb = QCOW_MIN_CLUSTER_BITS; cb <= QCOW_MAX_CLUSTER_BITS; cb++) {
        struct qcow_header h = { .magic = QCOW_MAGIC, .version = 1, .size = 1 << 20,
                                 .cluster_bits = (uint8_t)cb, .l2_bits = 9, .l1_offset = 48 };
        struct qcow_geometry g;
        uint64_t off = (UINT64_C(1) << (63 - cb)) - 512;   /* the largest offset that fits */
        uint32_t len = (UINT32_C(1) << cb) - 1;            /* the longest stream */
        uint64_t e;

        CHECK_OK(qcow_header_validate(PATH, &h, false, 1 << 20, &g));
        CHECK_U64(g.compressed_size_shift, 63 - cb);
        CHECK_U64(g.compressed_offset_mask, (UINT64_C(1) << (63 - cb)) - 1);
        e = qcow_compressed_entry(&g, off, len);
        CHECK(e & QCOW_OFLAG_COMPRESSED);
        CHECK_U64(qcow_compressed_offset(&g, e), off);
        CHECK_U64(qcow_compressed_length(&g, e), len);
        e = qcow_compressed_entry(&g, 4096, 100);
        CHECK_U64(qcow_compressed_offset(&g, e), 4096);
        CHECK_U64(qcow_compressed_length(&g, e), 100);
    }
}

/* A valid header: 64 MiB, 4 KiB clusters, 512-entry L2 tables, L1 at 48. */
static struct qcow_header good(void)
{
    return (struct qcow_header){ .magic = QCOW_MAGIC, .version = 1, .size = UINT64_C(64) << 20,
                                 .cluster_bits = 12, .l2_bits = 9, .l1_offset = 48 };
}

#define GOOD_FILE (48 + 32 * 8)

static void accept(const char *what, struct qcow_header h, bool xen, uint64_t file_size)
{
    struct qcow_geometry g;
    int r;

    qc_clear_error();
    r = qcow_header_validate(PATH, &h, xen, file_size, &g);
    unit_checks++;
    if (r != 0) {
        fprintf(stderr, "%s: refused (%d: %s), expected accepted\n", what, r, qc_error_message(r));
        unit_failures++;
    }
}

static void refuse(const char *what, struct qcow_header h, bool xen, uint64_t file_size,
                   int want_err, const char *fragment)
{
    struct qcow_geometry g;
    const char *m;
    int r;

    qc_clear_error();
    r = qcow_header_validate(PATH, &h, xen, file_size, &g);
    m = qc_error_message(r);
    unit_checks++;
    if (r != want_err) {
        fprintf(stderr, "%s: returned %d (%s), expected %d\n", what, r, r ? m : "accepted", want_err);
        unit_failures++;
        return;
    }
    unit_checks++;
    if (!strstr(m, PATH) || !strstr(m, fragment)) {
        fprintf(stderr, "%s: message \"%s\" should name %s and say \"%s\"\n", what, m, PATH, fragment);
        unit_failures++;
    }
}

static void test_validate(void)
{
    struct qcow_header h;
    struct qcow_geometry g;

    h = good();
    CHECK_OK(qcow_header_validate(PATH, &h, false, GOOD_FILE, &g));
    CHECK_U64(g.cluster_size, 4096);
    CHECK_U64(g.l2_entries, 512);
    CHECK_U64(g.l2_bytes, 4096);
    CHECK_U64(g.shift, 21);
    CHECK_U64(g.l1_entries, 32);
    CHECK_U64(g.l1_bytes, 256);
    CHECK_U64(qcow_front_metadata_end(&h, &g), 48 + 256);

    /* Boundaries that are allowed. */
    h = good(); h.size = 2; accept("size 2", h, false, GOOD_FILE);
    h = good(); h.size = (UINT64_C(64) << 20) + 512; accept("size not a cluster multiple", h, false, GOOD_FILE + 8);
    h = good(); h.cluster_bits = 9; h.size = 1 << 20; accept("cluster_bits 9", h, false, GOOD_FILE);
    h = good(); h.cluster_bits = 16; accept("cluster_bits 16", h, false, GOOD_FILE);
    h = good(); h.l2_bits = 6; accept("l2_bits 6", h, false, 48 + 8 * 256);
    h = good(); h.l2_bits = 13; accept("l2_bits 13", h, false, GOOD_FILE);
    h = good(); h.crypt_method = QCOW_CRYPT_AES; accept("AES", h, false, GOOD_FILE);
    h = good(); h.backing_offset = 48; h.backing_len = 1023; h.l1_offset = 1072;
    accept("backing name of 1023 bytes", h, false, 1072 + 256);
    h = good(); h.l1_offset = 4096; accept("Xen layout", h, true, 4096 + 256);
    h = good(); h.l1_offset = 4096; accept("L1 at 4096 without Xen", h, false, 4096 + 256);
    h = good(); accept("L1 ending exactly at the end of the file", h, false, GOOD_FILE);

    /* Fields out of range. */
    h = good(); h.magic ^= 1; refuse("bad magic", h, false, GOOD_FILE, -EINVAL, "magic");
    h = good(); h.version = 0; refuse("version 0", h, false, GOOD_FILE, -EINVAL, "version");
    h = good(); h.version = 2; refuse("version 2", h, false, GOOD_FILE, -EINVAL, "version");
    h = good(); h.size = 0; refuse("size 0", h, false, GOOD_FILE, -EINVAL, "size");
    h = good(); h.size = 1; refuse("size 1", h, false, GOOD_FILE, -EINVAL, "size");
    h = good(); h.cluster_bits = 8; refuse("cluster_bits 8", h, false, GOOD_FILE, -EINVAL, "cluster_bits");
    h = good(); h.cluster_bits = 17; refuse("cluster_bits 17", h, false, GOOD_FILE, -EINVAL, "cluster_bits");
    h = good(); h.l2_bits = 5; refuse("l2_bits 5", h, false, GOOD_FILE, -EINVAL, "l2_bits");
    h = good(); h.l2_bits = 14; refuse("l2_bits 14", h, false, GOOD_FILE, -EINVAL, "l2_bits");
    h = good(); h.crypt_method = 2; refuse("crypt method 2", h, false, GOOD_FILE, -EINVAL, "crypt");
    h = good(); h.size = UINT64_MAX - 4096; refuse("size overflow", h, false, GOOD_FILE, -EFBIG, "size");
    h = good(); h.size = UINT64_MAX; refuse("size UINT64_MAX", h, false, GOOD_FILE, -EFBIG, "size");
    h = good(); h.size = UINT64_C(1) << 62; refuse("L1 too large", h, false, GOOD_FILE, -EFBIG, "L1");

    /* The L1 table. */
    h = good(); refuse("L1 one byte past the end", h, false, GOOD_FILE - 1, -EINVAL, "L1");
    h = good(); h.l1_offset = UINT64_MAX - 7; refuse("L1 offset near 2^64", h, false, GOOD_FILE, -EINVAL, "L1");
    h = good(); h.l1_offset = 1 << 20; refuse("L1 past the end", h, false, GOOD_FILE, -EINVAL, "L1");
    h = good(); h.l1_offset = 40; refuse("L1 in the header", h, false, GOOD_FILE, -EINVAL, "L1");
    h = good(); h.l1_offset = 0; refuse("L1 at 0", h, false, GOOD_FILE, -EINVAL, "L1");
    h = good(); refuse("L1 over the Xen header", h, true, GOOD_FILE, -EINVAL, "L1");

    /* The backing file name. */
    h = good(); h.backing_offset = 48; h.backing_len = 1024; h.l1_offset = 1072;
    refuse("backing name of 1024 bytes", h, false, 1072 + 256, -EINVAL, "backing");
    h = good(); h.backing_offset = 0; h.backing_len = 10;
    refuse("backing length without offset", h, false, GOOD_FILE, -EINVAL, "backing");
    h = good(); h.backing_offset = GOOD_FILE - 4; h.backing_len = 10;
    refuse("backing name past the end", h, false, GOOD_FILE, -EINVAL, "backing");
    h = good(); h.backing_offset = UINT64_MAX - 2; h.backing_len = 10;
    refuse("backing offset near 2^64", h, false, GOOD_FILE, -EINVAL, "backing");
    h = good(); h.backing_offset = 40; h.backing_len = 4; h.l1_offset = 56;
    refuse("backing name in the header", h, false, 56 + 256, -EINVAL, "backing");
    h = good(); h.backing_offset = 48; h.backing_len = 16; h.l1_offset = 56;
    refuse("backing name over the L1 table", h, false, 56 + 256, -EINVAL, "backing");
    h = good(); h.backing_offset = 300; h.backing_len = 8;
    refuse("backing name inside the L1 table", h, false, GOOD_FILE + 100, -EINVAL, "backing");
}

/* The entry rules every reader shares: 4 KiB clusters, front up to 8192,
 * a file of 65536 bytes. */
static void test_entry_faults(void)
{
    struct qcow_header h = good();
    struct qcow_geometry g;
    struct qcow_span s;
    const struct qcow_layout front = { .front_end = 8192 };

    CHECK_OK(qcow_header_validate(PATH, &h, false, GOOD_FILE, &g));
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, 61440, &s) == QCOW_FAULT_NONE);
    CHECK_U64(s.start, 61440);
    CHECK_U64(s.len, 4096);
    /* Starts inside the file, runs past its end: the file was cut short. */
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, 63488, &s) == QCOW_FAULT_PAST_EOF);
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, 65536, &s) == QCOW_FAULT_PAST_EOF);
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, UINT64_C(1) << 62, &s) == QCOW_FAULT_PAST_EOF);
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, 8192 + 100, &s) == QCOW_FAULT_MISALIGNED);
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, 4096, &s) == QCOW_FAULT_IN_FRONT);
    /* Compressed: length 0, inside, past the end. */
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, qcow_compressed_entry(&g, 9000, 0), &s) ==
          QCOW_FAULT_EMPTY);
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, qcow_compressed_entry(&g, 9000, 500), &s) ==
          QCOW_FAULT_NONE);
    CHECK(s.compressed && s.start == 9000 && s.len == 500);
    CHECK(qcow_l2_entry_fault(&g, &front, 65536, qcow_compressed_entry(&g, 65400, 500), &s) ==
          QCOW_FAULT_PAST_EOF);
    /* L1 entries name a whole L2 table (4096 bytes here). */
    CHECK(qcow_l1_entry_fault(&g, &front, 65536, 61440, &s) == QCOW_FAULT_NONE);
    CHECK(qcow_l1_entry_fault(&g, &front, 65536, 62976, &s) == QCOW_FAULT_PAST_EOF);
    CHECK(qcow_l1_entry_fault(&g, &front, 65536, 8192 | QCOW_OFLAG_COMPRESSED, &s) ==
          QCOW_FAULT_MISALIGNED);
}

/* Where the front ends, and the pieces a resize or rebase detached. */
static void test_layout(void)
{
    struct qcow_header h = good();
    struct qcow_geometry g;
    struct qcow_layout lay;
    struct qcow_span s;

    CHECK_OK(qcow_header_validate(PATH, &h, false, GOOD_FILE, &g));
    /* QEMU's layout: the L1 right after the header. */
    qcow_layout_compute(&h, false, g.l1_bytes, &lay);
    CHECK_U64(lay.front_end, 48 + 256);
    CHECK(!qcow_l1_detached(&lay) && lay.name_end == 0);
    CHECK_U64(qcow_front_bytes_end(&h, &g, false, &lay), 48 + 256);
    /* blktap's: a backing name, the L1 at the next 4 KiB boundary. */
    h.backing_offset = 64;
    h.backing_len = 100;
    h.l1_offset = 4096;
    qcow_layout_compute(&h, true, g.l1_bytes, &lay);
    CHECK_U64(lay.front_end, 4096 + 256);
    CHECK(!qcow_l1_detached(&lay) && lay.name_end == 0);
    /* A moved L1 table: detached; the space before it is the file's. */
    h = good();
    h.l1_offset = 1 << 20;
    qcow_layout_compute(&h, false, g.l1_bytes, &lay);
    CHECK_U64(lay.front_end, 48);
    CHECK(qcow_l1_detached(&lay));
    CHECK_U64(lay.l1_start, 1 << 20);
    CHECK_U64(lay.l1_end, (1 << 20) + 256);
    CHECK_U64(qcow_front_bytes_end(&h, &g, false, &lay), 48);
    CHECK(qcow_l2_entry_fault(&g, &lay, 2 << 20, 4096, &s) == QCOW_FAULT_NONE);
    CHECK(qcow_l2_entry_fault(&g, &lay, 2 << 20, (1 << 20) - 2048, &s) == QCOW_FAULT_IN_FRONT);
    CHECK(qcow_l2_entry_fault(&g, &lay, 2 << 20, (1 << 20) + 4096, &s) == QCOW_FAULT_NONE);
    CHECK(qcow_l1_entry_fault(&g, &lay, 2 << 20, 1 << 20, &s) == QCOW_FAULT_IN_FRONT);
    CHECK(qcow_layout_detached_min(48) == 4096 + 512);
    /* A moved backing name, the L1 still in the front. */
    h = good();
    h.backing_offset = 1 << 20;
    h.backing_len = 700;
    qcow_layout_compute(&h, false, g.l1_bytes, &lay);
    CHECK_U64(lay.front_end, 48 + 256);
    CHECK(!qcow_l1_detached(&lay));
    CHECK_U64(lay.name_start, 1 << 20);
    CHECK_U64(lay.name_end, (1 << 20) + 700);
    CHECK(qcow_l2_entry_fault(&g, &lay, 2 << 20, (1 << 20) + 512, &s) == QCOW_FAULT_IN_FRONT);
    CHECK(qcow_l2_entry_fault(&g, &lay, 2 << 20, (1 << 20) + 1024, &s) == QCOW_FAULT_NONE);
}

/* blktap's L1: round_up(size, 2^shift) entries, within its int sizes. */
static void test_blktap_l1(void)
{
    struct qcow_header h = good();
    uint64_t n;

    h.size = UINT64_C(1) << 20;
    h.l1_offset = 4096;
    CHECK(qcow_blktap_l1_entries(&h, &n));
    CHECK_U64(n, UINT64_C(2) << 20);            /* one 2 MiB span, as entries */
    h.size = UINT64_C(254) << 20;
    CHECK(qcow_blktap_l1_entries(&h, &n));
    CHECK_U64(n, UINT64_C(254) << 20);
    h.size = UINT64_C(256) << 20;
    CHECK(!qcow_blktap_l1_entries(&h, &n));
    /* The guest sees whole sectors, as QEMU shows it. */
    h.size = 1000001;
    CHECK_U64(qcow_virtual_size(&h), 999936);
}

int main(void)
{
    test_round_trip();
    test_xen();
    test_xen_checksum();
    test_compressed_entries();
    test_validate();
    test_entry_faults();
    test_layout();
    test_blktap_l1();
    return unit_result("test-header");
}
