/* Rewriting a qcow file without leaks, its clusters in order (qcowctl
 * compact).  See qcow_compact.c and doc/qcow-format.md. */
#ifndef QCOWD_QCOW_COMPACT_H
#define QCOWD_QCOW_COMPACT_H

#include <stdint.h>

#include "qcow_format.h"

struct qcow_compact_result {
    uint64_t old_size;          /* bytes of the file before */
    uint64_t new_size;          /* and after */
    uint64_t l2_tables;
    uint64_t clusters;          /* data and compressed clusters copied */
};

/* Rewrite the qcow file at path in place (a copy beside it, then renamed
 * over it): L2 tables in L1 order, each followed by its clusters in guest
 * order, nothing unreferenced.  Refuses an image in use (QEMU's lock bytes,
 * which qcowd takes too), a block device, and corrupt entries (repair them
 * first).  Returns 0 or -errno with a message. */
int qcow_compact(const char *path, struct qcow_compact_result *res);

#endif
