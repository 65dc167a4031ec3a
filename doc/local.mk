# Documentation: man pages, made by configure from doc/*.in (their headers
# carry the package version).
man_MANS += doc/qcowctl.8 doc/qcowd.8
EXTRA_DIST += doc/qcowctl.8.in doc/qcowd.8.in
EXTRA_DIST += doc/protocol.md doc/qcow-format.md doc/security.md
EXTRA_DIST += doc/nbd.md
EXTRA_DIST += doc/io-limits.md
EXTRA_DIST += doc/restart.md
