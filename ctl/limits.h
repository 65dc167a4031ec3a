/* qcowctl's I/O limit options (attach and limit), the limit command, and
 * the limits as text (cmd_limit.c). */
#ifndef QCOWCTL_LIMITS_H
#define QCOWCTL_LIMITS_H

#include <getopt.h>
#include <json-c/json.h>

#include "cli.h"

enum {
    CLI_OPT_IOPS = 0x280,
    CLI_OPT_IOPS_READ,
    CLI_OPT_IOPS_WRITE,
    CLI_OPT_BPS,
    CLI_OPT_BPS_READ,
    CLI_OPT_BPS_WRITE,
    CLI_OPT_IOPS_BURST,
    CLI_OPT_BPS_BURST,
    CLI_OPT_BURST_LENGTH,
    CLI_OPT_IOPS_SIZE,
    CLI_OPT_LIMIT_GROUP,
    CLI_OPT_LIMIT,
};

#define CLI_LIMIT_OPTIONS                                                       \
    { "iops", required_argument, NULL, CLI_OPT_IOPS },                          \
    { "iops-read", required_argument, NULL, CLI_OPT_IOPS_READ },                \
    { "iops-write", required_argument, NULL, CLI_OPT_IOPS_WRITE },              \
    { "bps", required_argument, NULL, CLI_OPT_BPS },                            \
    { "bps-read", required_argument, NULL, CLI_OPT_BPS_READ },                  \
    { "bps-write", required_argument, NULL, CLI_OPT_BPS_WRITE },                \
    { "iops-burst", required_argument, NULL, CLI_OPT_IOPS_BURST },              \
    { "bps-burst", required_argument, NULL, CLI_OPT_BPS_BURST },                \
    { "burst-length", required_argument, NULL, CLI_OPT_BURST_LENGTH },          \
    { "iops-size", required_argument, NULL, CLI_OPT_IOPS_SIZE },                \
    { "limit-group", required_argument, NULL, CLI_OPT_LIMIT_GROUP },            \
    { "limit", required_argument, NULL, CLI_OPT_LIMIT }

#define CLI_LIMIT_HELP                                                                      \
    "I/O limits (0 removes one; SIZE takes K, M, G suffixes):\n"                           \
    "      --iops N          operations per second, reads and writes together\n"          \
    "      --iops-read N, --iops-write N   the same for reads or writes alone\n"           \
    "      --bps SIZE        bytes per second, reads and writes together\n"               \
    "      --bps-read SIZE, --bps-write SIZE\n"                                             \
    "      --iops-burst N    let --iops rise to N per second while its bucket lasts\n"    \
    "      --bps-burst SIZE  likewise for --bps\n"                                          \
    "      --burst-length S  seconds a full bucket lasts at the burst rate (default 1)\n" \
    "      --iops-size SIZE  a larger request counts as several operations\n"             \
    "      --limit-group G   share the limits with every image of group G (\"\": none);\n" \
    "                        limits given with it are the group's\n"                       \
    "      --limit KEY=VALUE[,KEY=VALUE...]   any limit by its protocol name, e.g.\n"      \
    "                        iops-read-max=500,iops-read-max-length=10\n"

/* Limit options collected into an "io-limits" object for qcowd. */
struct cli_limits {
    json_object *obj;           /* NULL until an option adds to it */
    bool burst_length_given;
    unsigned long burst_length;
};

/* A limit option (CLI_NOT_MINE for any other): CLI_CONTINUE or a usage
 * error's status. */
int cli_limit_option(const struct cli_command *cmd, int opt, const char *arg,
                     struct cli_limits *l);

/* After the options: --burst-length goes with the bursts given.  Returns
 * CLI_CONTINUE or a usage error's status. */
int cli_limits_finish(const struct cli_command *cmd, struct cli_limits *l);

/* "iops-total 1000/s, bps-total 100 MiB/s, group db", or "none". */
void cli_print_limits(const char *label, json_object *limits);

/* A stats sample's "throttle" object as one line (nothing when absent). */
void cli_print_throttle(json_object *throttle);

int cli_run_limit(struct cli *cli, const struct cli_command *cmd, int argc, char **argv);

/* The entry of the online commands' table (cmd_online.c, whose
 * ONLINE_HELP it ends with). */
#define CLI_LIMIT_COMMAND                                                                   \
    {                                                                                       \
        .name = "limit",                                                                    \
        .synopsis = "NAME [--reset] [LIMIT OPTIONS]",                                       \
        .summary = "show or change NAME's I/O limits while it is served",                  \
        .help = CLI_LIMIT_HELP                                                              \
            "      --reset           start from no limits (the group stays)\n"             \
            "Without options, shows the limits.  Options change only the limits they\n"    \
            "name.  Requests over a limit wait in the worker (the client sees a delay,\n"   \
            "never an error); flushes never wait.  With --json, the limits object.\n"      \
            ONLINE_HELP,                                                                    \
        .run = cli_run_limit,                                                               \
    }

#endif
