# nbdkit-qcowd-plugin: an attached image over NBD, through nbdkit.
if HAVE_NBDKIT
nbdkitplugin_LTLIBRARIES = nbdkit/nbdkit-qcowd-plugin.la
nbdkit_nbdkit_qcowd_plugin_la_SOURCES = \
	nbdkit/qcowd_plugin.c \
	nbdkit/ring_conn.h nbdkit/ring_conn.c
nbdkit_nbdkit_qcowd_plugin_la_CFLAGS = $(AM_CFLAGS) $(NBDKIT_CFLAGS) -pthread
nbdkit_nbdkit_qcowd_plugin_la_LIBADD = shm/libqcowring.la -lpthread
# nbdkit looks for plugin_init only.
nbdkit_nbdkit_qcowd_plugin_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols-regex '^plugin_init$$'
endif
man_MANS += doc/nbdkit-qcowd-plugin.1
EXTRA_DIST += doc/nbdkit-qcowd-plugin.1.in
