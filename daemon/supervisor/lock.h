/* Image locks compatible with QEMU's (open file description locks on the
 * image file): a read-write holder takes the "consistent read", "write" and
 * "resize" permissions and shares neither write nor resize; a read-only
 * holder takes "consistent read" and does not share write.  So qemu-att and
 * qemu-io refuse to write an image qcowd serves, and qcowd refuses an image
 * a QEMU process holds for writing. */
#ifndef QCOWD_LOCK_H
#define QCOWD_LOCK_H

#include <stdbool.h>

/* Open path and take the locks; *fd keeps them until closed.  -EBUSY with
 * a message when someone else holds a conflicting lock. */
int image_lock(const char *path, bool read_only, int *fd);

#endif
