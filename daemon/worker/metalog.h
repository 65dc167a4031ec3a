/* The metadata log: allocations a worker committed (their data written, the
 * L2 entry only in its cache) and has not yet written back.  It lives in
 * memory the supervisor keeps across workers, so when a worker dies the next
 * one adopts these clusters instead of losing acknowledged writes; the next
 * writeback then makes them durable in the usual safe order.
 *
 * Entries are appended at tail; a writeback that started when the tail was
 * at P releases everything before P when it completes.  Replaying an entry
 * twice is harmless. */
#ifndef QCOWD_METALOG_H
#define QCOWD_METALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metalog;

/* Bytes of memory a log of `entries` entries needs. */
size_t metalog_size(uint32_t entries);

/* Use mem (size bytes, from metalog_size): fresh when it is all zeros,
 * else the log an earlier worker left.  -EINVAL when it is neither. */
int metalog_attach(void *mem, size_t size, struct metalog **out);
void metalog_free(struct metalog *log);

/* Append; -ENOSPC when the log is full (write back first). */
int metalog_append(struct metalog *log, uint64_t cluster_guest_off, uint64_t host_off);

/* More than a quarter full: time for a writeback. */
bool metalog_wants_writeback(const struct metalog *log);

/* The position a writeback starting now covers, and its release. */
uint64_t metalog_position(const struct metalog *log);
void metalog_release(struct metalog *log, uint64_t position);

/* A flush failed with err (< 0): the entries can never be written back, and
 * no worker that takes the log over may flush as if nothing happened. */
void metalog_mark_flush_failed(struct metalog *log, int err);
/* 0, or the error a flush failed with while this log was in use. */
int metalog_flush_error(const struct metalog *log);

/* Call fn for every entry still in the log, oldest first. */
int metalog_replay(struct metalog *log, int (*fn)(void *opaque, uint64_t guest, uint64_t host),
                   void *opaque);

#endif
