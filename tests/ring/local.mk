# Ring tests: ABI layout, Xen compatibility, the client library, a hostile
# client, and (with clang) a bounded libFuzzer run.  tests/local.mk adds
# $(RING_TESTS) to TESTS.
RING_TESTS = \
	tests/ring/test_abi \
	tests/ring/test_xen_compat \
	tests/ring/test_client \
	tests/ring/test_hostile \
	tests/ring/test_recovery \
	tests/ring/test_connect
check_PROGRAMS += \
	tests/ring/test_abi \
	tests/ring/test_xen_compat \
	tests/ring/test_client \
	tests/ring/test_hostile \
	tests/ring/test_recovery \
	tests/ring/test_connect

# The back end under test: ring_server and an in-memory disk.
RING_TEST_SERVER_SOURCES = \
	tests/ring/ring_test.h \
	tests/ring/fake_disk.h tests/ring/fake_disk.c \
	tests/ring/serve.h tests/ring/serve.c

tests_ring_test_abi_SOURCES = tests/ring/test_abi.c tests/ring/ring_test.h
tests_ring_test_abi_LDADD = shm/libqcowring.la

tests_ring_test_xen_compat_SOURCES = tests/ring/test_xen_compat.c \
	tests/ring/xen_client.h tests/ring/xen_client.c $(RING_TEST_SERVER_SOURCES)
tests_ring_test_xen_compat_LDADD = daemon/worker/libqcowringserver.la shm/libqcowring.la

tests_ring_test_client_SOURCES = tests/ring/test_client.c $(RING_TEST_SERVER_SOURCES)
tests_ring_test_client_LDADD = daemon/worker/libqcowringserver.la shm/libqcowring.la

tests_ring_test_hostile_SOURCES = tests/ring/test_hostile.c $(RING_TEST_SERVER_SOURCES)
tests_ring_test_hostile_LDADD = daemon/worker/libqcowringserver.la shm/libqcowring.la -lpthread

# ring_server.c built with a crash hook at every journal step.
tests_ring_test_recovery_SOURCES = tests/ring/test_recovery.c $(RING_TEST_SERVER_SOURCES) \
	daemon/worker/ring_server.h daemon/worker/ring_server_internal.h \
	daemon/worker/ring_server.c daemon/worker/ring_journal.c \
	daemon/worker/doorbell.h daemon/worker/doorbell.c
tests_ring_test_recovery_CPPFLAGS = $(AM_CPPFLAGS) -DRING_SERVER_CRASH_TEST
tests_ring_test_recovery_LDADD = shm/libqcowring.la

# qcowring_connect() against a fake qcowd that shuffles members.
tests_ring_test_connect_SOURCES = tests/ring/test_connect.c tests/ring/ring_test.h
tests_ring_test_connect_LDADD = shm/libqcowring.la $(JSONC_LIBS) -lpthread

# libFuzzer target: built with clang directly, run for a bounded time.
EXTRA_DIST += tests/ring/fuzz_ring.c tests/ring/run-fuzz.sh
if HAVE_CLANG
RING_TESTS += tests/ring/run-fuzz.sh
RING_FUZZ_SRCS = $(srcdir)/tests/ring/fuzz_ring.c $(srcdir)/daemon/worker/ring_server.c \
	$(srcdir)/daemon/worker/ring_journal.c $(srcdir)/daemon/worker/doorbell.c
tests/ring/fuzz_ring$(EXEEXT): $(RING_FUZZ_SRCS) $(srcdir)/daemon/worker/ring_server.h \
		$(srcdir)/daemon/worker/ring_server_internal.h $(srcdir)/daemon/worker/doorbell.h \
		$(srcdir)/shm/qcowring.h
	@$(MKDIR_P) tests/ring
	$(AM_V_CCLD)$(CLANG) -std=gnu11 -g -O1 -Wall -Wextra -Wno-unused-parameter \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-I$(top_builddir) -I$(top_srcdir) -I$(top_srcdir)/shm \
		-o $@ $(RING_FUZZ_SRCS)
tests/ring/run-fuzz.log: tests/ring/fuzz_ring$(EXEEXT)
CLEANFILES += tests/ring/fuzz_ring$(EXEEXT) tests/ring/fuzz-crash-*
endif
