/* The ring ABI: every size and offset against the Xen blkif numbers in
 * ring-facts.md, ring sizing, the event-index arithmetic, and what
 * qcowring_create() leaves in the memfd. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcowring-client.h"
#include "ring_test.h"

static void test_shared_ring_layout(void)
{
    CHECK_EQ(offsetof(struct qcowring_sring, req_prod), 0);
    CHECK_EQ(offsetof(struct qcowring_sring, req_event), 4);
    CHECK_EQ(offsetof(struct qcowring_sring, rsp_prod), 8);
    CHECK_EQ(offsetof(struct qcowring_sring, rsp_event), 12);
    CHECK_EQ(offsetof(struct qcowring_sring, ring), 64);
    CHECK_EQ(sizeof(union qcowring_entry), 112);
}

static void test_request_layout(void)
{
    CHECK_EQ(sizeof(struct qcowring_request), 112);
    CHECK_EQ(offsetof(struct qcowring_request, operation), 0);
    CHECK_EQ(offsetof(struct qcowring_request, nr_segments), 1);
    CHECK_EQ(offsetof(struct qcowring_request, handle), 2);
    CHECK_EQ(offsetof(struct qcowring_request, id), 8);
    CHECK_EQ(offsetof(struct qcowring_request, sector_number), 16);
    CHECK_EQ(offsetof(struct qcowring_request, seg), 24);
    CHECK_EQ(QCOWRING_MAX_SEGMENTS, 11);
    CHECK_EQ(sizeof(struct qcowring_segment), 8);
    CHECK_EQ(offsetof(struct qcowring_segment, page), 0);
    CHECK_EQ(offsetof(struct qcowring_segment, first_sect), 4);
    CHECK_EQ(offsetof(struct qcowring_segment, last_sect), 5);
}

static void test_discard_indirect_response_layout(void)
{
    CHECK_EQ(sizeof(struct qcowring_request_discard), 32);
    CHECK_EQ(offsetof(struct qcowring_request_discard, flag), 1);
    CHECK_EQ(offsetof(struct qcowring_request_discard, id), 8);
    CHECK_EQ(offsetof(struct qcowring_request_discard, sector_number), 16);
    CHECK_EQ(offsetof(struct qcowring_request_discard, nr_sectors), 24);
    CHECK_EQ(sizeof(struct qcowring_request_indirect), 64);
    CHECK_EQ(offsetof(struct qcowring_request_indirect, indirect_op), 1);
    CHECK_EQ(offsetof(struct qcowring_request_indirect, nr_segments), 2);
    CHECK_EQ(offsetof(struct qcowring_request_indirect, id), 8);
    CHECK_EQ(offsetof(struct qcowring_request_indirect, sector_number), 16);
    CHECK_EQ(offsetof(struct qcowring_request_indirect, handle), 24);
    CHECK_EQ(offsetof(struct qcowring_request_indirect, indirect_pages), 28);
    CHECK_EQ(QCOWRING_MAX_INDIRECT_PAGES, 8);
    CHECK_EQ(QCOWRING_SEGMENTS_PER_INDIRECT_PAGE, 512);
    CHECK_EQ(sizeof(struct qcowring_response), 16);
    CHECK_EQ(offsetof(struct qcowring_response, id), 0);
    CHECK_EQ(offsetof(struct qcowring_response, operation), 8);
    CHECK_EQ(offsetof(struct qcowring_response, status), 10);
}

static void test_codes(void)
{
    CHECK_EQ(QCOWRING_OP_READ, 0);
    CHECK_EQ(QCOWRING_OP_WRITE, 1);
    CHECK_EQ(QCOWRING_OP_WRITE_BARRIER, 2);
    CHECK_EQ(QCOWRING_OP_FLUSH_DISKCACHE, 3);
    CHECK_EQ(QCOWRING_OP_DISCARD, 5);
    CHECK_EQ(QCOWRING_OP_INDIRECT, 6);
    CHECK_EQ(QCOWRING_RSP_OKAY, 0);
    CHECK_EQ(QCOWRING_RSP_ERROR, -1);
    CHECK_EQ(QCOWRING_RSP_EOPNOTSUPP, -2);
}

static void test_ring_sizing(void)
{
    CHECK_EQ(qcowring_entries_for_bytes(4096), 32);
    CHECK_EQ(qcowring_entries_for_bytes(64 + 112), 1);
    CHECK_EQ(qcowring_entries_for_bytes(64 + 111), 0);
    CHECK_EQ(qcowring_entries_for_bytes(64 + 3 * 112), 2);
    for (uint32_t order = 0; order <= QCOWRING_MAX_RING_PAGE_ORDER; order++) {
        uint64_t bytes = qcowring_ring_bytes(order);
        uint32_t n = qcowring_ring_entries(order);
        CHECK_EQ(n, 32u << order);
        CHECK(64 + (uint64_t)n * 112 <= bytes);       /* fits */
        CHECK(64 + (uint64_t)n * 2 * 112 > bytes);    /* largest power of two */
        CHECK_EQ(qcowring_data_offset(order), 4096 + bytes);
    }
    CHECK_EQ(qcowring_total_size(0, 10), 4096 + 4096 + 10 * 4096);
}

static void test_event_arithmetic(void)
{
    /* event in (old, new] notifies, in u32 arithmetic (wrap included). */
    CHECK(qcowring_event_crossed(0, 1, 1));
    CHECK(!qcowring_event_crossed(1, 2, 1));
    CHECK(qcowring_event_crossed(1, 5, 5));
    CHECK(qcowring_event_crossed(1, 5, 2));
    CHECK(!qcowring_event_crossed(1, 5, 6));
    CHECK(!qcowring_event_crossed(1, 5, 1));
    CHECK(qcowring_event_crossed(0xfffffffeu, 2, 0));
    CHECK(qcowring_event_crossed(0xfffffffeu, 2, 0xffffffffu));
    CHECK(!qcowring_event_crossed(0xfffffffeu, 2, 3));
    CHECK(!qcowring_event_crossed(7, 7, 7));
}

static void test_final_check(void)
{
    _Alignas(64) uint8_t mem[4096];
    struct qcowring_sring *s = (struct qcowring_sring *)mem;

    memset(mem, 0xaa, sizeof(mem));
    qcowring_sring_init(s);
    CHECK_EQ(s->req_prod, 0);
    CHECK_EQ(s->rsp_prod, 0);
    CHECK_EQ(s->req_event, 1);
    CHECK_EQ(s->rsp_event, 1);
    for (size_t i = 0; i < sizeof(s->pad); i++)
        CHECK_EQ(s->pad[i], 0);
    /* Nothing pending: the event index becomes consumer + 1. */
    CHECK(!qcowring_final_check_for_requests(s, 0));
    CHECK_EQ(s->req_event, 1);
    CHECK(qcowring_push_requests_and_check_notify(s, 0, 3));
    CHECK(qcowring_final_check_for_requests(s, 0));   /* pending: unchanged */
    CHECK_EQ(s->req_event, 1);
    CHECK(!qcowring_final_check_for_requests(s, 3));
    CHECK_EQ(s->req_event, 4);
    CHECK(qcowring_push_responses_and_check_notify(s, 0, 2));
    CHECK(!qcowring_final_check_for_responses(s, 2));
    CHECK_EQ(s->rsp_event, 3);
    CHECK(!qcowring_push_requests_and_check_notify(s, 3, 3));
    CHECK(qcowring_push_requests_and_check_notify(s, 3, 4));
}

static void check_created_info(const struct qcowring_info *i, const struct qcowring_params *p)
{
    CHECK(memcmp(i->magic, "QCOWRING", 8) == 0);
    CHECK_EQ(i->version_major, 1);
    CHECK_EQ(i->version_minor, 2);
    CHECK_EQ(i->info_size, 128);
    CHECK_EQ(i->page_size, 4096);
    CHECK_EQ(i->ring_page_order, p->ring_page_order);
    CHECK_EQ(i->ring_offset, 4096);
    CHECK_EQ(i->ring_entries, 32u << p->ring_page_order);
    CHECK_EQ(i->sector_size, 512);
    CHECK_EQ(i->capacity_sectors, p->capacity_sectors);
    CHECK_EQ(i->features, p->features | QCOWRING_F_PERSISTENT);
    CHECK_EQ(i->data_offset, 4096 + (4096u << p->ring_page_order));
    CHECK_EQ(i->data_pages, p->data_pages);
    CHECK_EQ(i->max_indirect_segments, p->max_indirect_segments);
    CHECK_EQ(i->server_state, QCOWRING_STATE_RUNNING);
    CHECK_EQ(i->total_size, i->data_offset + (uint64_t)p->data_pages * 4096);
}

static void test_create(void)
{
    struct qcowring_params p = { .capacity_sectors = 2048, .ring_page_order = 2,
                                 .data_pages = 40, .features = QCOWRING_F_INDIRECT |
                                 QCOWRING_F_FLUSH, .max_indirect_segments = 64 };
    struct qcowring_fds fds;
    const struct qcowring_sring *s;
    struct stat st;
    uint8_t *m;

    CHECK_EQ(qcowring_create(&p, &fds), 0);
    CHECK_EQ(fstat(fds.memfd, &st), 0);
    CHECK_EQ(st.st_size, 4096 + 4 * 4096 + 40 * 4096);
    CHECK_EQ(fcntl(fds.memfd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    CHECK(fcntl(fds.req_eventfd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fds.rsp_eventfd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fds.memfd, F_GETFD) & FD_CLOEXEC);
    CHECK(ftruncate(fds.memfd, 4096) < 0 && errno == EPERM);
    m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fds.memfd, 0);
    CHECK(m != MAP_FAILED);
    check_created_info((const struct qcowring_info *)m, &p);
    s = (const struct qcowring_sring *)(m + 4096);
    CHECK(s->req_prod == 0 && s->rsp_prod == 0 && s->req_event == 1 && s->rsp_event == 1);
    munmap(m, (size_t)st.st_size);
    qcowring_close_fds(&fds);
    CHECK_EQ(fds.memfd, -1);
}

static void test_create_rejects(void)
{
    struct qcowring_params ok = { .capacity_sectors = 8, .data_pages = 1 };
    struct qcowring_params p;
    struct qcowring_fds fds;

    p = ok; p.ring_page_order = QCOWRING_MAX_RING_PAGE_ORDER + 1;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
    p = ok; p.data_pages = 0;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
    p = ok; p.features = QCOWRING_F_INDIRECT; p.max_indirect_segments = 11;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
    p = ok; p.features = QCOWRING_F_INDIRECT; p.max_indirect_segments = 4097;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
    p = ok; p.max_indirect_segments = 64;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
    p = ok; p.features = 1ull << 40;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
    p = ok; p.capacity_sectors = UINT64_MAX;
    CHECK_EQ(qcowring_create(&p, &fds), -EINVAL);
}

int main(void)
{
    test_shared_ring_layout();
    test_request_layout();
    test_discard_indirect_response_layout();
    test_codes();
    test_ring_sizing();
    test_event_arithmetic();
    test_final_check();
    test_create();
    test_create_rejects();
    return 0;
}
