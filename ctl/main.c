/* qcowctl: global options, the command table, dispatch and usage.
 *
 * Commands come in groups, one file each; the offline groups work on image
 * files directly through the image engine.  Online commands (talking to
 * qcowd over its control socket) will be further groups. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "output.h"
#include "util.h"

static const struct cli_group *const groups[] = {
    &cli_create_group,
    &cli_info_group,
    &cli_check_group,
    &cli_convert_group,
    &cli_rw_group,
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
    printf("Usage: " CLI_PROGRAM " [--json] [--quiet] [-v|--verbose] COMMAND [ARGS...]\n"
           "       " CLI_PROGRAM " COMMAND --help\n"
           "       " CLI_PROGRAM " --version\n\n"
           "Create, inspect, check and convert QCOW v1 and raw disk images.\n");
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
           "  -V, --version     show the version\n\n"
           "Exit status: 0 success, 1 failure, 2 usage error; check also returns\n"
           "3 (corruption found) and 4 (only leaks found).\n"
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
        { NULL, 0, NULL, 0 },
    };
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+qvhV", options, NULL)) != -1) {
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
