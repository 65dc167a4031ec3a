#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>

#include "crypto_lib.h"
#include "error.h"

static struct crypto_lib lib;
static bool loaded;

#define RESOLVE(field, name) \
    ((lib.field = (__typeof__(lib.field))dlsym(handle, name)) != NULL)

const struct crypto_lib *crypto_lib(void)
{
    void *handle;

    if (loaded)
        return &lib;
    /* Never closed: what it allocated stays in use until exit. */
    if (!(handle = dlopen(LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL))) {
        qc_fail(-ELIBACC, "cannot load " LIBCRYPTO_SONAME " (AES and MD5): %s", dlerror());
        return NULL;
    }
    if (!RESOLVE(cipher_ctx_new, "EVP_CIPHER_CTX_new") ||
        !RESOLVE(cipher_ctx_free, "EVP_CIPHER_CTX_free") ||
        !RESOLVE(cipher_init_ex, "EVP_CipherInit_ex") ||
        !RESOLVE(cipher_ctx_set_padding, "EVP_CIPHER_CTX_set_padding") ||
        !RESOLVE(cipher_update, "EVP_CipherUpdate") ||
        !RESOLVE(aes_128_cbc, "EVP_aes_128_cbc") ||
        !RESOLVE(digest, "EVP_Digest") ||
        !RESOLVE(md5, "EVP_md5") ||
        !RESOLVE(md_ctx_new, "EVP_MD_CTX_new") ||
        !RESOLVE(md_ctx_free, "EVP_MD_CTX_free") ||
        !RESOLVE(digest_init_ex, "EVP_DigestInit_ex") ||
        !RESOLVE(digest_update, "EVP_DigestUpdate") ||
        !RESOLVE(digest_final_ex, "EVP_DigestFinal_ex")) {
        qc_fail(-ELIBACC, LIBCRYPTO_SONAME " lacks a function we use: %s", dlerror());
        return NULL;
    }
    loaded = true;
    return &lib;
}
