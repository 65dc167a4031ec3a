/* Per-image I/O counters kept by the worker. */
#ifndef QCOWD_STATS_H
#define QCOWD_STATS_H

#include <stdint.h>

#include "blkreq.h"

#define STATS_OPS 4             /* indexed by enum blk_op */
#define STATS_LAT_BUCKETS 32    /* bucket i: latency < 2^i microseconds */

struct io_stats {
    uint64_t ops[STATS_OPS];
    uint64_t bytes[STATS_OPS];
    uint64_t errors[STATS_OPS];
    uint64_t inflight;
    uint64_t bad_requests;      /* rejected by ring validation */
    uint64_t lat_hist[STATS_OPS][STATS_LAT_BUCKETS];
    uint64_t lat_total_us[STATS_OPS];
};

void stats_record(struct io_stats *s, enum blk_op op, uint64_t bytes, int status, uint64_t lat_ns);

/* Latency at quantile q (0..1) for op, in microseconds (upper bucket bound). */
uint64_t stats_quantile_us(const struct io_stats *s, enum blk_op op, double q);

const char *blk_op_name(enum blk_op op);

uint64_t now_ns(void);

#endif
