# Documentation: man pages (installed and distributed).
dist_man_MANS += doc/qcowctl.8
