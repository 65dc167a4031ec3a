# Benchmarks (doc/performance.md): not part of `make check`.
#   make bench                       ringbench + both scripts, full length
#   make bench BENCH_ARGS=--quick    a short smoke run of both
#   make bench-convert / make bench-ring   one of them
#   make bench-scale                 issue 10: density, busy among idle,
#                                    churn (not part of `make bench`; it
#                                    attaches 1000 images for a few minutes)
#   BENCH_CONVERT_ARGS / BENCH_RING_ARGS / BENCH_SCALE_ARGS
#                                    options for one script only,
#                                    e.g. BENCH_RING_ARGS="--rounds 3"
# BENCH_DIR is where the 1 GiB images go (default: a temporary directory
# under $TMPDIR, removed at the end); it must be on a real file system
# (O_DIRECT), not tmpfs.
noinst_PROGRAMS += tests/bench/ringbench
tests_bench_ringbench_SOURCES = tests/bench/ringbench.c
tests_bench_ringbench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common \
	-DRINGBENCH_DEFAULT_WORKER='"$(abs_top_builddir)/daemon/qcowd-worker"'
tests_bench_ringbench_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
tests_bench_ringbench_LDADD = daemon/common/libqcowdcommon.la shm/libqcowring.la \
	daemon/image/libqcowimage.la $(JSONC_LIBS)

BENCH_FILES = tests/bench/bench-convert.sh tests/bench/bench-ring.sh tests/bench/bench-nbd.sh \
	tests/bench/bench-scale.sh
EXTRA_DIST += $(BENCH_FILES) tests/bench/lib.sh doc/performance.md
BENCH_ARGS =
BENCH_CONVERT_ARGS =
BENCH_RING_ARGS =
BENCH_NBD_ARGS =
BENCH_SCALE_ARGS =
BENCH_ENV = \
	QCOWCTL='$(abs_top_builddir)/ctl/qcowctl' \
	QCOWD_WORKER='$(abs_top_builddir)/daemon/qcowd-worker' \
	RINGBENCH='$(abs_top_builddir)/tests/bench/ringbench' \
	QCOWD='$(abs_top_builddir)/daemon/qcowd' \
	NBDKIT_PLUGIN='$(abs_top_builddir)/nbdkit/.libs/nbdkit-qcowd-plugin.so' \
	RINGIO='$(abs_top_builddir)/tests/daemon/ringio' \
	CTLRAW='$(abs_top_builddir)/tests/daemon/ctlraw'

BENCH_CONVERT_RUN = $(BENCH_ENV) bash $(srcdir)/tests/bench/bench-convert.sh \
	$(BENCH_ARGS) $(BENCH_CONVERT_ARGS)
BENCH_RING_RUN = $(BENCH_ENV) bash $(srcdir)/tests/bench/bench-ring.sh \
	$(BENCH_ARGS) $(BENCH_RING_ARGS)

# One after the other (never in parallel under make -j: they would measure
# each other).
bench: ctl/qcowctl tests/bench/ringbench daemon/qcowd-worker
	$(BENCH_CONVERT_RUN)
	$(BENCH_RING_RUN)

bench-convert: ctl/qcowctl
	$(BENCH_CONVERT_RUN)

bench-ring: tests/bench/ringbench daemon/qcowd-worker ctl/qcowctl
	$(BENCH_RING_RUN)

# Issue 12: the NBD export against qemu-nbd (qcow and raw twin); not part of
# `make bench`, it needs nbdkit and its plugin.
bench-nbd: ctl/qcowctl daemon/qcowd daemon/qcowd-worker
	$(BENCH_ENV) bash $(srcdir)/tests/bench/bench-nbd.sh $(BENCH_ARGS) $(BENCH_NBD_ARGS)

bench-scale: tests/bench/ringbench daemon/qcowd daemon/qcowd-worker ctl/qcowctl \
		tests/daemon/ringio tests/daemon/ctlraw
	$(BENCH_ENV) bash $(srcdir)/tests/bench/bench-scale.sh $(BENCH_SCALE_ARGS)

.PHONY: bench bench-convert bench-ring bench-nbd bench-scale
