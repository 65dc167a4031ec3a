#include "config.h"

#include <time.h>

#include "stats.h"

uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t us)
{
    unsigned b = 0;

    while (b < STATS_LAT_BUCKETS - 1 && (UINT64_C(1) << b) <= us)
        b++;
    return b;
}

void stats_record(struct io_stats *s, enum blk_op op, uint64_t bytes, int status, uint64_t lat_ns)
{
    uint64_t us = lat_ns / 1000;

    if ((unsigned)op >= STATS_OPS)
        return;
    s->ops[op]++;
    if (status < 0) {
        s->errors[op]++;
        return;
    }
    s->bytes[op] += bytes;
    s->lat_hist[op][bucket_of(us)]++;
    s->lat_total_us[op] += us;
}

uint64_t stats_quantile_us(const struct io_stats *s, enum blk_op op, double q)
{
    uint64_t total = 0, seen = 0;

    for (unsigned b = 0; b < STATS_LAT_BUCKETS; b++)
        total += s->lat_hist[op][b];
    if (total == 0)
        return 0;
    for (unsigned b = 0; b < STATS_LAT_BUCKETS; b++) {
        seen += s->lat_hist[op][b];
        if ((double)seen >= q * (double)total)
            return UINT64_C(1) << b;
    }
    return UINT64_C(1) << (STATS_LAT_BUCKETS - 1);
}

const char *blk_op_name(enum blk_op op)
{
    static const char *const names[] = { "read", "write", "flush", "discard" };

    return (unsigned)op < STATS_OPS ? names[op] : "unknown";
}
