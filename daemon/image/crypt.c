#include "config.h"

#include <errno.h>
#include <openssl/evp.h>

#include "crypt.h"
#include "qcow_format.h"
#include "util.h"

struct qcow_crypt {
    uint8_t key[16];
    EVP_CIPHER_CTX *ctx;
};

int qcow_crypt_new(const uint8_t *password, size_t len, struct qcow_crypt **out)
{
    struct qcow_crypt *c = calloc(1, sizeof *c);

    if (!c)
        return -ENOMEM;
    memcpy(c->key, password, MIN(len, sizeof c->key));
    c->ctx = EVP_CIPHER_CTX_new();
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
    EVP_CIPHER_CTX_free(c->ctx);
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
        if (!EVP_CipherInit_ex(c->ctx, EVP_aes_128_cbc(), NULL, c->key, iv, enc) ||
            !EVP_CIPHER_CTX_set_padding(c->ctx, 0) ||
            !EVP_CipherUpdate(c->ctx, buf + done, &outl, buf + done, QCOW_SECTOR_SIZE) ||
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
