/* qcowctl export add|list|remove: NBD exports that qcowd runs for attached
 * images (nbdkit with nbdkit-qcowd-plugin; see doc/nbd.md). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "output.h"
#include "util.h"

enum { OPT_NBD = CLI_OPT_COMMAND, OPT_TLS_CERTS, OPT_INSECURE };

struct export_args {
    const char *sub;            /* add, list, remove */
    const char *name;
    const char *nbd;
    const char *tls_certs;
    bool read_only;
    bool insecure;
};

static int export_option(struct cli *cli, const struct cli_command *cmd, int opt,
                         struct export_args *a)
{
    int r;

    if ((r = cli_connection_option(cli, cmd, opt, optarg)) != CLI_NOT_MINE)
        return r;
    switch (opt) {
    case OPT_NBD: a->nbd = optarg; return CLI_CONTINUE;
    case OPT_TLS_CERTS: a->tls_certs = optarg; return CLI_CONTINUE;
    case OPT_INSECURE: a->insecure = true; return CLI_CONTINUE;
    case 'r': a->read_only = true; return CLI_CONTINUE;
    }
    return CLI_NOT_MINE;
}

/* Relative paths are the caller's, not qcowd's: make them absolute. */
static char *absolute(const char *path)
{
    char *cwd, *abs = NULL;

    if (path[0] == '/')
        return strdup(path);
    if (!(cwd = getcwd(NULL, 0)))
        return NULL;
    if (asprintf(&abs, "%s/%s", cwd, path) < 0)
        abs = NULL;
    free(cwd);
    return abs;
}

static int parse_export(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                        struct export_args *a)
{
    static const struct option opts[] = {
        { "nbd", required_argument, NULL, OPT_NBD },
        { "tls-certs", required_argument, NULL, OPT_TLS_CERTS },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "read-only", no_argument, NULL, 'r' },
        CLI_CONNECTION_OPTIONS,
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    int opt, r, want;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "r", opts, NULL)) != -1) {
        r = export_option(cli, cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 2)) != CLI_CONTINUE)
        return r;
    a->sub = argv[optind];
    if (strcmp(a->sub, "list") != 0 && strcmp(a->sub, "add") != 0 &&
        strcmp(a->sub, "remove") != 0)
        return cli_usage_error(cmd, "export: unknown subcommand '%s' (add, list or remove)",
                               a->sub);
    want = strcmp(a->sub, "list") == 0 ? 1 : 2;
    if (argc - optind != want)
        return cli_usage_error(cmd, "export %s: %s", a->sub,
                               want == 1 ? "takes no name" : "needs the image's NAME");
    a->name = want == 2 ? argv[optind + 1] : NULL;
    if (strcmp(a->sub, "add") == 0 && !a->nbd)
        return cli_usage_error(cmd, "export add: --nbd unix:PATH or tcp:HOST:PORT is required");
    if (strcmp(a->sub, "add") != 0 && (a->nbd || a->tls_certs || a->read_only || a->insecure))
        return cli_usage_error(cmd, "export %s: --nbd, --tls-certs, --read-only and "
                               "--insecure belong to export add", a->sub);
    return CLI_CONTINUE;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return "?";
    return json_object_get_string(v);
}

/* ---- add ------------------------------------------------------------------------- */

static json_object *add_args(const struct export_args *a, char **owned)
{
    json_object *args = json_object_new_object();
    const char *nbd = a->nbd;

    if (strncmp(nbd, "unix:", 5) == 0 && nbd[5] != '/') {
        char *path = absolute(nbd + 5);
        if (path && asprintf(owned, "unix:%s", path) >= 0)
            nbd = *owned;
        free(path);
    }
    json_object_object_add(args, "name", json_object_new_string(a->name));
    json_object_object_add(args, "nbd", json_object_new_string(nbd));
    if (a->tls_certs) {
        char *dir = absolute(a->tls_certs);
        json_object_object_add(args, "tls-certs", json_object_new_string(dir ? dir
                                                                              : a->tls_certs));
        free(dir);
    }
    if (a->read_only)
        json_object_object_add(args, "read-only", json_object_new_boolean(true));
    if (a->insecure)
        json_object_object_add(args, "insecure", json_object_new_boolean(true));
    return args;
}

static int run_add(struct cli *cli, const struct export_args *a)
{
    char *owned = NULL, *uri;
    json_object *args = add_args(a, &owned), *ret;
    int r = ctl_call_once(cli, "export-add", args, &ret);

    json_object_put(args);
    free(owned);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    uri = cli_clean_text(str_of(ret, "uri"));
    cli_say(cli, "exported %s: %s\n", a->name, uri ? uri : "?");
    free(uri);
    json_object_put(ret);
    return CLI_EXIT_OK;
}

/* ---- list and remove ------------------------------------------------------------- */

static void list_row(struct cli_table *t, json_object *e)
{
    json_object *v;
    char pid[24] = "-";

    if (json_object_object_get_ex(e, "pid", &v) && json_object_get_int64(v) > 0)
        snprintf(pid, sizeof pid, "%" PRId64, json_object_get_int64(v));
    const char *row[] = { str_of(e, "name"), str_of(e, "state"), pid, str_of(e, "uri") };
    cli_table_add(t, row);
}

static int print_list(const struct cli *cli, json_object *list)
{
    static const char *const headers[] = { "NAME", "STATE", "PID", "URI" };
    struct cli_table t;
    int r;

    if (!json_object_is_type(list, json_type_array))
        return cli_fail("export list: qcowd's answer is not an array");
    if (cli->quiet)
        return CLI_EXIT_OK;
    if (json_object_array_length(list) == 0) {
        printf("no image is exported\n");
        return CLI_EXIT_OK;
    }
    cli_table_init(&t, "llrl", headers);
    for (size_t i = 0; i < json_object_array_length(list); i++)
        list_row(&t, json_object_array_get_idx(list, i));
    r = cli_table_print(&t, "");
    cli_table_free(&t);
    return r;
}

static int run_list(struct cli *cli)
{
    json_object *ret;
    int r;

    if ((r = ctl_call_once(cli, "export-list", NULL, &ret)) != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    r = print_list(cli, ret);
    json_object_put(ret);
    return r;
}

static int run_remove(struct cli *cli, const struct export_args *a)
{
    json_object *args = json_object_new_object(), *ret;
    int r;

    json_object_object_add(args, "name", json_object_new_string(a->name));
    r = ctl_call_once(cli, "export-remove", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    json_object_put(ret);
    cli_say(cli, "export of %s removed\n", a->name);
    return CLI_EXIT_OK;
}

static int run_export(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct export_args a = { 0 };
    int r;

    if ((r = parse_export(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if (strcmp(a.sub, "add") == 0)
        return run_add(cli, &a);
    if (strcmp(a.sub, "remove") == 0)
        return run_remove(cli, &a);
    return run_list(cli);
}

static const struct cli_command export_commands[] = {
    {
        .name = "export",
        .synopsis = "add NAME --nbd unix:PATH|tcp:[HOST:]PORT [--tls-certs DIR] [--read-only] "
                    "[--insecure] | list | remove NAME",
        .summary = "serve an attached image over NBD (qcowd runs nbdkit for it)",
        .help =
            "Subcommands:\n"
            "  add NAME    export the image attached as NAME; returns when it is served\n"
            "  list        the exports, their state and NBD URI\n"
            "  remove NAME stop serving NAME over NBD (detach does too)\n"
            "Options of add:\n"
            "      --nbd ADDR        unix:PATH (a socket file, mode 0660) or tcp:HOST:PORT\n"
            "                        (tcp:PORT: 127.0.0.1 without TLS, every address with;\n"
            "                        port 0 picks a free one: see the URI printed)\n"
            "      --tls-certs DIR   require TLS, with nbdkit's certificates in DIR\n"
            "  -r, --read-only       serve it read-only\n"
            "      --insecure        allow plain NBD on an address beyond this host\n"
            "Connection options: --socket PATH, --timeout SECS (see qcowctl attach --help).\n"
            "Exit status: as for the other online commands; 3 when NAME is not attached\n"
            "(add) or not exported (remove), 4 when it is exported already or the\n"
            "address is taken, 8 when another client holds its ring.\n",
        .run = run_export,
    },
};

const struct cli_group cli_export_group = {
    .title = "NBD exports (through qcowd)",
    .commands = export_commands,
    .n_commands = ARRAY_SIZE(export_commands),
};
