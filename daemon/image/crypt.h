/* QCOW v1 AES encryption: AES-128-CBC over each 512-byte sector on its own,
 * IV = guest sector number (64-bit little-endian) followed by 8 zero bytes. */
#ifndef QCOWD_CRYPT_H
#define QCOWD_CRYPT_H

#include <stddef.h>
#include <stdint.h>

struct qcow_crypt;

/* Key = the first 16 bytes of the password, zero-padded (QEMU's rule). */
int qcow_crypt_new(const uint8_t *password, size_t len, struct qcow_crypt **out);
void qcow_crypt_free(struct qcow_crypt *c);

/* Transform len bytes (a multiple of 512) in place; first_sector is the guest
 * sector number of buf[0].  Returns 0 or -EIO. */
int qcow_encrypt_sectors(struct qcow_crypt *c, uint64_t first_sector, uint8_t *buf, size_t len);
int qcow_decrypt_sectors(struct qcow_crypt *c, uint64_t first_sector, uint8_t *buf, size_t len);

#endif
