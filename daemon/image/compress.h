/* QCOW v1 compressed clusters: raw deflate (no zlib header), 4 KiB window. */
#ifndef QCOWD_COMPRESS_H
#define QCOWD_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* Inflate in_len bytes into exactly cluster_size bytes of out.  Returns 0, or
 * -EIO when the stream is corrupt or does not give exactly one cluster. */
int qcow_inflate_cluster(const uint8_t *in, size_t in_len, uint8_t *out, size_t cluster_size);

/* Deflate one cluster into out (capacity cluster_size).  Returns the
 * compressed length, 0 when it would not be smaller than the cluster (store
 * it uncompressed), or -errno. */
long qcow_deflate_cluster(const uint8_t *in, size_t cluster_size, uint8_t *out);

#endif
