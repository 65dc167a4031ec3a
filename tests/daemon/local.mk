# The daemon end to end: qcowd, its workers, qcowctl and libqcowring clients.
# ringio is also what ./quickstart demo uses to talk through the ring: it is
# built with everything else, not only for make check.
noinst_PROGRAMS += tests/daemon/ringio
check_PROGRAMS += tests/daemon/ctlraw tests/daemon/ringabuse tests/daemon/badworker \
	tests/daemon/ctlhog tests/daemon/fakepeer
# The worker with its test hooks (SIGUSR1: make a system call the seccomp
# filter forbids; QCOWD_FAULTPOINT: fail or crash at a step of a resize or
# snapshot, tests/tools/faultpoint_env.c).  Built for the tests only, never installed: the hooks
# are not in daemon/qcowd-worker.
check_PROGRAMS += tests/daemon/qcowd-worker-hooks
tests_daemon_qcowd_worker_hooks_SOURCES = $(daemon_qcowd_worker_SOURCES) \
	tests/tools/faultpoint_env.h tests/tools/faultpoint_env.c
tests_daemon_qcowd_worker_hooks_CPPFLAGS = $(daemon_qcowd_worker_CPPFLAGS) -DQCOWD_TEST_HOOKS \
	-I$(top_srcdir)/tests/tools
tests_daemon_qcowd_worker_hooks_CFLAGS = $(daemon_qcowd_worker_CFLAGS)
tests_daemon_qcowd_worker_hooks_LDADD = $(daemon_qcowd_worker_LDADD)
tests_daemon_ringio_SOURCES = tests/daemon/ringio.c
tests_daemon_ringio_LDADD = shm/libqcowring.la
tests_daemon_ctlraw_SOURCES = tests/daemon/ctlraw.c
tests_daemon_ringabuse_SOURCES = tests/daemon/ringabuse.c
tests_daemon_ringabuse_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
tests_daemon_ringabuse_LDADD = daemon/common/libqcowdcommon.la -lpthread
tests_daemon_badworker_SOURCES = tests/daemon/badworker.c
tests_daemon_badworker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
tests_daemon_badworker_LDADD = daemon/common/libqcowdcommon.la
tests_daemon_ctlhog_SOURCES = tests/daemon/ctlhog.c
tests_daemon_fakepeer_SOURCES = tests/daemon/fakepeer.c
tests_daemon_fakepeer_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
tests_daemon_fakepeer_LDADD = daemon/common/libqcowdcommon.la

DAEMON_TESTS = \
	tests/daemon/lifecycle.sh \
	tests/daemon/worker-kill.sh \
	tests/daemon/bad-input.sh \
	tests/daemon/cycles.sh \
	tests/daemon/churn.sh \
	tests/daemon/busy-poll.sh \
	tests/daemon/locking.sh \
	tests/daemon/lock-lifetime.sh \
	tests/daemon/attach-churn.sh \
	tests/daemon/caller-rights.sh \
	tests/daemon/backing-locks.sh \
	tests/daemon/format-probing.sh \
	tests/daemon/worker-sandbox.sh \
	tests/daemon/unit-hardening.sh \
	tests/daemon/socket-activation.sh \
	tests/daemon/hostile-ring.sh \
	tests/daemon/hostile-doorbell.sh \
	tests/daemon/log-reopen.sh \
	tests/daemon/parallel-churn.sh \
	tests/daemon/aio-budget.sh \
	tests/daemon/limits.sh \
	tests/daemon/ring-geometry.sh \
	tests/daemon/online-resize.sh \
	tests/daemon/online-snapshot.sh \
	tests/daemon/online-commit.sh \
	tests/daemon/online-flatten.sh \
	tests/daemon/online-commit-faults.sh \
	tests/daemon/online-resize-crash.sh \
	tests/daemon/recovery.sh \
	tests/daemon/hostile-worker.sh \
	tests/daemon/slow-clients.sh \
	tests/daemon/past-eof.sh \
	tests/daemon/blktap.sh \
	tests/daemon/odd-size.sh \
	tests/daemon/blockdev.sh \
	tests/daemon/discard.sh \
	tests/daemon/crash-leaks.sh \
	tests/daemon/io-limits.sh \
	tests/daemon/io-limits-rate.sh \
	tests/daemon/io-errors.sh \
	tests/daemon/restart-state.sh \
	tests/daemon/restart-bad-state.sh \
	tests/daemon/restart-rights.sh \
	tests/daemon/adopt-running.sh \
	tests/daemon/adopt-refused.sh \
	tests/daemon/adopt-silent.sh \
	tests/daemon/adopt-renew.sh \
	tests/daemon/swapped-names.sh \
	tests/daemon/leased-file.sh \
	tests/daemon/stuck-worker.sh \
	tests/daemon/slow-l2.sh \
	tests/daemon/slow-growth.sh \
	tests/daemon/pause-growth.sh \
	tests/daemon/flush-fail.sh \
	tests/daemon/version.sh
EXTRA_DIST += $(DAEMON_TESTS) tests/daemon/lib.sh tests/daemon/rawring.py \
	tests/daemon/swapped-names.py
