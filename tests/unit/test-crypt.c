/* AES-128-CBC per 512-byte sector, IV = guest sector number (little-endian)
 * then 8 zero bytes, key = first 16 bytes of the password zero-padded.
 * Checked against known answers computed with the openssl command line
 *   openssl enc -aes-128-cbc -nopad -K 71636f77642d746573742d6b65790000 \
 *       -iv 05000000000000000000000000000000 -in sector.bin
 * (sector.bin = bytes 0..511 mod 256; the key is "qcowd-test-key" padded),
 * and against OpenSSL's EVP interface for many sectors at once.  The key
 * schedule is expanded once per key, not once per sector: the test wraps
 * the EVP_CipherInit_ex the engine loaded (crypto_lib()) and counts the
 * calls that pass a key. */
#include "config.h"

#include <openssl/evp.h>

#include "crypt.h"
#include "crypto_lib.h"
#include "error.h"
#include "unit.h"

static const uint8_t password[] = "qcowd-test-key";

static unsigned long key_setups;    /* cipher inits given a key */
static __typeof__(EVP_CipherInit_ex) *real_cipher_init;

static int counting_cipher_init(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *impl,
                                const unsigned char *key, const unsigned char *iv, int enc)
{
    key_setups += key != NULL;
    return real_cipher_init(ctx, cipher, impl, key, iv, enc);
}

/* The engine's table of libcrypto functions is ours to wrap (it is const
 * only to the engine). */
static void count_key_setups(void)
{
    struct crypto_lib *lib = (struct crypto_lib *)crypto_lib();

    REQUIRE(lib);
    real_cipher_init = lib->cipher_init_ex;
    lib->cipher_init_ex = counting_cipher_init;
}

struct kat {
    uint64_t sector;
    const char *first16, *last16;
};

static const struct kat kats[] = {
    { 5, "fc46bcca8d85a95246254c9f495e0b4e", "45f68ff4d444a17f8d5741bb292b1018" },
    { UINT64_C(0x0102030405060708), "557a39164e84afe1f98869b88bf801e3", "ebd94f37f6f16f8c36f233c1cdf702a0" },
};

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void pattern(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)i;
}

static void test_known_answers(void)
{
    struct qcow_crypt *c = NULL;
    uint8_t buf[512], orig[512];
    char h[33];

    REQUIRE(qcow_crypt_new(password, sizeof password - 1, &c) == 0);
    for (size_t k = 0; k < sizeof kats / sizeof kats[0]; k++) {
        pattern(buf, sizeof buf);
        memcpy(orig, buf, sizeof buf);
        CHECK_OK(qcow_encrypt_sectors(c, kats[k].sector, buf, sizeof buf));
        hex(buf, 16, h);
        if (strcmp(h, kats[k].first16)) {
            fprintf(stderr, "sector %" PRIu64 ": first block %s, expected %s\n", kats[k].sector, h, kats[k].first16);
            unit_failures++;
        }
        hex(buf + 496, 16, h);
        if (strcmp(h, kats[k].last16)) {
            fprintf(stderr, "sector %" PRIu64 ": last block %s, expected %s\n", kats[k].sector, h, kats[k].last16);
            unit_failures++;
        }
        unit_checks += 2;
        CHECK_OK(qcow_decrypt_sectors(c, kats[k].sector, buf, sizeof buf));
        CHECK(memcmp(buf, orig, sizeof buf) == 0);
    }
    qcow_crypt_free(c);
}

/* One sector with EVP directly. */
static void evp_sector(const uint8_t key[16], uint64_t sector, const uint8_t *in, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t iv[16] = { 0 };
    int n = 0, m = 0;

    for (int i = 0; i < 8; i++)
        iv[i] = (uint8_t)(sector >> (8 * i));
    REQUIRE(ctx);
    REQUIRE(EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv) == 1);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    REQUIRE(EVP_EncryptUpdate(ctx, out, &n, in, 512) == 1);
    REQUIRE(EVP_EncryptFinal_ex(ctx, out + n, &m) == 1);
    REQUIRE(n + m == 512);
    EVP_CIPHER_CTX_free(ctx);
}

static void test_against_evp(void)
{
    /* Each sector on its own IV, across a 32-bit boundary of the number. */
    const uint64_t first = UINT64_C(0xfffffffe);
    enum { N = 6 };
    uint8_t key[16] = { 0 }, buf[N * 512], orig[N * 512], want[512];
    struct qcow_crypt *c = NULL;

    memcpy(key, password, sizeof password - 1);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    memcpy(orig, buf, sizeof buf);
    REQUIRE(qcow_crypt_new(password, sizeof password - 1, &c) == 0);
    CHECK_OK(qcow_encrypt_sectors(c, first, buf, sizeof buf));
    for (int s = 0; s < N; s++) {
        evp_sector(key, first + (uint64_t)s, orig + 512 * s, want);
        unit_checks++;
        if (memcmp(buf + 512 * s, want, 512)) {
            fprintf(stderr, "sector %" PRIu64 " differs from EVP\n", first + (uint64_t)s);
            unit_failures++;
        }
    }
    /* Decrypting a middle part alone works (sectors are independent). */
    CHECK_OK(qcow_decrypt_sectors(c, first + 2, buf + 1024, 1024));
    CHECK(memcmp(buf + 1024, orig + 1024, 1024) == 0);
    CHECK(memcmp(buf, orig, 1024) != 0);
    qcow_crypt_free(c);
}

/* Expanding the key costs more than encrypting a sector: it happens when the
 * key is given, never per sector.  Interleaved directions and sectors out
 * of order still get their own IV each (no chaining from the last call). */
static void test_key_expanded_once(void)
{
    enum { N = 64 };
    static uint8_t buf[N * 512], orig[N * 512], one[512];
    struct qcow_crypt *c = NULL;
    unsigned long before = key_setups;

    REQUIRE(qcow_crypt_new(password, sizeof password - 1, &c) == 0);
    CHECK(key_setups - before <= 2);            /* one per direction, at most */
    before = key_setups;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    memcpy(orig, buf, sizeof buf);
    CHECK_OK(qcow_encrypt_sectors(c, 1000, buf, sizeof buf));
    memcpy(one, orig + 7 * 512, 512);
    CHECK_OK(qcow_encrypt_sectors(c, 1007, one, 512));
    CHECK(memcmp(one, buf + 7 * 512, 512) == 0);
    CHECK_OK(qcow_decrypt_sectors(c, 1040, buf + 40 * 512, 24 * 512));
    CHECK_OK(qcow_decrypt_sectors(c, 1007, one, 512));
    CHECK(memcmp(one, orig + 7 * 512, 512) == 0);
    CHECK_OK(qcow_decrypt_sectors(c, 1000, buf, 40 * 512));
    CHECK(memcmp(buf, orig, sizeof buf) == 0);
    CHECK_U64(key_setups - before, 0);
    qcow_crypt_free(c);
}

/* Only the first 16 bytes of a password count; a short one is zero-padded. */
static void test_password_rules(void)
{
    static const uint8_t long_pw[] = "0123456789abcdefTAIL-IGNORED";
    static const uint8_t other_tail[] = "0123456789abcdefSOMETHING ELSE";
    static const uint8_t padded[16] = "abc";   /* "abc" and 13 zero bytes */
    struct qcow_crypt *a = NULL, *b = NULL;
    uint8_t x[512], y[512];

    REQUIRE(qcow_crypt_new(long_pw, sizeof long_pw - 1, &a) == 0);
    REQUIRE(qcow_crypt_new(other_tail, sizeof other_tail - 1, &b) == 0);
    pattern(x, sizeof x);
    pattern(y, sizeof y);
    CHECK_OK(qcow_encrypt_sectors(a, 9, x, sizeof x));
    CHECK_OK(qcow_encrypt_sectors(b, 9, y, sizeof y));
    CHECK(memcmp(x, y, sizeof x) == 0);
    qcow_crypt_free(a);
    qcow_crypt_free(b);

    REQUIRE(qcow_crypt_new((const uint8_t *)"abc", 3, &a) == 0);
    REQUIRE(qcow_crypt_new(padded, sizeof padded, &b) == 0);
    pattern(x, sizeof x);
    pattern(y, sizeof y);
    CHECK_OK(qcow_encrypt_sectors(a, 1, x, sizeof x));
    CHECK_OK(qcow_encrypt_sectors(b, 1, y, sizeof y));
    CHECK(memcmp(x, y, sizeof x) == 0);
    qcow_crypt_free(a);
    qcow_crypt_free(b);
}

int main(void)
{
    count_key_setups();
    test_known_answers();
    test_against_evp();
    test_password_rules();
    test_key_expanded_once();
    return unit_result("test-crypt");
}
