#include "config.h"

#include <errno.h>

#include "crypt.h"
#include "crypto_lib.h"
#include "qcow_format.h"
#include "util.h"

struct qcow_crypt {
    uint8_t key[16];
    const struct crypto_lib *lib;
    EVP_CIPHER_CTX *ctx;
};

int qcow_crypt_new(const uint8_t *password, size_t len, struct qcow_crypt **out)
{
    const struct crypto_lib *lib = crypto_lib();
    struct qcow_crypt *c;

    if (!lib)
        return -ELIBACC;
    if (!(c = calloc(1, sizeof *c)))
        return -ENOMEM;
    memcpy(c->key, password, MIN(len, sizeof c->key));
    c->lib = lib;
    c->ctx = lib->cipher_ctx_new();
    if (!c->ctx) {
        free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void qcow_crypt_free(struct qcow_crypt *c)
{
    if (!c)
        return;
    c->lib->cipher_ctx_free(c->ctx);
    explicit_bzero(c->key, sizeof c->key);
    free(c);
}

static int crypt_sectors(struct qcow_crypt *c, uint64_t sector, uint8_t *buf, size_t len, int enc)
{
    for (size_t done = 0; done < len; done += QCOW_SECTOR_SIZE, sector++) {
        uint8_t iv[16] = { 0 };
        int outl = 0;

        for (int i = 0; i < 8; i++)
            iv[i] = (uint8_t)(sector >> (8 * i));
        if (!c->lib->cipher_init_ex(c->ctx, c->lib->aes_128_cbc(), NULL, c->key, iv, enc) ||
            !c->lib->cipher_ctx_set_padding(c->ctx, 0) ||
            !c->lib->cipher_update(c->ctx, buf + done, &outl, buf + done, QCOW_SECTOR_SIZE) ||
            outl != QCOW_SECTOR_SIZE)
            return -EIO;
    }
    return 0;
}

int qcow_encrypt_sectors(struct qcow_crypt *c, uint64_t first_sector, uint8_t *buf, size_t len)
{
    return crypt_sectors(c, first_sector, buf, len, 1);
}

int qcow_decrypt_sectors(struct qcow_crypt *c, uint64_t first_sector, uint8_t *buf, size_t len)
{
    return crypt_sectors(c, first_sector, buf, len, 0);
}
