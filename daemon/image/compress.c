#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <zlib.h>

#include "compress.h"

int qcow_inflate_cluster(const uint8_t *in, size_t in_len, uint8_t *out, size_t cluster_size)
{
    z_stream s = { 0 };
    int r;

    if (inflateInit2(&s, -12) != Z_OK)
        return -ENOMEM;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)in_len;
    s.next_out = out;
    s.avail_out = (uInt)cluster_size;
    r = inflate(&s, Z_FINISH);
    /* QEMU accepts a stream that fills the cluster even without its end
     * marker; so do we, but never a short one. */
    bool ok = (r == Z_STREAM_END || r == Z_BUF_ERROR) && s.avail_out == 0;
    inflateEnd(&s);
    return ok ? 0 : -EIO;
}

long qcow_deflate_cluster(const uint8_t *in, size_t cluster_size, uint8_t *out)
{
    z_stream s = { 0 };
    long len;
    int r;

    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)cluster_size;
    s.next_out = out;
    s.avail_out = (uInt)cluster_size;
    r = deflate(&s, Z_FINISH);
    len = (long)(cluster_size - s.avail_out);
    deflateEnd(&s);
    if (r != Z_STREAM_END || (size_t)len >= cluster_size)
        return 0;
    return len;
}
