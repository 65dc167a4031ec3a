# The shared-memory ring: the installed ABI header and libqcowring.
lib_LTLIBRARIES += shm/libqcowring.la
include_HEADERS += shm/qcowring.h shm/qcowring-client.h
shm_libqcowring_la_SOURCES = \
	shm/qcowring.h shm/qcowring-client.h shm/client_internal.h \
	shm/page_alloc.c \
	shm/client_open.c \
	shm/client_async.c \
	shm/client_spin.c \
	shm/client_sync.c \
	shm/client_map.c \
	shm/create.c \
	shm/client_control.c \
	shm/client_connect.c \
	shm/client_attach.c \
	daemon/common/fdpass.h daemon/common/fdpass.c \
	daemon/common/spin.h daemon/common/spin.c
shm_libqcowring_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon/common
shm_libqcowring_la_LIBADD = $(JSONC_LIBS)
# Only the public qcowring_* functions are exported.
shm_libqcowring_la_LDFLAGS = $(AM_LDFLAGS) -version-info 4:0:4 \
	-export-symbols-regex '^qcowring_'
pkgconfig_DATA += shm/libqcowring.pc
man_MANS += doc/libqcowring.3
EXTRA_DIST += doc/libqcowring.3.in
EXTRA_DIST += doc/ring.md
