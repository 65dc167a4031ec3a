# The worker's data path: the libaio executor on its own, and a real worker
# process driven through its ring.
check_PROGRAMS += tests/worker/exec_random tests/worker/ring_random
tests_worker_exec_random_SOURCES = tests/worker/exec_random.c
tests_worker_exec_random_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/worker
tests_worker_exec_random_LDADD = daemon/worker/libqcowexec.la daemon/image/libqcowimage.la \
	daemon/common/libqcowdcommon.la $(AIO_LIBS)
tests_worker_ring_random_SOURCES = tests/worker/ring_random.c
tests_worker_ring_random_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
tests_worker_ring_random_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_worker_ring_random_LDADD = daemon/common/libqcowdcommon.la shm/libqcowring.la \
	daemon/image/libqcowimage.la $(JSONC_LIBS)

WORKER_TESTS = \
	tests/worker/exec-random.sh \
	tests/worker/ring-random.sh \
	tests/worker/ring-flush-kill.sh \
	tests/worker/fault-open.sh
EXTRA_DIST += $(WORKER_TESTS) tests/worker/lib.sh
