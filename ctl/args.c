/* Command-line parsing shared by the commands. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "output.h"
#include "qcow_format.h"
#include "util.h"

void cli_begin_options(void)
{
    optind = 0;                 /* GNU: reinitialise, argv may be a new vector */
    opterr = 0;                 /* we print our own messages */
}

static const char *offending_option(char **argv)
{
    static char shortopt[3] = "-?";

    if (optopt && optopt < 0x100) {
        shortopt[1] = (char)optopt;
        return shortopt;
    }
    return argv[optind - 1];
}

int cli_common_option(struct cli *cli, const struct cli_command *cmd, int opt, char **argv)
{
    switch (opt) {
    case CLI_OPT_JSON:
        cli->json = true;
        return CLI_CONTINUE;
    case 'q':
        cli->quiet = true;
        return CLI_CONTINUE;
    case 'v':
        cli->verbose++;
        return CLI_CONTINUE;
    case 'h':
        cli_print_command_help(cmd);
        return cli_finish_stdout();
    case ':':
        return cli_usage_error(cmd, "%s: option '%s' needs an argument", cmd->name,
                               offending_option(argv));
    case '?':
        return cli_usage_error(cmd, "%s: unknown option '%s'", cmd->name, offending_option(argv));
    default:
        return cli_usage_error(cmd, "%s: option '%s' is not handled", cmd->name,
                               offending_option(argv));
    }
}

int cli_operands(const struct cli_command *cmd, int argc, int min, int max)
{
    int n = argc - optind;

    if (n < min)
        return cli_usage_error(cmd, "%s: missing operand (usage: " CLI_PROGRAM " %s %s)",
                               cmd->name, cmd->name, cmd->synopsis);
    if (n > max)
        return cli_usage_error(cmd, "%s: too many operands (usage: " CLI_PROGRAM " %s %s)",
                               cmd->name, cmd->name, cmd->synopsis);
    return CLI_CONTINUE;
}

int cli_parse_size(const struct cli_command *cmd, const char *what, const char *s, uint64_t *out)
{
    int r = parse_size(s, out);

    if (r == -ERANGE)
        return cli_usage_error(cmd, "%s: %s '%s' is too large", cmd->name, what, s);
    if (r < 0)
        return cli_usage_error(cmd, "%s: invalid %s '%s' (expected a number of bytes with an "
                               "optional K, M, G or T suffix)", cmd->name, what, s);
    return CLI_CONTINUE;
}

int cli_parse_format(const struct cli_command *cmd, const char *s, enum image_format *out)
{
    if (image_format_parse(s, out) < 0 || *out == IMAGE_FORMAT_AUTO)
        return cli_usage_error(cmd, "%s: unknown image format '%s' (expected qcow or raw)",
                               cmd->name, s);
    return CLI_CONTINUE;
}

int cli_parse_uint(const struct cli_command *cmd, const char *what, const char *s,
                   unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    /* Decimal, or hexadecimal with 0x (a leading 0 is not octal). */
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    errno = 0;
    v = strtoul(hex ? s + 2 : s, &end, hex ? 16 : 10);
    if (end == (hex ? s + 2 : s) || *s == '-' || (hex && s[2] == '-') || *end != '\0' ||
        errno || v < min || v > max)
        return cli_usage_error(cmd, "%s%sinvalid %s '%s' (expected %lu to %lu)",
                               cmd ? cmd->name : "", cmd ? ": " : "", what, s, min, max);
    *out = v;
    return CLI_CONTINUE;
}

int cli_connection_option(struct cli *cli, const struct cli_command *cmd, int opt,
                          const char *arg)
{
    unsigned long v;
    int r;

    switch (opt) {
    case CLI_OPT_SOCKET:
        if (!*arg)
            return cli_usage_error(cmd, "%s%s--socket needs a path", cmd ? cmd->name : "",
                                   cmd ? ": " : "");
        cli->socket = arg;
        return CLI_CONTINUE;
    case CLI_OPT_TIMEOUT:
        if ((r = cli_parse_uint(cmd, "timeout", arg, 0, 86400, &v)) == CLI_CONTINUE)
            cli->timeout_s = (unsigned)v;
        return r;
    }
    return CLI_NOT_MINE;
}

int cli_parse_cluster_size(const struct cli_command *cmd, const char *s, unsigned *bits)
{
    uint64_t v;
    int r = cli_parse_size(cmd, "cluster size", s, &v);

    if (r != CLI_CONTINUE)
        return r;
    for (unsigned b = QCOW_MIN_CLUSTER_BITS; b <= QCOW_MAX_CLUSTER_BITS; b++)
        if (v == UINT64_C(1) << b) {
            *bits = b;
            return CLI_CONTINUE;
        }
    return cli_usage_error(cmd, "%s: invalid cluster size '%s' (a power of two from %u to %u)",
                           cmd->name, s, 1u << QCOW_MIN_CLUSTER_BITS, 1u << QCOW_MAX_CLUSTER_BITS);
}

void cli_print_command_help(const struct cli_command *cmd)
{
    printf("Usage: " CLI_PROGRAM " [--json] [--quiet] [-v] %s %s\n\n%s\n\n", cmd->name,
           cmd->synopsis, cmd->summary);
    if (cmd->help && *cmd->help)
        printf("%s\n", cmd->help);
    printf("Common options:\n"
           "      --json        machine-readable output (JSON)\n"
           "  -q, --quiet       print nothing but errors\n"
           "  -v, --verbose     say more on stderr\n"
           "  -h, --help        show this help\n");
}
