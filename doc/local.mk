# Documentation: man pages (installed and distributed).
dist_man_MANS += doc/qcowctl.8
dist_man_MANS += doc/qcowd.8
EXTRA_DIST += doc/protocol.md doc/qcow-format.md doc/security.md
EXTRA_DIST += doc/nbd.md
EXTRA_DIST += doc/io-limits.md
EXTRA_DIST += doc/restart.md
