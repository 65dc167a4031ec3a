# qcowctl: the command-line tool.  Offline commands use the image engine
# directly; one source file per command group.
bin_PROGRAMS += ctl/qcowctl
ctl_qcowctl_SOURCES = \
	ctl/cli.h ctl/main.c ctl/args.c ctl/open.c \
	ctl/output.h ctl/output.c \
	ctl/key.h ctl/key.c \
	ctl/cmd_create.c \
	ctl/cmd_info.c \
	ctl/cmd_check.c \
	ctl/cmd_convert.c \
	ctl/cmd_rw.c \
	ctl/cmd_space.c \
	ctl/imageops.h ctl/cmd_imageops.c ctl/cmd_imageops_online.c \
	ctl/client.h ctl/client.c \
	ctl/cmd_online.c \
	ctl/limits.h ctl/cmd_limit.c \
	ctl/cmd_export.c
ctl_qcowctl_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
ctl_qcowctl_LDADD = daemon/image/libqcowimage.la $(JSONC_LIBS) $(ZLIB_LIBS) -lm

# qcowctl with its fault points (tests/tools/faultpoint_env.c: QCOWD_FAULTPOINT),
# for the tests only, never installed.
check_PROGRAMS += tests/tools/qcowctl-hooks
tests_tools_qcowctl_hooks_SOURCES = $(ctl_qcowctl_SOURCES) \
	tests/tools/faultpoint_env.h tests/tools/faultpoint_env.c
tests_tools_qcowctl_hooks_CPPFLAGS = $(AM_CPPFLAGS) -DQCOWD_TEST_HOOKS -I$(top_srcdir)/tests/tools
tests_tools_qcowctl_hooks_CFLAGS = $(ctl_qcowctl_CFLAGS)
tests_tools_qcowctl_hooks_LDADD = $(ctl_qcowctl_LDADD)

# Bash completion for qcowctl (commands, options, files, attachment names).
# bash-completion looks the file up by the command's name, so the script is
# installed as .../completions/qcowctl.
bashcompletiondir = $(datadir)/bash-completion/completions
bashcompletion_DATA = ctl/completion/qcowctl
ctl/completion/qcowctl: $(srcdir)/ctl/qcowctl.bash
	$(AM_V_GEN)$(MKDIR_P) ctl/completion && cp $(srcdir)/ctl/qcowctl.bash $@
EXTRA_DIST += ctl/qcowctl.bash
CLEANFILES += ctl/completion/qcowctl
