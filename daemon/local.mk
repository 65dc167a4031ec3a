# Code shared by the supervisor and the workers.
noinst_LTLIBRARIES += daemon/common/libqcowdcommon.la
daemon_common_libqcowdcommon_la_SOURCES = \
	daemon/common/log.h daemon/common/log.c \
	daemon/common/cleanup.h daemon/common/vec.h \
	daemon/common/fdpass.h daemon/common/fdpass.c \
	daemon/common/json_read.h daemon/common/json_read.c \
	daemon/common/spin.h daemon/common/spin.c \
	daemon/common/aio_budget.h daemon/common/aio_budget.c \
	daemon/common/worker_spawn.h daemon/common/worker_spawn.c \
	daemon/common/throttle.h daemon/common/throttle.c \
	daemon/common/io_limits.h daemon/common/io_limits.c \
	daemon/common/lock.h daemon/common/lock.c \
	daemon/common/identity.h daemon/common/identity.c \
	daemon/common/spawn.h daemon/common/spawn.c \
	shm/create.c
# Ring creation (shm/create.c) is built in rather than linked from the shared
# libqcowring, so qcowd and its workers need no shared library of ours: no
# libtool wrapper script runs at every worker start in the build tree.
daemon_common_libqcowdcommon_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
daemon_common_libqcowdcommon_la_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
daemon_common_libqcowdcommon_la_LIBADD = $(JSONC_LIBS)

# The worker: one process per attached image, serving its ring.
pkglibexec_PROGRAMS = daemon/qcowd-worker
daemon_qcowd_worker_SOURCES = \
	daemon/worker/main.c \
	daemon/worker/worker.h daemon/worker/worker.c \
	daemon/worker/busypoll.h daemon/worker/busypoll.c \
	daemon/worker/map.c \
	daemon/worker/limiter.h daemon/worker/limiter.c \
	daemon/worker/backing.h daemon/worker/backing.c \
	daemon/worker/first_sector.h daemon/worker/first_sector.c \
	daemon/worker/sandbox.h daemon/worker/sandbox.c daemon/worker/seccomp.c \
	daemon/worker/control.c daemon/worker/adopt.c \
	daemon/worker/imageops.c \
	daemon/worker/commit.c
daemon_qcowd_worker_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common \
	-I$(top_srcdir)/daemon/worker
daemon_qcowd_worker_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(SECCOMP_CFLAGS)
daemon_qcowd_worker_LDADD = daemon/worker/libqcowexec.la daemon/common/libqcowdcommon.la \
	daemon/image/libqcowimage.la $(JSONC_LIBS) $(AIO_LIBS) $(SECCOMP_LIBS)

# The data path without the process around it, for tests and benchmarks.
noinst_LTLIBRARIES += daemon/worker/libqcowexec.la
daemon_worker_libqcowexec_la_SOURCES = \
	daemon/worker/blkreq.h \
	daemon/worker/aio.h daemon/worker/aio.c \
	daemon/worker/exec.h daemon/worker/exec_internal.h daemon/worker/exec.c \
	daemon/worker/writeback.c daemon/worker/metaread.c daemon/worker/growth.c \
	daemon/worker/pool.h daemon/worker/pool.c \
	daemon/worker/stats.h daemon/worker/stats.c \
	daemon/worker/metalog.h daemon/worker/metalog.c
daemon_worker_libqcowexec_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
daemon_worker_libqcowexec_la_LIBADD = daemon/worker/libqcowringserver.la \
	daemon/image/libqcowimage.la $(AIO_LIBS)

# The ring's back end (validation of untrusted requests), on its own so the
# ring tests can link it without the rest of the worker.
noinst_LTLIBRARIES += daemon/worker/libqcowringserver.la
daemon_worker_libqcowringserver_la_SOURCES = \
	daemon/worker/ring_server.h daemon/worker/ring_server_internal.h \
	daemon/worker/ring_server.c daemon/worker/ring_journal.c \
	daemon/worker/doorbell.h daemon/worker/doorbell.c

# The supervisor: control socket, attachments, one worker per image.
sbin_PROGRAMS += daemon/qcowd
daemon_qcowd_SOURCES = \
	daemon/supervisor/supervisor.h \
	daemon/supervisor/main.c \
	daemon/supervisor/server.c \
	daemon/supervisor/auth.c \
	daemon/supervisor/caller.c \
	daemon/supervisor/commands.c \
	daemon/supervisor/attachment_internal.h daemon/supervisor/attachments.c \
	daemon/supervisor/calls.c \
	daemon/supervisor/imageops.c \
	daemon/supervisor/worker_messages.c \
	daemon/supervisor/state_file.c daemon/supervisor/adoption.c \
	daemon/supervisor/recovery.c \
	daemon/supervisor/ring_presence.c \
	daemon/supervisor/throttling.h daemon/supervisor/throttling.c \
	daemon/supervisor/exports.c \
	daemon/supervisor/export_listen.h daemon/supervisor/export_listen.c \
	daemon/supervisor/limits.c
daemon_qcowd_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common \
	-DWORKER_PATH=\"$(pkglibexecdir)/qcowd-worker\" \
	-DNBDKIT_PLUGIN_PATH=\"$(nbdkitplugindir)/nbdkit-qcowd-plugin.so\"
daemon_qcowd_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS) $(SYSTEMD_CFLAGS)
daemon_qcowd_LDADD = daemon/common/libqcowdcommon.la daemon/image/libqcowimage.la \
	$(JSONC_LIBS) $(SYSTEMD_LIBS)

# systemd units, under $(prefix)/lib/systemd/system (override systemdsystemunitdir=).
systemdsystemunitdir = $(prefix)/lib/systemd/system
systemdsystemunit_DATA = daemon/systemd/qcowd.socket daemon/systemd/qcowd.service
CLEANFILES += daemon/systemd/qcowd.service
EXTRA_DIST += daemon/systemd/qcowd.socket daemon/systemd/qcowd.service.in
# The workers' user (qcowd --worker-user qcowd in the unit), for systemd-sysusers.
sysusersdir = $(prefix)/lib/sysusers.d
dist_sysusers_DATA = daemon/systemd/sysusers/qcowd.conf
daemon/systemd/qcowd.service: $(srcdir)/daemon/systemd/qcowd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) daemon/systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/daemon/systemd/qcowd.service.in > $@
