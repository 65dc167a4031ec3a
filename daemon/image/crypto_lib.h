/* libcrypto, loaded when first needed.  Linked the usual way, every process
 * of ours would map and relocate it at start: its RELRO segment alone is
 * about 400 KiB of private memory in each qcowd-worker, most of an idle
 * worker's cost, while only encrypted images (AES) and the Xen header's
 * checksum (MD5) use it. */
#ifndef QCOWD_CRYPTO_LIB_H
#define QCOWD_CRYPTO_LIB_H

#include <openssl/evp.h>

struct crypto_lib {
    __typeof__(EVP_CIPHER_CTX_new) *cipher_ctx_new;
    __typeof__(EVP_CIPHER_CTX_free) *cipher_ctx_free;
    __typeof__(EVP_CipherInit_ex) *cipher_init_ex;
    __typeof__(EVP_CIPHER_CTX_set_padding) *cipher_ctx_set_padding;
    __typeof__(EVP_CipherUpdate) *cipher_update;
    __typeof__(EVP_aes_128_cbc) *aes_128_cbc;
    __typeof__(EVP_Digest) *digest;
    __typeof__(EVP_md5) *md5;
    /* MD5 in pieces: the Xen checksum of a long L1 streams its zeros. */
    __typeof__(EVP_MD_CTX_new) *md_ctx_new;
    __typeof__(EVP_MD_CTX_free) *md_ctx_free;
    __typeof__(EVP_DigestInit_ex) *digest_init_ex;
    __typeof__(EVP_DigestUpdate) *digest_update;
    __typeof__(EVP_DigestFinal_ex) *digest_final_ex;
};

/* The functions, loading the library on the first call; NULL when it
 * cannot be loaded (the reason in qc_error_message()). */
const struct crypto_lib *crypto_lib(void);

#endif
