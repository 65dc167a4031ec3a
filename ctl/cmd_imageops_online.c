/* qcowctl resize, commit and snapshot on an image qcowd serves
 * (doc/protocol.md: resize, commit, snapshot). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "imageops.h"
#include "output.h"
#include "util.h"

/* ---- where the operand is -------------------------------------------------- */

/* Whether something accepts connections on the socket, asked quietly. */
static bool daemon_listens(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;
    bool ok;

    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    strcpy(sa.sun_path, path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return false;
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* The socket qcowctl would use, if there is one to ask (quietly). */
static char *quiet_socket_path(const struct cli *cli)
{
    const char *env = getenv(CTL_SOCKET_ENV);

    if (!cli->socket && !(env && *env) && geteuid() != 0 && !getenv("XDG_RUNTIME_DIR"))
        return NULL;
    return ctl_socket_path(cli);
}

static bool serves(json_object *list, const char *name)
{
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

    for (size_t i = 0; i < n; i++) {
        json_object *v;
        if (json_object_object_get_ex(json_object_array_get_idx(list, i), "name", &v) &&
            strcmp(json_object_get_string(v), name) == 0)
            return true;
    }
    return false;
}

int imageops_locate(struct cli *cli, struct imageops_target *t)
{
    _cleanup_free_ char *path = NULL;
    struct ctl_conn c;
    json_object *list = NULL;
    int r;

    if (t->where != IMAGEOPS_AUTO)
        return CLI_CONTINUE;
    t->where = IMAGEOPS_OFFLINE;
    if (cli->socket) {
        t->where = IMAGEOPS_ONLINE;
        return CLI_CONTINUE;
    }
    if (!(path = quiet_socket_path(cli)) || !daemon_listens(path))
        return CLI_CONTINUE;
    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK)
        return r;
    r = ctl_call(&c, "list", NULL, &list);
    ctl_close(&c);
    if (r != CLI_EXIT_OK)
        return r;
    if (serves(list, t->operand))
        t->where = IMAGEOPS_ONLINE;
    json_object_put(list);
    cli_verbose(cli, "%s: %s", t->operand, t->where == IMAGEOPS_ONLINE
                ? "an image qcowd serves" : "not served by qcowd: the file");
    return CLI_CONTINUE;
}

/* ---- small helpers ----------------------------------------------------------- */

static json_object *name_args(const char *name)
{
    json_object *args = json_object_new_object();

    json_object_object_add(args, "name", json_object_new_string(name));
    return args;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static uint64_t u64_of(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

/* Print the reply with --json, else the line that says what happened. */
static int print_result(const struct cli *cli, json_object *ret, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int print_result(const struct cli *cli, json_object *ret, const char *fmt, ...)
{
    _cleanup_free_ char *text = NULL, *clean = NULL;
    va_list ap;
    int n;

    if (cli->json)
        return cli_print_json(ret);
    va_start(ap, fmt);
    n = vasprintf(&text, fmt, ap);
    va_end(ap);
    json_object_put(ret);
    if (n < 0)
        return cli_fail("out of memory");
    clean = cli_clean_text(text);
    cli_say(cli, "%s\n", clean ? clean : text);
    return CLI_EXIT_OK;
}

/* ---- resize ------------------------------------------------------------------ */

int imageops_resize_online(struct cli *cli, const struct imageops_target *t, uint64_t size)
{
    json_object *args = name_args(t->operand), *ret;
    char a[32], b[32];
    int r;

    json_object_object_add(args, "size", json_object_new_int64((int64_t)size));
    r = ctl_call_once(cli, "resize", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    return print_result(cli, ret, "%s: resized from %" PRIu64 " bytes (%s) to %" PRIu64
                        " bytes (%s) while served", t->operand, u64_of(ret, "old-size"),
                        cli_human_size(u64_of(ret, "old-size"), a), u64_of(ret, "size"),
                        cli_human_size(u64_of(ret, "size"), b));
}

/* ---- commit: start it, then follow its events to the end ------------------------ */

struct commit_watch {
    const struct cli *cli;
    const char *name;
    volatile sig_atomic_t done;
    json_object *result;        /* commit-completed's data */
    char *error;                /* commit-failed's */
};

static void on_commit_event(void *ctx, json_object *ev, const char *line)
{
    struct commit_watch *w = ctx;
    json_object *data;
    const char *event = str_of(ev, "event");
    char h[32];

    if (!json_object_object_get_ex(ev, "data", &data) || strcmp(str_of(data, "name"), w->name))
        return;
    if (strcmp(event, "commit-progress") == 0) {
        uint64_t done = u64_of(data, "done"), total = u64_of(data, "total");
        cli_verbose(w->cli, "%s: commit pass %" PRIu64 ": %" PRIu64 " of %" PRIu64 " bytes (%s)",
                    w->name, u64_of(data, "pass"), done, total, cli_human_size(done, h));
    } else if (strcmp(event, "commit-completed") == 0) {
        w->result = json_object_get(data);
        w->done = 1;
    } else if (strcmp(event, "commit-failed") == 0) {
        w->error = strdup(str_of(data, "error"));
        w->done = 1;
    }
    (void)line;
}

static int wait_commit(struct ctl_conn *c, struct commit_watch *w)
{
    char h[32];
    int r = ctl_follow_events(c, &w->done);

    if (r != CLI_EXIT_OK)
        return r;
    if (!w->done)
        return cli_fail("%s: qcowd closed the connection before the commit of %s ended",
                        c->path, w->name);
    if (w->error) {
        _cleanup_free_ char *clean = cli_clean_text(w->error);
        return cli_fail("%s: commit failed: %s", w->name, clean ? clean : w->error);
    }
    json_object *res = TAKE_PTR(w->result);
    return print_result(w->cli, res, "%s: committed %s into %s (%" PRIu64 " bytes, %s, in %"
                        PRIu64 " passes); served from %s now", w->name, str_of(res, "overlay"),
                        str_of(res, "path"), u64_of(res, "copied"),
                        cli_human_size(u64_of(res, "copied"), h), u64_of(res, "passes"),
                        str_of(res, "path"));
}

int imageops_commit_online(struct cli *cli, const struct imageops_target *t)
{
    struct commit_watch w = { .cli = cli, .name = t->operand };
    json_object *args = name_args(t->operand), *ret = NULL;
    struct ctl_conn c;
    int r;

    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK) {
        json_object_put(args);
        return r;
    }
    c.on_event = on_commit_event;
    c.event_ctx = &w;
    /* Events first: none of the commit's may be missed. */
    if ((r = ctl_call(&c, "events", NULL, &ret)) == CLI_EXIT_OK) {
        json_object_put(ret);
        if ((r = ctl_call(&c, "commit", args, &ret)) == CLI_EXIT_OK) {
            cli_verbose(cli, "%s: committing %s into %s", t->operand, str_of(ret, "overlay"),
                        str_of(ret, "path"));
            json_object_put(ret);
            r = wait_commit(&c, &w);
        }
    }
    json_object_put(w.result);
    free(w.error);
    json_object_put(args);
    ctl_close(&c);
    return r;
}

/* ---- snapshot ---------------------------------------------------------------- */

/* NEW does not exist yet: its directory's real path, and its name. */
static char *new_file_path(const char *path)
{
    _cleanup_free_ char *d = strdup(path), *b = strdup(path);
    char real[PATH_MAX], *out = NULL;

    if (!d || !b)
        return NULL;
    if (!realpath(dirname(d), real)) {
        cli_error("%s: cannot find its directory: %s", path, strerror(errno));
        return NULL;
    }
    if (asprintf(&out, "%s%s%s", real, strcmp(real, "/") ? "/" : "", basename(b)) < 0)
        out = NULL;
    return out;
}

int imageops_run_resume(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    enum { OPT_IMAGE = CLI_OPT_COMMAND };
    static const struct option opts[] = {
        { "image", required_argument, NULL, OPT_IMAGE },
        CLI_CONNECTION_OPTIONS,
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    _cleanup_free_ char *image = NULL, *name = NULL;
    json_object *args, *ret;
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        if (opt == OPT_IMAGE) {
            free(image);
            if (!(image = realpath(optarg, NULL)))
                return cli_fail("%s: %s", optarg, strerror(errno));
            continue;
        }
        if ((r = cli_connection_option(cli, cmd, opt, optarg)) == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    args = name_args(argv[optind]);
    if (image)
        json_object_object_add(args, "image", json_object_new_string(image));
    r = ctl_call_once(cli, "resume", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    name = cli_clean_text(argv[optind]);
    if (!image)
        return print_result(cli, ret, "resumed %s", name ? name : "?");
    return print_result(cli, ret, "resumed %s, served from %s now", name ? name : "?", image);
}

int imageops_run_snapshot(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_CONNECTION_OPTIONS,
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    _cleanup_free_ char *path = NULL;
    json_object *args, *ret;
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        if ((r = cli_connection_option(cli, cmd, opt, optarg)) == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 2, 2)) != CLI_CONTINUE)
        return r;
    if (!(path = new_file_path(argv[optind + 1])))
        return CLI_EXIT_FAILURE;
    args = name_args(argv[optind]);
    json_object_object_add(args, "path", json_object_new_string(path));
    r = ctl_call_once(cli, "snapshot", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    return print_result(cli, ret, "%s: served from %s now, over %s", argv[optind],
                        str_of(ret, "path"), str_of(ret, "backing"));
}
