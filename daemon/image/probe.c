/* Which image format a first sector announces.  A raw image's first sector
 * is its guest's: if a guest writes another format's header there, the
 * next program that probes the file (qcowd, QEMU) serves the file as that
 * format, with a backing file the guest chose (CVE-2008-2004).  QEMU's rule,
 * which qcowd follows: a raw image whose format was probed may not have its
 * first sector turned into any format QEMU recognises by its first 512
 * bytes; and a file said to be raw whose first sector is such a header is
 * not opened for writing. */
#include "config.h"

#include <string.h>

#include "image.h"
#include "util.h"

struct signature {
    const char *format;
    size_t offset;
    const char *bytes;
    size_t len;
};

#define SIG(fmt, off, text) { fmt, off, text, sizeof text - 1 }
static const struct signature signatures[] = {
    SIG("qcow", 0, "QFI\xfb"),                  /* qcow and qcow2 */
    SIG("qed", 0, "QED\0"),
    SIG("vmdk", 0, "KDMV"),
    SIG("vmdk", 0, "COWD"),
    SIG("vmdk", 0, "# Disk DescriptorFile"),
    SIG("vpc", 0, "conectix"),
    SIG("vhdx", 0, "vhdxfile"),
    SIG("vdi", 64, "\x7f\x10\xda\xbe"),
    SIG("luks", 0, "LUKS\xba\xbe"),
    SIG("bochs", 0, "Bochs Virtual HD Image"),
    SIG("parallels", 0, "WithoutFreeSpace"),
    SIG("parallels", 0, "WithouFreSpacExt"),
    SIG("cloop", 0, "#!/bin/sh\n#V2.0 Format\n"),
};
#undef SIG

const char *image_probe_header(const uint8_t *sector, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(signatures); i++) {
        const struct signature *s = &signatures[i];
        if (s->offset + s->len <= len && memcmp(sector + s->offset, s->bytes, s->len) == 0)
            return s->format;
    }
    return NULL;
}
