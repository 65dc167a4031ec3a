# Tests (see tests/README.md): C unit tests of the engine, interop tests
# against qemu-img/qemu-io in both directions, malformed images, a libFuzzer
# target.  tests/cli/, tests/ring/ and tests/worker/ keep their own local.mk
# (CLI_TESTS, RING_TESTS, WORKER_TESTS), added to TESTS here.

include tests/cli/local.mk
include tests/ring/local.mk
include tests/worker/local.mk

TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = bash
AM_TESTS_ENVIRONMENT = \
	QCOWCTL='$(abs_top_builddir)/ctl/qcowctl'; export QCOWCTL; \
	QEMU_IMG='$(QEMU_IMG)'; export QEMU_IMG; \
	QEMU_IO='$(QEMU_IO)'; export QEMU_IO; \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	TEST_TOOLS='$(abs_top_builddir)/tests/tools'; export TEST_TOOLS; \
	QCOWD_SECCOMP='$(WITH_SECCOMP)'; export QCOWD_SECCOMP; \
	PACKAGE_VERSION='$(PACKAGE_VERSION)'; export PACKAGE_VERSION; \
	CLANG='$(CLANG)'; export CLANG;

EXTRA_DIST += tests/README.md tests/lib/common.sh tests/lib/wait.sh tests/lib/faults.sh tests/lib/sandbox-kills.sh tests/lib/qemu-lock.sh tests/lib/xorshift.h

# ---- helper programs --------------------------------------------------------
check_PROGRAMS += tests/tools/randio tests/tools/mkbad tests/tools/blktap-model
tests_tools_randio_SOURCES = tests/tools/randio.c
tests_tools_blktap_model_SOURCES = tests/tools/blktap-model.c
tests_tools_blktap_model_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS) $(CRYPTO_CFLAGS)
tests_tools_blktap_model_LDADD = $(ZLIB_LIBS) $(CRYPTO_LIBS)
tests_tools_mkbad_SOURCES = tests/tools/mkbad.c
tests_tools_mkbad_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS)
tests_tools_mkbad_LDADD = $(ZLIB_LIBS)
# The fault-injection shim (LD_PRELOAD): a shared object built for the tests
# only, without the sanitizers (it is preloaded ahead of their runtime).
check_LTLIBRARIES += tests/tools/qcowfault.la
tests_tools_qcowfault_la_SOURCES = tests/tools/faultshim.c
tests_tools_qcowfault_la_CFLAGS = -std=gnu11 $(WARN_CFLAGS)
tests_tools_qcowfault_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_tools_qcowfault_la_LIBADD = -ldl

# ---- unit tests (C, linked with the engine) ---------------------------------
UNIT_TESTS = \
	tests/unit/test-parse-size \
	tests/unit/test-header \
	tests/unit/test-crypt \
	tests/unit/test-compress \
	tests/unit/test-map \
	tests/unit/test-meta \
	tests/unit/test-throttle \
	tests/unit/test-flush-fail \
	tests/unit/test-vec \
	tests/unit/test-pool \
	tests/unit/test-aio-helper \
	tests/unit/test-error
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
UNIT_LDADD = daemon/image/libqcowimage.la
tests_unit_test_parse_size_SOURCES = tests/unit/test-parse-size.c tests/unit/unit.h
tests_unit_test_parse_size_LDADD = $(UNIT_LDADD)
tests_unit_test_header_SOURCES = tests/unit/test-header.c tests/unit/unit.h
tests_unit_test_header_LDADD = $(UNIT_LDADD)
tests_unit_test_crypt_SOURCES = tests/unit/test-crypt.c tests/unit/unit.h
tests_unit_test_crypt_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS)
tests_unit_test_crypt_LDADD = $(UNIT_LDADD) $(CRYPTO_LIBS)
tests_unit_test_compress_SOURCES = tests/unit/test-compress.c tests/unit/unit.h
tests_unit_test_compress_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS)
tests_unit_test_compress_LDADD = $(UNIT_LDADD) $(ZLIB_LIBS)
tests_unit_test_map_SOURCES = tests/unit/test-map.c tests/unit/unit.h
tests_unit_test_map_LDADD = $(UNIT_LDADD)
tests_unit_test_meta_SOURCES = tests/unit/test-meta.c tests/unit/unit.h
tests_unit_test_meta_LDADD = $(UNIT_LDADD)
tests_unit_test_throttle_SOURCES = tests/unit/test-throttle.c tests/unit/unit.h
tests_unit_test_throttle_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
tests_unit_test_throttle_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_unit_test_throttle_LDADD = daemon/common/libqcowdcommon.la $(JSONC_LIBS)
tests_unit_test_flush_fail_SOURCES = tests/unit/test-flush-fail.c tests/unit/unit.h
tests_unit_test_flush_fail_LDADD = $(UNIT_LDADD)
tests_unit_test_vec_SOURCES = tests/unit/test-vec.c tests/unit/unit.h
tests_unit_test_pool_SOURCES = tests/unit/test-pool.c tests/unit/unit.h \
	daemon/worker/pool.h daemon/worker/pool.c
tests_unit_test_aio_helper_SOURCES = tests/unit/test-aio-helper.c tests/unit/unit.h
tests_unit_test_aio_helper_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/worker
tests_unit_test_aio_helper_LDADD = daemon/worker/libqcowexec.la daemon/image/libqcowimage.la \
	daemon/common/libqcowdcommon.la $(AIO_LIBS)
tests_unit_test_error_SOURCES = tests/unit/test-error.c tests/unit/unit.h
tests_unit_test_error_LDADD = $(UNIT_LDADD)
# The harness itself: a test with no check must fail.
check_PROGRAMS += tests/unit/no-checks
tests_unit_no_checks_SOURCES = tests/unit/no-checks.c tests/unit/unit.h
TESTS += tests/unit/no-checks.sh
EXTRA_DIST += tests/unit/no-checks.sh

# ---- interop with QEMU and malformed images (shell) -------------------------
INTEROP_TESTS = \
	tests/interop/from-qemu-plain.sh \
	tests/interop/from-qemu-clusters.sh \
	tests/interop/from-qemu-compressed.sh \
	tests/interop/from-qemu-encrypted.sh \
	tests/interop/from-qemu-backing.sh \
	tests/interop/from-qemu-relative.sh \
	tests/interop/from-qemu-chain.sh \
	tests/interop/from-qemu-odd-size.sh \
	tests/interop/to-qemu-writes.sh \
	tests/interop/to-qemu-backing.sh \
	tests/interop/to-qemu-compressed.sh \
	tests/interop/to-qemu-encrypted.sh \
	tests/interop/to-qemu-xen.sh \
	tests/interop/to-qemu-convert.sh \
	tests/interop/to-qemu-prealloc.sh \
	tests/interop/malformed.sh
TESTS += $(INTEROP_TESTS) $(CLI_TESTS) $(RING_TESTS) $(WORKER_TESTS)
EXTRA_DIST += $(INTEROP_TESTS)

# ---- fuzzing ------------------------------------------------------------------
# The fuzz target is built by clang with libFuzzer and the sanitizers straight
# from the engine's sources (the engine library itself is built by $(CC)).
# `make check` runs it for 30 s (tests/fuzz/run-fuzz.sh; SKIP without clang);
# `make fuzz FUZZ_TIME=3600` runs a longer campaign on a corpus kept in the
# build tree (tests/fuzz/corpus.work).
FUZZ_TARGET = tests/fuzz/fuzz_open_read
FUZZ_TIME = 600
FUZZ_CFLAGS = -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer
TESTS += tests/fuzz/run-fuzz.sh
EXTRA_DIST += tests/fuzz/run-fuzz.sh tests/fuzz/fuzz_open_read.c tests/fuzz/make-corpus.sh \
	tests/fuzz/corpus
CLEANFILES += $(FUZZ_TARGET)

if HAVE_CLANG
tests/fuzz/run-fuzz.log: $(FUZZ_TARGET)
endif

$(FUZZ_TARGET): tests/fuzz/fuzz_open_read.c $(daemon_image_libqcowimage_la_SOURCES) config.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CCLD)srcs=; for f in $(daemon_image_libqcowimage_la_SOURCES); do \
	  case $$f in *.c) srcs="$$srcs $(srcdir)/$$f";; esac; \
	done; \
	$(CLANG) $(FUZZ_CFLAGS) -I$(top_builddir) -I$(top_srcdir) -I$(top_srcdir)/daemon/image \
	  $(ZLIB_CFLAGS) $(CRYPTO_CFLAGS) -o $@ $(srcdir)/tests/fuzz/fuzz_open_read.c $$srcs \
	  $(ZLIB_LIBS) $(CRYPTO_LIBS)

fuzz:
	@if test -z "$(CLANG)"; then echo "make fuzz: configure found no clang" >&2; exit 1; fi
	$(MAKE) $(AM_MAKEFLAGS) $(FUZZ_TARGET)
	@$(MKDIR_P) tests/fuzz/corpus.work tests/fuzz/artifacts
	./$(FUZZ_TARGET) -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	  -print_final_stats=1 -artifact_prefix=tests/fuzz/artifacts/ \
	  tests/fuzz/corpus.work $(srcdir)/tests/fuzz/corpus </dev/null

clean-local: clean-local-fuzz
clean-local-fuzz:
	-rm -rf tests/fuzz/corpus.work tests/fuzz/artifacts

.PHONY: fuzz clean-local-fuzz

# The daemon end to end (lead): see tests/daemon/local.mk.
include tests/daemon/local.mk
TESTS += $(DAEMON_TESTS)

# NBD clients through nbdkit-qcowd-plugin: see tests/nbd/local.mk.
include tests/nbd/local.mk
TESTS += $(NBD_TESTS)
include tests/vm/local.mk

# make analyze fails on a finding (tools/analyze.sh, on a tree of its own).
TESTS += tests/analyze-gate.sh
EXTRA_DIST += tests/analyze-gate.sh

# ./quickstart check fails on a skipped test: its skip detection, tested.
TESTS += tests/quickstart-skips.sh
EXTRA_DIST += tests/quickstart-skips.sh

# The demo that ./quickstart demo runs is also a test, so it never rots;
# so is the README's tour.
TESTS += tests/demo.sh tests/readme-tour.sh
EXTRA_DIST += tests/demo.sh tests/readme-tour.sh

# Benchmarks (not in make check): make bench.  See tests/bench/local.mk.
include tests/bench/local.mk
