# The daemon end to end: qcowd, its workers, qcowctl and libqcowring clients.
check_PROGRAMS += tests/daemon/ringio
tests_daemon_ringio_SOURCES = tests/daemon/ringio.c
tests_daemon_ringio_LDADD = shm/libqcowring.la

DAEMON_TESTS =
EXTRA_DIST += tests/daemon/lib.sh
