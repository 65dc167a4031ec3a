/* qcowctl: what the command groups share.
 *
 * main.c parses the global options and dispatches to a command of one of
 * the groups below (one file each).  A command parses its own options with
 * cli_common_option() handling the ones every command takes (--json,
 * --quiet, --verbose, --help), and returns the process exit status. */
#ifndef QCOWCTL_CLI_H
#define QCOWCTL_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,       /* the command failed: message on stderr */
    CLI_EXIT_USAGE = 2,         /* bad command line */
    CLI_EXIT_CORRUPT = 3,       /* check: corruption found (and not repaired) */
    CLI_EXIT_LEAKS = 4,         /* check: only leaks found (not repaired) */

    /* Online commands: the daemon's error class, so that scripts can react
     * (the table is in client.c, qcowctl --help and qcowctl(8)). */
    CLI_EXIT_NOT_FOUND = 3,     /* NotFound: no attachment with that name */
    CLI_EXIT_EXISTS = 4,        /* AlreadyExists: the name or image is attached */
    CLI_EXIT_LOCKED = 5,        /* Locked: another program holds the image */
    CLI_EXIT_DENIED = 6,        /* PermissionDenied, or the socket refuses us */
    CLI_EXIT_STATE = 7,         /* InvalidState: e.g. pause a paused image */
    CLI_EXIT_BUSY = 8,          /* Busy: the ring belongs to another client */
    CLI_EXIT_LIMIT = 9,         /* LimitReached: too many images or clients */
    CLI_EXIT_OP_FAILED = 10,    /* OperationFailed: the worker's resize failed */
};

/* Parsing functions return CLI_CONTINUE when the command should go on, or
 * the exit status to stop with (after printing why, or the help).  A
 * command's own option handler returns CLI_NOT_MINE for options it leaves
 * to cli_common_option(). */
#define CLI_CONTINUE (-1)
#define CLI_NOT_MINE (-2)

struct cli {
    bool json;
    bool quiet;
    int verbose;
    const char *socket;         /* --socket (online commands), or NULL */
    unsigned timeout_s;         /* --timeout: seconds to wait for a reply, 0: no limit */
};

struct cli_command {
    const char *name;
    const char *synopsis;       /* after "qcowctl NAME " */
    const char *summary;        /* one line for `qcowctl --help` */
    const char *help;           /* the options, for `qcowctl NAME --help` */
    int (*run)(struct cli *cli, const struct cli_command *cmd, int argc, char **argv);
};

struct cli_group {
    const char *title;
    const struct cli_command *commands;
    size_t n_commands;
};

extern const struct cli_group cli_create_group;
extern const struct cli_group cli_info_group;
extern const struct cli_group cli_check_group;
extern const struct cli_group cli_convert_group;
extern const struct cli_group cli_rw_group;
extern const struct cli_group cli_space_group;
extern const struct cli_group cli_imageops_group;
extern const struct cli_group cli_online_group;
extern const struct cli_group cli_export_group;

/* ---- option parsing (args.c) --------------------------------------------- */

/* Codes of the options every command takes; commands number theirs from
 * CLI_OPT_COMMAND (or use their short letter). */
enum {
    CLI_OPT_JSON = 0x100,
    CLI_OPT_QUIET,
    CLI_OPT_HELP,
    CLI_OPT_SOCKET,             /* online commands: --socket PATH */
    CLI_OPT_TIMEOUT,            /* online commands: --timeout SECS */
    CLI_OPT_COMMAND = 0x200,
};

#define CLI_COMMON_OPTIONS                                      \
    { "json", no_argument, NULL, CLI_OPT_JSON },                \
    { "quiet", no_argument, NULL, 'q' },                        \
    { "verbose", no_argument, NULL, 'v' },                      \
    { "help", no_argument, NULL, 'h' }

/* The options of every command that talks to qcowd. */
#define CLI_CONNECTION_OPTIONS                                  \
    { "socket", required_argument, NULL, CLI_OPT_SOCKET },      \
    { "timeout", required_argument, NULL, CLI_OPT_TIMEOUT }

/* Short options every command takes, to start a command's optstring with
 * (the leading ':' reports a missing argument as ':'). */
#define CLI_COMMON_SHORT ":qvh"

/* Start parsing a command's options (resets getopt). */
void cli_begin_options(void);

/* An option the command did not handle itself: the common ones, --help
 * (prints the help, returns 0), unknown or incomplete ones (usage error, 2).
 * CLI_CONTINUE when parsing goes on.  The usual loop:
 *     r = my_option(cmd, opt, ...);
 *     if (r == CLI_NOT_MINE) r = cli_common_option(cli, cmd, opt, argv);
 *     if (r != CLI_CONTINUE) return r; */
int cli_common_option(struct cli *cli, const struct cli_command *cmd, int opt, char **argv);

/* Check the number of operands left after the options. */
int cli_operands(const struct cli_command *cmd, int argc, int min, int max);

/* Parse operands and option values: CLI_CONTINUE, or a usage error
 * (CLI_EXIT_USAGE after the message). */
int cli_parse_size(const struct cli_command *cmd, const char *what, const char *s, uint64_t *out);
int cli_parse_format(const struct cli_command *cmd, const char *s, enum image_format *out);
int cli_parse_uint(const struct cli_command *cmd, const char *what, const char *s,
                   unsigned long min, unsigned long max, unsigned long *out);

/* --socket PATH and --timeout SECS (CLI_CONNECTION_OPTIONS) into cli;
 * CLI_NOT_MINE for any other option.  cmd is NULL before the command name. */
int cli_connection_option(struct cli *cli, const struct cli_command *cmd, int opt,
                          const char *arg);

/* A qcow cluster size in bytes (a power of two, 512 to 64K) as its bits. */
int cli_parse_cluster_size(const struct cli_command *cmd, const char *s, unsigned *bits);

void cli_print_command_help(const struct cli_command *cmd);

/* ---- opening images (open.c) --------------------------------------------- */

struct cli_open {
    const char *path;
    enum image_format format;
    bool read_only;
    const char *key_file;       /* --key-file, or NULL */
    bool need_key;              /* the command reads or writes guest data */
};

/* Open an image and its chain.  With a key file, the key is always used;
 * without one, an image whose chain holds an encrypted layer is reopened
 * with a password asked on the terminal when need_key is set, and refused
 * when there is no terminal.  Returns a CLI exit status (message printed). */
int cli_open_image(const struct cli_open *o, struct image **out);

/* Close an image, reporting a failed writeback.  Returns an exit status. */
int cli_close_image(struct image *img);

/* True when the image's chain has an encrypted layer. */
bool cli_image_encrypted(const struct image *img);

#endif
