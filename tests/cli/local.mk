# Tests of qcowctl's command line (see tests/cli/lib.sh).  tests/local.mk
# adds $(CLI_TESTS) to TESTS.
CLI_TESTS = \
	tests/cli/usage.sh \
	tests/cli/create-info.sh \
	tests/cli/read-write.sh \
	tests/cli/map.sh \
	tests/cli/check.sh \
	tests/cli/space.sh \
	tests/cli/imageops.sh \
	tests/cli/imageops-crash.sh \
	tests/cli/convert.sh \
	tests/cli/encrypted.sh \
	tests/cli/online-basic.sh \
	tests/cli/online-errors.sh \
	tests/cli/online-events.sh \
	tests/cli/online-completion.sh
EXTRA_DIST += $(CLI_TESTS) tests/cli/lib.sh tests/cli/online-lib.sh
