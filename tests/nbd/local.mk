# NBD: nbdkit-qcowd-plugin and qcowd's supervised exports, judged by real
# NBD clients (qemu-img, qemu-io, nbdcopy, nbdinfo).  They skip without
# the plugin (nbdkit-plugin-dev), nbdkit, libnbd-bin or qemu-utils.
NBD_TESTS = \
	tests/nbd/clients.sh \
	tests/nbd/exports.sh \
	tests/nbd/worker-kill.sh \
	tests/nbd/reconnect.sh \
	tests/nbd/export-rights.sh
EXTRA_DIST += $(NBD_TESTS) tests/nbd/lib.sh
