/* qcowctl resize, commit and snapshot: what the offline forms
 * (cmd_imageops.c) and the online ones (cmd_imageops_online.c) share. */
#ifndef QCOWCTL_IMAGEOPS_H
#define QCOWCTL_IMAGEOPS_H

#include "cli.h"

enum imageops_where { IMAGEOPS_AUTO = 0, IMAGEOPS_OFFLINE, IMAGEOPS_ONLINE };

struct imageops_target {
    const char *operand;        /* IMAGE (a file) or NAME (an attachment) */
    enum imageops_where where;
};

/* Decide where the operand is: --offline and --online (or --socket) say;
 * otherwise an attachment when qcowd answers on its socket and serves one
 * by that name, else a file.  CLI_CONTINUE, or an exit status. */
int imageops_locate(struct cli *cli, struct imageops_target *t);

/* The online forms: protocol resize and commit (waiting for the end). */
int imageops_resize_online(struct cli *cli, const struct imageops_target *t, uint64_t size);
int imageops_commit_online(struct cli *cli, const struct imageops_target *t);

/* qcowctl resume [--image OVERLAY] NAME (online only). */
int imageops_run_resume(struct cli *cli, const struct cli_command *cmd, int argc, char **argv);

/* qcowctl snapshot NAME NEW (online only). */
int imageops_run_snapshot(struct cli *cli, const struct cli_command *cmd, int argc, char **argv);

#endif
