/* qcowctl: global options, the command table, dispatch and usage.
 *
 * Commands come in groups, one file each; the offline groups work on image
 * files directly through the image engine; the online group (cmd_online.c)
 * talks to qcowd over its control socket (client.c). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"
#include "util.h"
#ifdef QCOWD_TEST_HOOKS
#include "faultpoint_env.h"
#endif

static const struct cli_group *const groups[] = {
    &cli_create_group,
    &cli_info_group,
    &cli_check_group,
    &cli_convert_group,
    &cli_rw_group,
    &cli_space_group,
    &cli_imageops_group,
    &cli_online_group,
    &cli_export_group,
};

static const struct cli_command *find_command(const char *name)
{
    for (size_t g = 0; g < ARRAY_SIZE(groups); g++)
        for (size_t c = 0; c < groups[g]->n_commands; c++)
            if (strcmp(groups[g]->commands[c].name, name) == 0)
                return &groups[g]->commands[c];
    return NULL;
}

static void print_usage(void)
{
    printf("Usage: " CLI_PROGRAM " [--json] [--quiet] [-v|--verbose] [--socket PATH] COMMAND "
           "[ARGS...]\n"
           "       " CLI_PROGRAM " COMMAND --help\n"
           "       " CLI_PROGRAM " --version\n\n"
           "Create, inspect, check and convert QCOW v1 and raw disk images (offline), and\n"
           "control the qcowd daemon that serves them (online).\n");
    for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
        printf("\n%s:\n", groups[g]->title);
        for (size_t c = 0; c < groups[g]->n_commands; c++) {
            const struct cli_command *cmd = &groups[g]->commands[c];
            printf("  %-9s %s\n", cmd->name, cmd->summary);
        }
    }
    printf("\nGlobal options:\n"
           "      --json        machine-readable output (JSON); also after COMMAND\n"
           "  -q, --quiet       print nothing but errors\n"
           "  -v, --verbose     say more on stderr\n"
           "  -h, --help        show this help\n"
           "  -V, --version     show the version\n"
           "      --socket PATH qcowd's control socket, for online commands (default:\n"
           "                    $QCOWD_SOCKET, else /run/qcowd/qcowd.sock as root and\n"
           "                    $XDG_RUNTIME_DIR/qcowd.sock otherwise); also after COMMAND\n"
           "      --timeout SECS  online commands: fail when qcowd does not answer in time\n\n"
           "Exit status: 0 success, 1 failure, 2 usage error.\n"
           "check also returns 3 (corruption found) and 4 (only leaks found).\n"
           "Online commands also return, by qcowd's error class: 3 NotFound,\n"
           "4 AlreadyExists, 5 Locked, 6 PermissionDenied, 7 InvalidState, 8 Busy,\n"
           "9 LimitReached, 10 OperationFailed (InvalidParameter is 2; other errors, or\n"
           "no connection, 1).\n"
           "See qcowctl(8) for the details.\n");
}

/* Parse the options before COMMAND.  Returns CLI_CONTINUE or an exit status. */
static int parse_global(struct cli *cli, int argc, char **argv)
{
    static const struct option options[] = {
        { "json", no_argument, NULL, CLI_OPT_JSON },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        CLI_CONNECTION_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    int opt, r;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:qvhV", options, NULL)) != -1) {
        switch (opt) {
        case CLI_OPT_JSON: cli->json = true; break;
        case 'q': cli->quiet = true; break;
        case 'v': cli->verbose++; break;
        case 'h':
            print_usage();
            return cli_finish_stdout();
        case 'V':
            printf(CLI_PROGRAM " (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
            return cli_finish_stdout();
        case CLI_OPT_SOCKET:
        case CLI_OPT_TIMEOUT:
            if ((r = cli_connection_option(cli, NULL, opt, optarg)) != CLI_CONTINUE)
                return r;
            break;
        case ':':
            return cli_usage_error(NULL, "option '%s' needs an argument", argv[optind - 1]);
        default:
            return cli_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    return CLI_CONTINUE;
}

/* `qcowctl help [COMMAND]` */
static int help_command(int argc, char **argv)
{
    const struct cli_command *cmd;

    if (argc < 2) {
        print_usage();
    } else if ((cmd = find_command(argv[1]))) {
        cli_print_command_help(cmd);
    } else {
        return cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    }
    return cli_finish_stdout();
}

int main(int argc, char **argv)
{
    struct cli cli = { 0 };
    const struct cli_command *cmd;
    int r;

#ifdef QCOWD_TEST_HOOKS
    faultpoint_from_env();
#endif
    if ((r = parse_global(&cli, argc, argv)) != CLI_CONTINUE)
        return r;
    if (optind >= argc)
        return cli_usage_error(NULL, "no command given");
    if (strcmp(argv[optind], "help") == 0)
        return help_command(argc - optind, argv + optind);
    if (!(cmd = find_command(argv[optind])))
        return cli_usage_error(NULL, "unknown command '%s'", argv[optind]);
    r = cmd->run(&cli, cmd, argc - optind, argv + optind);
    if (cli_finish_stdout() != CLI_EXIT_OK && r == CLI_EXIT_OK)
        r = CLI_EXIT_FAILURE;
    return r;
}
