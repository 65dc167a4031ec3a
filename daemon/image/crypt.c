#include "config.h"

#include <errno.h>

#include "crypt.h"
#include "crypto_lib.h"
#include "qcow_format.h"
#include "util.h"

/* The key is expanded once, into one context per direction; a sector only
 * sets its IV.  The key itself is not kept. */
struct qcow_crypt {
    const struct crypto_lib *lib;
    EVP_CIPHER_CTX *enc, *dec;
};

static EVP_CIPHER_CTX *keyed_context(const struct crypto_lib *lib, const uint8_t key[16], int enc)
{
    EVP_CIPHER_CTX *ctx = lib->cipher_ctx_new();

    if (ctx && lib->cipher_init_ex(ctx, lib->aes_128_cbc(), NULL, key, NULL, enc) &&
        lib->cipher_ctx_set_padding(ctx, 0))
        return ctx;
    lib->cipher_ctx_free(ctx);
    return NULL;
}

int qcow_crypt_new(const uint8_t *password, size_t len, struct qcow_crypt **out)
{
    const struct crypto_lib *lib = crypto_lib();
    uint8_t key[16] = { 0 };
    struct qcow_crypt *c;

    if (!lib)
        return -ELIBACC;
    if (!(c = calloc(1, sizeof *c)))
        return -ENOMEM;
    c->lib = lib;
    memcpy(key, password, MIN(len, sizeof key));
    c->enc = keyed_context(lib, key, 1);
    c->dec = keyed_context(lib, key, 0);
    explicit_bzero(key, sizeof key);
    if (!c->enc || !c->dec) {
        qcow_crypt_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void qcow_crypt_free(struct qcow_crypt *c)
{
    if (!c)
        return;
    c->lib->cipher_ctx_free(c->enc);
    c->lib->cipher_ctx_free(c->dec);
    free(c);
}

static int crypt_sectors(const struct crypto_lib *lib, EVP_CIPHER_CTX *ctx, uint64_t sector,
                         uint8_t *buf, size_t len)
{
    for (size_t done = 0; done < len; done += QCOW_SECTOR_SIZE, sector++) {
        uint8_t iv[16] = { 0 };
        int outl = 0;

        for (int i = 0; i < 8; i++)
            iv[i] = (uint8_t)(sector >> (8 * i));
        /* No key: only the IV (and the chaining state) is reset. */
        if (!lib->cipher_init_ex(ctx, NULL, NULL, NULL, iv, -1) ||
            !lib->cipher_update(ctx, buf + done, &outl, buf + done, QCOW_SECTOR_SIZE) ||
            outl != QCOW_SECTOR_SIZE)
            return -EIO;
    }
    return 0;
}

int qcow_encrypt_sectors(struct qcow_crypt *c, uint64_t first_sector, uint8_t *buf, size_t len)
{
    return crypt_sectors(c->lib, c->enc, first_sector, buf, len);
}

int qcow_decrypt_sectors(struct qcow_crypt *c, uint64_t first_sector, uint8_t *buf, size_t len)
{
    return crypt_sectors(c->lib, c->dec, first_sector, buf, len);
}
