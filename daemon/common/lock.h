/* Image locks compatible with QEMU's: open file description locks on bytes
 * 100 + n ("holds permission n") and 200 + n ("does not share permission
 * n") of the image file.  A read-write holder takes "consistent read",
 * "write" and "resize" and shares neither write nor resize; a read-only
 * holder takes "consistent read" and does not share write; a backing file
 * is held like QEMU holds one: "consistent read", sharing neither write
 * nor resize.  So qemu-img and qemu-io refuse to write an image qcowd
 * serves or reads through, and qcowd refuses an image a QEMU process holds
 * for writing.
 *
 * The locks belong to the open file description: they last until its last
 * descriptor is closed, in whichever process that is. */
#ifndef QCOWD_LOCK_H
#define QCOWD_LOCK_H

enum image_lock_mode { IMAGE_LOCK_READ_WRITE, IMAGE_LOCK_READ_ONLY, IMAGE_LOCK_BACKING };

/* Take the locks of `mode` on fd, an open file description nobody else
 * shares (path names it in messages).  -EBUSY with a message when someone
 * else holds a conflicting lock. */
int image_lock_fd(int fd, const char *path, enum image_lock_mode mode);

/* Take IMAGE_LOCK_READ_WRITE's locks on fd, a file that is a backing file
 * of an image we serve, without the check for conflicts: its holder that
 * shares no writing is our own worker.  For a live commit. */
int image_lock_fd_beside_backing(int fd, const char *path);

/* fd holds IMAGE_LOCK_READ_WRITE's locks: keep only a backing file's (an
 * overlay now takes the writes).  0 or -errno. */
int image_lock_to_backing(int fd);

#endif
