# The image engine: a convenience library linked into qcowd's worker and qcowctl.
noinst_LTLIBRARIES += daemon/image/libqcowimage.la
daemon_image_libqcowimage_la_SOURCES = \
	daemon/image/image.h daemon/image/driver.h \
	daemon/image/error.h daemon/image/error.c \
	daemon/image/util.h daemon/image/util.c \
	daemon/common/cleanup.h daemon/common/vec.h \
	daemon/image/qcow_format.h daemon/image/qcow_format.c \
	daemon/image/qcow.h daemon/image/qcow.c \
	daemon/image/qcow_resize.c \
	daemon/image/faultpoint.h daemon/image/faultpoint.c \
	daemon/image/resize.c \
	daemon/image/snapshot.c \
	daemon/image/qcow_backing.c \
	daemon/image/commit.c \
	daemon/image/rebase.c \
	daemon/image/alone.c \
	daemon/image/qcow_create.c \
	daemon/image/l2cache.h daemon/image/l2cache.c \
	daemon/image/crypt.h daemon/image/crypt.c \
	daemon/image/crypto_lib.h daemon/image/crypto_lib.c \
	daemon/image/compress.h daemon/image/compress.c \
	daemon/image/qcow_check.h daemon/image/qcow_check.c \
	daemon/image/qcow_compact.h daemon/image/qcow_compact.c \
	daemon/image/raw.c \
	daemon/image/probe.c \
	daemon/image/image.c \
	daemon/image/discard.c \
	daemon/image/sync_io.c
daemon_image_libqcowimage_la_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS) $(CRYPTO_CFLAGS)
# libcrypto is loaded when first needed (crypto_lib.c), not linked.
daemon_image_libqcowimage_la_LIBADD = $(ZLIB_LIBS)
