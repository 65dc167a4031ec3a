/* qcowctl's online commands: they talk to a running qcowd over its control
 * socket (client.c) and show what it answers, as text or, with --json, as
 * the "return" value itself. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "imageops.h"
#include "error.h"
#include "key.h"
#include "limits.h"
#include "output.h"
#include "util.h"

enum {
    OPT_NAME = CLI_OPT_COMMAND,
    OPT_CACHE,
    OPT_KEY_FILE,
    OPT_NO_WAIT,
    OPT_POLL_US,
    OPT_RING_PAGE_ORDER,
    OPT_DATA_PAGES,
};

#define ONLINE_OPTIONS                                                  \
    CLI_CONNECTION_OPTIONS,                                             \
    CLI_COMMON_OPTIONS

#define ONLINE_HELP                                                                       \
    "Connection options:\n"                                                               \
    "      --socket PATH     qcowd's control socket (default: $" CTL_SOCKET_ENV ", else\n"  \
    "                        " CTL_DEFAULT_SOCKET_ROOT " as root and\n"                     \
    "                        $XDG_RUNTIME_DIR/qcowd.sock otherwise)\n"                     \
    "      --timeout SECS    fail when qcowd does not answer within SECS seconds\n"        \
    "                        (default: wait as long as it takes)\n"                        \
    "Exit status:\n"                                                                      \
    "  0  success\n"                                                                      \
    "  1  failure: qcowd's error (ImageError, WorkerError, ...) or no connection\n"       \
    "  2  usage error, or an argument qcowd rejects (InvalidParameter)\n"                \
    "  3  no image is attached under that name (NotFound)\n"                             \
    "  4  the name or the image is attached already (AlreadyExists)\n"                   \
    "  5  another program holds the image (Locked)\n"                                    \
    "  6  not authorised to use qcowd (PermissionDenied, or the socket's mode)\n"        \
    "  7  the image is not in a state for that (InvalidState)\n"                         \
    "  8  the ring is connected to another client (Busy)\n"                              \
    "  9  too many images or clients (LimitReached)\n"                                   \
    "  10 resize failed in the worker, the image still served (OperationFailed)\n"

struct online_args {
    const char *operand;        /* IMAGE or NAME */
    const char *name;           /* attach --name */
    const char *cache;
    const char *format;
    const char *key_file;
    bool read_only;
    long poll_us;               /* attach --poll-us; -1: not given */
    long ring_page_order;       /* attach --ring-page-order; -1: not given */
    long data_pages;            /* attach --data-pages; -1: not given */
    struct cli_limits limits;   /* attach's I/O limit options */
    bool watch;                 /* stats */
    double interval;
    unsigned long count;
    bool no_wait;               /* shutdown */
};

/* What parsing may have allocated (attach's I/O limits). */
static void online_args_free(struct online_args *a)
{
    json_object_put(a->limits.obj);
    a->limits.obj = NULL;
}

/* ---- option parsing ------------------------------------------------------ */

static int parse_interval(const struct cli_command *cmd, const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0.1 || v > 86400)
        return cli_usage_error(cmd, "%s: invalid interval '%s' (expected 0.1 to 86400 seconds)",
                               cmd->name, s);
    *out = v;
    return CLI_CONTINUE;
}

static int one_of(const struct cli_command *cmd, const char *what, const char *s,
                  const char *const *allowed, const char *expected)
{
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, s) == 0)
            return CLI_CONTINUE;
    return cli_usage_error(cmd, "%s: unknown %s '%s' (expected %s)", cmd->name, what, s, expected);
}

static int online_option(struct cli *cli, const struct cli_command *cmd, int opt,
                         struct online_args *a)
{
    static const char *const caches[] = { "none", "writeback", NULL };
    static const char *const formats[] = { "auto", "qcow", "raw", NULL };
    unsigned long v;
    int r;

    if ((r = cli_connection_option(cli, cmd, opt, optarg)) != CLI_NOT_MINE)
        return r;
    switch (opt) {
    case 'n':
        a->name = optarg;
        return CLI_CONTINUE;
    case 'r':
        a->read_only = true;
        return CLI_CONTINUE;
    case OPT_CACHE:
        a->cache = optarg;
        return one_of(cmd, "cache mode", optarg, caches, "none or writeback");
    case 'f':
        a->format = optarg;
        return one_of(cmd, "image format", optarg, formats, "auto, qcow or raw");
    case OPT_KEY_FILE:
        a->key_file = optarg;
        return CLI_CONTINUE;
    case OPT_POLL_US:
        if ((r = cli_parse_uint(cmd, "poll time", optarg, 0, 1000, &v)) == CLI_CONTINUE)
            a->poll_us = (long)v;
        return r;
    case OPT_RING_PAGE_ORDER:
        /* The ranges are qcowd's to check (InvalidParameter says them). */
        if ((r = cli_parse_uint(cmd, "ring page order", optarg, 0, 1000, &v)) == CLI_CONTINUE)
            a->ring_page_order = (long)v;
        return r;
    case OPT_DATA_PAGES:
        if ((r = cli_parse_uint(cmd, "data pages", optarg, 0, UINT32_MAX, &v)) == CLI_CONTINUE)
            a->data_pages = (long)v;
        return r;
    case 'w':
        a->watch = true;
        return CLI_CONTINUE;
    case 'i':
        return parse_interval(cmd, optarg, &a->interval);
    case 'c':
        return cli_parse_uint(cmd, "count", optarg, 1, ULONG_MAX, &a->count);
    case OPT_NO_WAIT:
        a->no_wait = true;
        return CLI_CONTINUE;
    }
    return cli_limit_option(cmd, opt, optarg, &a->limits);
}

/* Parse a command's options and its operand (min..max of them, at most one). */
static int parse_online(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                        const struct option *opts, const char *shortopts, int min, int max,
                        struct online_args *a)
{
    bool interval_given = false, count_given = false;
    int opt, r;

    a->interval = 1.0;
    cli_begin_options();
    while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        interval_given |= opt == 'i';
        count_given |= opt == 'c';
        r = online_option(cli, cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, min, max)) != CLI_CONTINUE)
        return r;
    if (optind < argc)
        a->operand = argv[optind];
    if ((interval_given || count_given) && !a->watch)
        return cli_usage_error(cmd, "%s: --%s needs --watch", cmd->name,
                               interval_given ? "interval" : "count");
    if (a->operand && !*a->operand)
        return cli_usage_error(cmd, "%s: empty operand", cmd->name);
    return CLI_CONTINUE;
}

/* ---- JSON helpers ------------------------------------------------------- */

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;

    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

static const char *str_member(json_object *o, const char *key)
{
    json_object *v = member(o, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool int_member(json_object *o, const char *key, int64_t *out)
{
    json_object *v = member(o, key);

    if (!v || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static const char *yes_no(json_object *o, const char *key)
{
    json_object *v = member(o, key);

    if (!v || !json_object_is_type(v, json_type_boolean))
        return "-";
    return json_object_get_boolean(v) ? "yes" : "no";
}

static bool flag_member(json_object *o, const char *key)
{
    return strcmp(yes_no(o, key), "yes") == 0;
}

/* The value as text: strings as they are, the rest as compact JSON. */
static const char *value_text(json_object *v)
{
    if (!v)
        return "null";
    if (json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Print "label: value" with the value made safe for a terminal. */
static void print_field(const char *label, const char *value)
{
    char *clean = cli_clean_text(value);

    printf("%s: %s\n", label, clean ? clean : "?");
    free(clean);
}

static const char *human_size_or_dash(json_object *o, const char *key, char buf[static 32])
{
    int64_t v;

    if (!int_member(o, key, &v) || v < 0)
        return "-";
    return cli_human_size((uint64_t)v, buf);
}

/* ---- the connection for one command ------------------------------------- */

static json_object *name_args(const char *name)
{
    json_object *args = json_object_new_object();

    json_object_object_add(args, "name", json_object_new_string(name));
    return args;
}

/* Ctrl-C (or SIGTERM) ends `stats --watch` and `events` normally; a second
 * one kills as usual. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_interrupts(void)
{
    struct sigaction sa = { .sa_handler = on_interrupt, .sa_flags = (int)SA_RESETHAND };

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- attach ------------------------------------------------------------- */

/* IMAGE as an absolute path (qcowd resolves names against its own
 * directory, not ours).  The name is kept as typed otherwise. */
static char *absolute_path(const char *path)
{
    char *cwd, *abs = NULL;

    if (path[0] == '/')
        return strdup(path);
    if (!(cwd = getcwd(NULL, 0))) {
        cli_error("%s: cannot find the current directory: %s", path, strerror(errno));
        return NULL;
    }
    if (asprintf(&abs, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "",
                 strncmp(path, "./", 2) == 0 ? path + 2 : path) < 0)
        abs = NULL;
    free(cwd);
    if (!abs)
        cli_error("out of memory");
    return abs;
}

static bool valid_utf8(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (c == 0 || len == 0 || i + len > n || (len == 2 && c < 0xc2))
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* Whether the image's chain is encrypted, looked at locally; false when it
 * cannot be opened here (qcowd then says what is wrong with it). */
static bool probably_encrypted(const char *path, const char *format)
{
    struct image_open_opts opts = { .format = IMAGE_FORMAT_AUTO, .read_only = true };
    struct image *img;
    bool enc;

    if (format && image_format_parse(format, &opts.format) < 0)
        return false;
    if (opts.format == IMAGE_FORMAT_RAW)
        return false;
    qc_clear_error();
    if (image_open(path, &opts, &img) < 0) {
        qc_clear_error();
        return false;
    }
    enc = cli_image_encrypted(img);
    image_close(img);
    qc_clear_error();
    return enc;
}

/* The password to send: from --key-file, or asked on the terminal when the
 * image is encrypted.  *have is false when none is needed. */
static int attach_key(const struct online_args *a, const char *path, struct cli_key *key,
                      bool *have)
{
    int r;

    *have = false;
    if (a->key_file) {
        if ((r = key_read_file(a->key_file, key)) != 0)
            return r;
    } else if (!probably_encrypted(path, a->format)) {
        return CLI_EXIT_OK;
    } else if (!key_can_prompt()) {
        return cli_fail("%s: image is encrypted, a key is needed (--key-file)", a->operand);
    } else if ((r = key_prompt(a->operand, false, key)) != 0) {
        return r;
    }
    if (!valid_utf8(key->data, key->len)) {
        key_wipe(key);
        return cli_fail("%s: the password must be UTF-8 text without NUL bytes",
                        a->key_file ? a->key_file : a->operand);
    }
    *have = true;
    return CLI_EXIT_OK;
}

/* Wipe the copy of the password json-c keeps in the arguments. */
static void wipe_key_arg(json_object *args)
{
    json_object *v = member(args, "key");

    if (v && json_object_is_type(v, json_type_string))
        explicit_bzero((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

/* The image, opened here with our own rights: qcowd serves the descriptor
 * we pass, so we reach only what we could open ourselves.  O_NONBLOCK so a
 * FIFO cannot hang us (qcowd refuses anything but a file or a device). */
static int open_for_attach(const char *path, bool read_only, int *fd)
{
    bool denied;
    int e;

    *fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (*fd >= 0)
        return CLI_EXIT_OK;
    e = errno;
    denied = e == EACCES || e == EPERM || e == EROFS;
    cli_error("%s: %s%s", path, strerror(e),
              denied && !read_only ? " (a read-write attach needs write access)" : "");
    return denied ? CLI_EXIT_DENIED : CLI_EXIT_FAILURE;
}

static void say_attached(const struct cli *cli, json_object *ret)
{
    char size[32], *name = cli_clean_text(str_member(ret, "name"));
    char *path = cli_clean_text(str_member(ret, "path"));
    int64_t pid = 0;

    int_member(ret, "pid", &pid);
    cli_say(cli, "attached %s: %s (%s, %s, %s, worker pid %" PRId64 ")\n", name ? name : "?",
            path ? path : "?", str_member(ret, "format") ? str_member(ret, "format") : "?",
            human_size_or_dash(ret, "size", size),
            flag_member(ret, "read-only") ? "read-only" : "read-write", pid);
    free(name);
    free(path);
}

static int run_attach(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        { "name", required_argument, NULL, 'n' },
        { "read-only", no_argument, NULL, 'r' },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "format", required_argument, NULL, 'f' },
        { "key-file", required_argument, NULL, OPT_KEY_FILE },
        { "poll-us", required_argument, NULL, OPT_POLL_US },
        { "ring-page-order", required_argument, NULL, OPT_RING_PAGE_ORDER },
        { "data-pages", required_argument, NULL, OPT_DATA_PAGES },
        CLI_LIMIT_OPTIONS,
        ONLINE_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    _cleanup_(online_args_free) struct online_args a = {
        .poll_us = -1, .ring_page_order = -1, .data_pages = -1,
    };
    _cleanup_(ctl_close) struct ctl_conn c = CTL_CONN_CLOSED;
    struct cli_key key;
    _cleanup_json_ json_object *args = NULL, *ret = NULL;
    _cleanup_free_ char *path = NULL, *key_path = NULL;
    _cleanup_close_ int fd = -1;
    bool have_key;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT "n:rf:", 1, 1, &a)) !=
            CLI_CONTINUE ||
        (r = cli_limits_finish(cmd, &a.limits)) != CLI_CONTINUE)
        return r;
    if (!(path = absolute_path(a.operand)))
        return CLI_EXIT_FAILURE;
    /* Connect first: no password is asked for a daemon that is not there. */
    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK)
        return r;
    if ((r = open_for_attach(path, a.read_only, &fd)) != CLI_EXIT_OK)
        return r;
    if ((r = attach_key(&a, path, &key, &have_key)) != CLI_EXIT_OK)
        return r;
    args = json_object_new_object();
    json_object_object_add(args, "path", json_object_new_string(path));
    json_object_object_add(args, "fd", json_object_new_boolean(true));
    if (a.name)
        json_object_object_add(args, "name", json_object_new_string(a.name));
    if (a.read_only)
        json_object_object_add(args, "read-only", json_object_new_boolean(true));
    if (a.cache)
        json_object_object_add(args, "cache", json_object_new_string(a.cache));
    if (a.format)
        json_object_object_add(args, "format", json_object_new_string(a.format));
    if (a.poll_us >= 0)
        json_object_object_add(args, "poll-us", json_object_new_int((int32_t)a.poll_us));
    if (a.ring_page_order >= 0)
        json_object_object_add(args, "ring-page-order", json_object_new_int64(a.ring_page_order));
    if (a.data_pages >= 0)
        json_object_object_add(args, "data-pages", json_object_new_int64(a.data_pages));
    if (a.limits.obj)
        json_object_object_add(args, "io-limits", TAKE_PTR(a.limits.obj));
    if (have_key) {
        json_object_object_add(args, "key", json_object_new_string_len((const char *)key.data,
                                                                        (int)key.len));
        key_wipe(&key);
    }
    /* Recorded by qcowd, which reads the key there again after a restart. */
    if (a.key_file && (key_path = absolute_path(a.key_file)))
        json_object_object_add(args, "key-file", json_object_new_string(key_path));
    r = ctl_call_fd(&c, "attach", args, fd, &ret);
    wipe_key_arg(args);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(TAKE_PTR(ret));
    say_attached(cli, ret);
    return CLI_EXIT_OK;
}

/* ---- detach, pause, resume ---------------------------------------------- */

static int run_named(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    struct online_args a = { 0 };
    json_object *args, *ret;
    char *name;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT, 1, 1, &a)) !=
        CLI_CONTINUE)
        return r;
    args = name_args(a.operand);
    r = ctl_call_once(cli, cmd->name, args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    json_object_put(ret);
    name = cli_clean_text(a.operand);
    cli_say(cli, "%s %s\n",
            strcmp(cmd->name, "detach") == 0 ? "detached"
            : strcmp(cmd->name, "pause") == 0 ? "paused" : "resumed", name ? name : "?");
    free(name);
    return CLI_EXIT_OK;
}

/* ---- list --------------------------------------------------------------- */

static void list_row(struct cli_table *t, json_object *img)
{
    char size[32], pid[24] = "-", state[64];
    const char *raw_state = str_member(img, "state") ? str_member(img, "state") : "?";
    int64_t v;

    if (int_member(img, "pid", &v) && v > 0)
        snprintf(pid, sizeof pid, "%" PRId64, v);
    /* An adopted worker is not qcowd's child: say so where people look. */
    snprintf(state, sizeof state, "%s%s", raw_state,
             flag_member(img, "adopted") ? " (adopted)" : "");
    const char *row[] = {
        str_member(img, "name") ? str_member(img, "name") : "?",
        state,
        pid,
        human_size_or_dash(img, "size", size),
        str_member(img, "format") ? str_member(img, "format") : "-",
        yes_no(img, "read-only"),
        yes_no(img, "connected"),
        str_member(img, "path") ? str_member(img, "path") : "?",
    };
    cli_table_add(t, row);
}

static int print_list(const struct cli *cli, json_object *list)
{
    static const char *const headers[] = { "NAME", "STATE", "PID", "SIZE", "FORMAT", "RO",
                                           "CONNECTED", "PATH" };
    struct cli_table t;
    int r;

    if (!json_object_is_type(list, json_type_array))
        return cli_fail("list: qcowd's answer is not an array");
    if (cli->quiet)
        return CLI_EXIT_OK;
    if (json_object_array_length(list) == 0) {
        printf("no image is attached\n");
        return CLI_EXIT_OK;
    }
    cli_table_init(&t, "llrrllll", headers);
    for (size_t i = 0; i < json_object_array_length(list); i++)
        list_row(&t, json_object_array_get_idx(list, i));
    r = cli_table_print(&t, "");
    cli_table_free(&t);
    return r;
}

static int run_list(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    struct online_args a = { 0 };
    json_object *ret;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT, 0, 0, &a)) !=
        CLI_CONTINUE)
        return r;
    if ((r = ctl_call_once(cli, "list", NULL, &ret)) != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    r = print_list(cli, ret);
    json_object_put(ret);
    return r;
}

/* ---- query -------------------------------------------------------------- */

static void print_chain(json_object *chain)
{
    char size[32];

    printf("backing chain:\n");
    for (size_t i = 0; i < json_object_array_length(chain); i++) {
        json_object *l = json_object_array_get_idx(chain, i);
        char *file = cli_clean_text(str_member(l, "filename"));
        char *fmt = cli_clean_text(str_member(l, "format"));
        printf("    [%zu] %s (%s, %s)\n", i, file ? file : "?", fmt ? fmt : "?",
               human_size_or_dash(l, "virtual-size", size));
        free(file);
        free(fmt);
    }
}

static void print_ring(json_object *ring)
{
    static const struct {
        const char *key, *label;
    } fields[] = {
        { "ring-page-order", "ring page order" },
        { "data-pages", "ring data pages" },
        { "max-indirect-segments", "ring max indirect segments" },
    };
    char size[32];
    int64_t v;

    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (int_member(ring, fields[i].key, &v))
            printf("%s: %" PRId64 "\n", fields[i].label, v);
    if (int_member(ring, "capacity-sectors", &v) && v >= 0)
        printf("ring capacity: %" PRId64 " sectors (%s)\n", v,
               cli_human_size((uint64_t)v * 512, size));
    json_object_object_foreach(ring, key, val) {
        bool known = strcmp(key, "capacity-sectors") == 0;
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
            known |= strcmp(key, fields[i].key) == 0;
        if (!known) {
            char label[128];
            snprintf(label, sizeof label, "ring %s", key);
            print_field(label, value_text(val));
        }
    }
}

static void print_query(json_object *q)
{
    static const char *const plain[][2] = {
        { "name", "name" }, { "path", "path" }, { "state", "state" }, { "pid", "worker pid" },
        { "format", "file format" },
    };
    static const char *const flags[][2] = {
        { "encrypted", "encrypted" }, { "read-only", "read-only" }, { "connected", "connected" },
    };
    static const char *const shown[] = { "name", "path", "state", "pid", "format", "size",
                                         "cluster-size", "encrypted", "read-only", "cache",
                                         "connected", "restarts", "error", "ring", "chain",
                                         "poll-us", "ring-renewals", "io-limits" };
    char size[32];
    int64_t v;
    json_object *o;

    for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
        if ((o = member(q, plain[i][0])))
            print_field(plain[i][1], value_text(o));
    if (int_member(q, "size", &v) && v >= 0)
        printf("virtual size: %s (%" PRId64 " bytes)\n", cli_human_size((uint64_t)v, size), v);
    if (int_member(q, "cluster-size", &v))
        printf("cluster size: %" PRId64 "\n", v);
    for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
        if (member(q, flags[i][0]))
            printf("%s: %s\n", flags[i][1], yes_no(q, flags[i][0]));
    if ((o = member(q, "cache")))
        print_field("cache", value_text(o));
    if (int_member(q, "poll-us", &v))
        printf("busy-poll: %" PRId64 " us\n", v);
    if (int_member(q, "restarts", &v))
        printf("restarts: %" PRId64 "\n", v);
    if (int_member(q, "ring-renewals", &v))
        printf("ring renewals: %" PRId64 "\n", v);
    if ((o = member(q, "error")))
        print_field("error", value_text(o));
    if ((o = member(q, "io-limits")))
        cli_print_limits("I/O limits", o);
    /* Fields this qcowctl does not know yet, as they come. */
    json_object_object_foreach(q, key, val) {
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
            known |= strcmp(key, shown[i]) == 0;
        if (!known) {
            char label[128];
            snprintf(label, sizeof label, "%s", key);
            for (char *p = label; *p; p++)
                if (*p == '-')
                    *p = ' ';
            print_field(label, value_text(val));
        }
    }
    if ((o = member(q, "ring")) && json_object_is_type(o, json_type_object))
        print_ring(o);
    if ((o = member(q, "chain")) && json_object_is_type(o, json_type_array))
        print_chain(o);
}

static int run_query(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    struct online_args a = { 0 };
    json_object *args, *ret;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT, 1, 1, &a)) !=
        CLI_CONTINUE)
        return r;
    args = name_args(a.operand);
    r = ctl_call_once(cli, "query", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    if (!json_object_is_type(ret, json_type_object))
        r = cli_fail("query: qcowd's answer is not an object");
    else if (!cli->quiet)
        print_query(ret);
    json_object_put(ret);
    return r;
}

/* ---- stats -------------------------------------------------------------- */

static const char *const stat_ops[] = { "read", "write", "flush", "discard" };

static const char *latency_text(int64_t us, char buf[static 32])
{
    if (us < 1000)
        snprintf(buf, 32, "%" PRId64 " us", us);
    else if (us < 1000000)
        snprintf(buf, 32, "%.3g ms", (double)us / 1e3);
    else
        snprintf(buf, 32, "%.3g s", (double)us / 1e6);
    return buf;
}

static const char *uptime_text(int64_t ms, char buf[static 32])
{
    int64_t s = ms / 1000;

    if (ms < 60000)
        snprintf(buf, 32, "%.1f s", (double)ms / 1e3);
    else if (s < 3600)
        snprintf(buf, 32, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, 32, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
    else
        snprintf(buf, 32, "%" PRId64 "d%02" PRId64 "h", s / 86400, s / 3600 % 24);
    return buf;
}

static const char *count_text(json_object *o, const char *key, char buf[static 32])
{
    int64_t v;

    if (!int_member(o, key, &v))
        return "-";
    snprintf(buf, 32, "%" PRId64, v);
    return buf;
}

/* A rate per second of a counter between two samples, or "-". */
static const char *rate_text(json_object *now, json_object *before, const char *key,
                             double seconds, bool bytes, char buf[static 32])
{
    int64_t a, b;
    char size[32];

    if (!before || seconds <= 0 || !int_member(now, key, &a) || !int_member(before, key, &b) ||
        a < b)
        return "-";
    double rate = (double)(a - b) / seconds;
    if (bytes)
        snprintf(buf, 32, "%s/s", cli_human_size((uint64_t)llround(rate), size));
    else
        snprintf(buf, 32, "%.1f", rate);
    return buf;
}

/* Seconds between two samples of one image, by the worker's own clock;
 * 0 when they cannot be compared (first sample, or a new worker). */
static double sample_seconds(json_object *now, json_object *before)
{
    int64_t a, b;

    if (!before || !int_member(now, "uptime-ms", &a) || !int_member(before, "uptime-ms", &b) ||
        a <= b)
        return 0;
    return (double)(a - b) / 1e3;
}

/* The worker's kernel AIO depth (elastic: see qcowd(8)). */
static void print_aio_depth(json_object *aio)
{
    int64_t depth, max, peak, limited;

    if (!int_member(aio, "depth", &depth) || !int_member(aio, "max-depth", &max))
        return;
    printf("  aio depth %" PRId64 " of up to %" PRId64, depth, max);
    if (int_member(aio, "peak-depth", &peak))
        printf(", peak %" PRId64, peak);
    if (int_member(aio, "limited", &limited))
        printf(", limited by the host's budget %" PRId64 " time%s", limited, limited == 1 ? "" : "s");
    printf("\n");
}

static int print_image_stats(const char *name, json_object *st, json_object *prev, bool rates)
{
    static const char *const headers[] = { "OP", "OPS", "BYTES", "ERRORS", "P50", "P99" };
    static const char *const rate_headers[] = { "OP", "OPS", "OPS/S", "BYTES", "BYTES/S",
                                                "ERRORS", "P50", "P99" };
    double secs = sample_seconds(st, prev);
    char up[32], infl[32], bad[32], *clean = cli_clean_text(name);
    struct cli_table t;
    json_object *failure;
    int64_t v;
    int r;

    printf("%s: uptime %s, in flight %s, bad requests %s%s\n", clean ? clean : "?",
           int_member(st, "uptime-ms", &v) ? uptime_text(v, up) : "-",
           count_text(st, "in-flight", infl), count_text(st, "bad-requests", bad),
           strcmp(yes_no(st, "ring-broken"), "yes") == 0 ? ", RING BROKEN" : "");
    free(clean);
    print_aio_depth(member(st, "aio"));
    cli_print_throttle(member(st, "throttle"));
    cli_table_init(&t, rates ? "lrrrrrrr" : "lrrrrr", rates ? rate_headers : headers);
    for (size_t i = 0; i < ARRAY_SIZE(stat_ops); i++) {
        json_object *op = member(st, stat_ops[i]), *pop = member(prev, stat_ops[i]);
        char ops[32], bytes[32], errs[32], p50[32] = "-", p99[32] = "-", ors[32], brs[32];
        int64_t n = 0;

        if (int_member(op, "ops", &n) && n > 0) {
            if (int_member(op, "latency-p50-us", &v))
                latency_text(v, p50);
            if (int_member(op, "latency-p99-us", &v))
                latency_text(v, p99);
        }
        const char *bytes_text = int_member(op, "bytes", &v) && v >= 0
                                     ? cli_human_size((uint64_t)v, bytes) : "-";
        if (rates) {
            const char *row[] = { stat_ops[i], count_text(op, "ops", ops),
                                  rate_text(op, pop, "ops", secs, false, ors), bytes_text,
                                  rate_text(op, pop, "bytes", secs, true, brs),
                                  count_text(op, "errors", errs), p50, p99 };
            cli_table_add(&t, row);
        } else {
            const char *row[] = { stat_ops[i], count_text(op, "ops", ops), bytes_text,
                                  count_text(op, "errors", errs), p50, p99 };
            cli_table_add(&t, row);
        }
    }
    r = cli_table_print(&t, "  ");
    cli_table_free(&t);
    if (r == 0 && (failure = member(st, "io-error")))
        print_field("  io error", value_text(failure));
    if (r == 0 && (failure = member(st, "last-error")))
        print_field("  last error", value_text(failure));
    return r;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One sample: for NAME, or every image (sorted by name). */
static int print_stats(const struct online_args *a, json_object *ret, json_object *prev,
                       bool rates)
{
    const char **names;
    size_t n = 0;
    int r = CLI_EXIT_OK;

    if (!json_object_is_type(ret, json_type_object))
        return cli_fail("stats: qcowd's answer is not an object");
    if (a->operand)
        return print_image_stats(a->operand, ret, prev, rates);
    if (json_object_object_length(ret) == 0) {
        printf("no image is running\n");
        return CLI_EXIT_OK;
    }
    if (!(names = calloc((size_t)json_object_object_length(ret), sizeof *names)))
        return cli_fail("out of memory");
    json_object_object_foreach(ret, key, val) {
        (void)val;
        names[n++] = key;
    }
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n && r == CLI_EXIT_OK; i++) {
        if (i > 0)
            printf("\n");
        r = print_image_stats(names[i], member(ret, names[i]), member(prev, names[i]), rates);
    }
    free(names);
    return r;
}

/* Sleep, unless interrupted: true when the watch goes on. */
static bool watch_sleep(double seconds)
{
    struct timespec ts = { .tv_sec = (time_t)seconds,
                           .tv_nsec = (long)((seconds - floor(seconds)) * 1e9) };

    while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return !interrupted;
}

static int watch_stats(struct cli *cli, const struct online_args *a, json_object *args)
{
    bool tty = isatty(STDOUT_FILENO);
    json_object *prev = NULL, *ret;
    struct ctl_conn c;
    int r;

    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK)
        return r;
    catch_interrupts();
    for (unsigned long n = 0; !interrupted; n++) {
        if ((r = ctl_call(&c, "stats", args, &ret)) != CLI_EXIT_OK)
            break;
        if (cli->json) {
            /* One sample per line (JSON Lines). */
            printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        } else if (!cli->quiet) {
            time_t now = time(NULL);
            struct tm tm;
            char when[32];
            strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
            if (tty)
                printf("\033[H\033[2J");
            else if (n > 0)
                printf("\n");
            printf("qcowd %s, %s (every %g s; rates since the previous sample)\n\n", c.path,
                   when, a->interval);
            r = print_stats(a, ret, prev, true);
        }
        json_object_put(prev);
        prev = ret;
        if ((r = r != CLI_EXIT_OK ? r : cli_finish_stdout()) != CLI_EXIT_OK)
            break;
        if (a->count && n + 1 >= a->count)
            break;
        if (!watch_sleep(a->interval))
            break;
    }
    json_object_put(prev);
    ctl_close(&c);
    return r;
}

static int run_stats(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        { "watch", no_argument, NULL, 'w' },
        { "interval", required_argument, NULL, 'i' },
        { "count", required_argument, NULL, 'c' },
        ONLINE_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct online_args a = { 0 };
    json_object *args = NULL, *ret;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT "wi:c:", 0, 1, &a)) !=
        CLI_CONTINUE)
        return r;
    if (a.operand)
        args = name_args(a.operand);
    if (a.watch) {
        r = watch_stats(cli, &a, args);
        json_object_put(args);
        return r;
    }
    r = ctl_call_once(cli, "stats", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    if (!cli->quiet)
        r = print_stats(&a, ret, NULL, false);
    json_object_put(ret);
    return r;
}

/* ---- shutdown ----------------------------------------------------------- */

static int run_shutdown(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        { "no-wait", no_argument, NULL, OPT_NO_WAIT },
        ONLINE_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct online_args a = { 0 };
    _cleanup_(ctl_close) struct ctl_conn c = CTL_CONN_CLOSED;
    _cleanup_json_ json_object *ret = NULL;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT, 0, 0, &a)) !=
        CLI_CONTINUE)
        return r;
    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK)
        return r;
    r = ctl_call(&c, "shutdown", NULL, &ret);
    /* qcowd closes every connection once every image is detached. */
    if (r == CLI_EXIT_OK && !a.no_wait) {
        cli_verbose(cli, "%s: waiting for qcowd to detach every image", c.path);
        r = ctl_wait_close(&c);
    }
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(TAKE_PTR(ret));
    cli_say(cli, a.no_wait ? "qcowd is stopping\n" : "qcowd has detached every image and stopped\n");
    return CLI_EXIT_OK;
}

/* ---- version ------------------------------------------------------------ */

/* What the daemon can still take, limit by limit (version's "limits"). */
static void print_limits(json_object *l)
{
    json_object *files = member(l, "open-files"), *aio = member(l, "aio");
    int64_t n, max, room, used, limit, per;
    const char *tightest = str_member(l, "tightest");
    static const char *const names[][2] = {
        { "max-images", "--max-images" }, { "open-files", "open files" },
        { "aio", "kernel AIO slots" },
    };

    if (!int_member(l, "images", &n) || !int_member(l, "max-images", &max) ||
        !int_member(l, "room", &room))
        return;
    for (size_t i = 0; tightest && i < ARRAY_SIZE(names); i++)
        if (strcmp(tightest, names[i][0]) == 0)
            tightest = names[i][1];
    printf("images: %" PRId64 " attached, room for %" PRId64 " more%s%s%s\n", n, room,
           tightest ? " (the tightest limit: " : "", tightest ? tightest : "", tightest ? ")" : "");
    printf("  --max-images: %" PRId64 "\n", max);
    if (int_member(files, "in-use", &used) && int_member(files, "limit", &limit) &&
        int_member(files, "per-image", &per))
        printf("  open files: %" PRId64 " of %" PRId64 " in use by qcowd, %" PRId64 " per image\n",
               used, limit, per);
    if (int_member(aio, "nr", &used) && int_member(aio, "max-nr", &limit) &&
        int_member(aio, "per-image", &per))
        printf("  kernel AIO slots: %" PRId64 " of %" PRId64 " in use on the host (%s), %" PRId64
               " per idle image\n", used, limit,
               member(aio, "ledger") ? "QCOWD_AIO_LEDGER" : "fs.aio-nr of fs.aio-max-nr", per);
}

static int run_version(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    struct online_args a = { 0 };
    json_object *ret, *doc, *client;
    int64_t proto;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT, 0, 0, &a)) !=
        CLI_CONTINUE)
        return r;
    cli_say(cli, "client: " CLI_PROGRAM " (%s) %s, protocol %d\n", PACKAGE_NAME, PACKAGE_VERSION,
            CTL_PROTOCOL);
    fflush(stdout);
    if ((r = ctl_call_once(cli, "version", NULL, &ret)) != CLI_EXIT_OK)
        return r;
    if (cli->json) {
        doc = json_object_new_object();
        client = json_object_new_object();
        json_object_object_add(client, "package",
                               json_object_new_string(CLI_PROGRAM " " PACKAGE_VERSION));
        json_object_object_add(client, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(client, "protocol", json_object_new_int(CTL_PROTOCOL));
        json_object_object_add(doc, "client", client);
        json_object_object_add(doc, "daemon", ret);
        return cli_print_json(doc);
    }
    char *pkg = cli_clean_text(str_member(ret, "package"));
    if (int_member(ret, "protocol", &proto))
        cli_say(cli, "daemon: %s, protocol %" PRId64 "\n", pkg ? pkg : "?", proto);
    else
        cli_say(cli, "daemon: %s\n", pkg ? pkg : "?");
    free(pkg);
    if (!cli->quiet)
        print_limits(member(ret, "limits"));
    json_object_put(ret);
    return CLI_EXIT_OK;
}

/* ---- events ------------------------------------------------------------- */

struct event_printer {
    const struct cli *cli;
};

static void print_event(void *ctx, json_object *ev, const char *line)
{
    const struct event_printer *p = ctx;
    json_object *ts = member(ev, "timestamp"), *data = member(ev, "data");
    char when[64] = "-", *name;
    int64_t sec, usec = 0;

    if (p->cli->quiet)
        return;
    if (p->cli->json) {
        printf("%s\n", line);
        fflush(stdout);
        return;
    }
    if (int_member(ts, "seconds", &sec)) {
        time_t t = (time_t)sec;
        struct tm tm;
        size_t n;
        int_member(ts, "microseconds", &usec);
        if (localtime_r(&t, &tm) && (n = strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm)))
            snprintf(when + n, sizeof when - n, ".%06" PRId64, usec);
    }
    name = cli_clean_text(str_member(ev, "event"));
    printf("%s  %s", when, name ? name : "?");
    free(name);
    if (data && json_object_is_type(data, json_type_object)) {
        json_object_object_foreach(data, key, val) {
            char *k = cli_clean_text(key), *v = cli_clean_text(value_text(val));
            printf(" %s=%s", k ? k : "?", v ? v : "?");
            free(k);
            free(v);
        }
    } else if (data) {
        char *v = cli_clean_text(value_text(data));
        printf(" %s", v ? v : "?");
        free(v);
    }
    printf("\n");
    fflush(stdout);
}

static int run_events(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = { ONLINE_OPTIONS, { NULL, 0, NULL, 0 } };
    struct online_args a = { 0 };
    struct event_printer printer = { .cli = cli };
    struct ctl_conn c;
    json_object *ret;
    int r;

    if ((r = parse_online(cli, cmd, argc, argv, opts, CLI_COMMON_SHORT, 0, 0, &a)) !=
        CLI_CONTINUE)
        return r;
    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK)
        return r;
    c.on_event = print_event;
    c.event_ctx = &printer;
    if ((r = ctl_call(&c, "events", NULL, &ret)) == CLI_EXIT_OK) {
        json_object_put(ret);
        cli_verbose(cli, "%s: waiting for events (Ctrl-C to stop)", c.path);
        catch_interrupts();
        r = ctl_follow_events(&c, &interrupted);
        if (r == CLI_EXIT_OK && !interrupted)
            cli_verbose(cli, "%s: qcowd closed the connection", c.path);
    }
    ctl_close(&c);
    return r;
}

/* ---- the table ---------------------------------------------------------- */

static const struct cli_command online_commands[] = {
    {
        .name = "attach",
        .synopsis = "[--name N] [--read-only] [--cache none|writeback] [-f auto|qcow|raw] "
                    "[--key-file F] [--poll-us N] [--ring-page-order N] [--data-pages N]"
                    " [LIMIT OPTIONS] IMAGE",
        .summary = "serve IMAGE: qcowd starts a worker for it",
        .help =
            "Options:\n"
            "  -n, --name N          the attachment's name: 1-64 of A-Z a-z 0-9 . _ -\n"
            "                        (default: IMAGE's file name)\n"
            "  -r, --read-only       serve the image read-only (other programs may still\n"
            "                        read it, none may write it)\n"
            "      --cache MODE      none (O_DIRECT, the default) or writeback\n"
            "  -f, --format FMT      auto (probe, the default), qcow or raw\n"
            "      --key-file F      password of an encrypted image (asked on a terminal\n"
            "                        when not given and the image is encrypted)\n"
            "      --poll-us N       the worker busy-polls up to N microseconds (0-1000)\n"
            "                        for the next request or completion before it sleeps:\n"
            "                        lower latency across CPUs for a core's worth of CPU\n"
            "                        while busy (default 0: sleep at once)\n"
            "      --ring-page-order N  the ring has 2^N pages of 32 request slots each\n"
            "                        (0-8, default 2: 128 requests in flight)\n"
            "      --data-pages N    4 KiB pages of request buffers in the ring (16-1048576,\n"
            "                        default 8192: 32 MiB, sparse: only what is used costs)\n"
            CLI_LIMIT_HELP
            "IMAGE is made absolute before it is sent.  Prints the attachment; with --json,\n"
            "the object `query` returns.\n" ONLINE_HELP,
        .run = run_attach,
    },
    {
        .name = "detach",
        .synopsis = "NAME",
        .summary = "stop serving NAME (in-flight I/O finishes, data is flushed)",
        .help = "Returns once the worker has flushed and exited.\n" ONLINE_HELP,
        .run = run_named,
    },
    {
        .name = "list",
        .synopsis = "",
        .summary = "show the attached images",
        .help = "Columns: NAME STATE PID SIZE FORMAT RO CONNECTED PATH.  With --json, an\n"
                "array of {name, path, state, pid, read-only, format, size, connected}.\n"
                ONLINE_HELP,
        .run = run_list,
    },
    {
        .name = "query",
        .synopsis = "NAME",
        .summary = "show one attached image: state, sizes, chain, ring geometry",
        .help = ONLINE_HELP,
        .run = run_query,
    },
    {
        .name = "stats",
        .synopsis = "[--watch [--interval SECS] [--count N]] [NAME]",
        .summary = "show I/O counters and latencies (of NAME, or of every image)",
        .help =
            "Options:\n"
            "  -w, --watch           show a new sample every interval, with the rates since\n"
            "                        the previous one, until interrupted (Ctrl-C)\n"
            "  -i, --interval SECS   seconds between samples (default 1; 0.1 to 86400)\n"
            "  -c, --count N         stop after N samples\n"
            "Per image: ops, bytes, errors and p50/p99 latency of reads, writes, flushes\n"
            "and discards (latencies since the worker started), requests in flight, bad\n"
            "requests, and the worker's kernel AIO depth (it grows while busy, as far as the\n"
            "host's fs.aio-max-nr allows, and shrinks when idle).  With --json, qcowd's\n"
            "object; with --watch --json, one object per line per sample.\n" ONLINE_HELP,
        .run = run_stats,
    },
    {
        .name = "pause",
        .synopsis = "NAME",
        .summary = "stop taking requests from NAME's ring, drain and flush",
        .help = "Requests posted meanwhile wait in the ring until `resume`.\n" ONLINE_HELP,
        .run = run_named,
    },
    {
        .name = "resume",
        .synopsis = "[--image OVERLAY] NAME",
        .summary = "serve NAME's ring again after pause",
        .help = "Options:\n"
                "      --image OVERLAY   first serve OVERLAY, an overlay of NAME's top made while\n"
                "                        it was paused (e.g. qemu-img create -f qcow -b TOP\n"
                "                        OVERLAY): its backing file must name the top, its size\n"
                "                        be the image's; the top becomes a read-only backing file\n"
                ONLINE_HELP,
        .run = imageops_run_resume,
    },
    CLI_LIMIT_COMMAND,
    {
        .name = "events",
        .synopsis = "",
        .summary = "print qcowd's events as they come, until Ctrl-C",
        .help = "One line per event: time, event name, its data as key=value.  With --json,\n"
                "the event objects as qcowd sends them, one per line.  Ends with status 0\n"
                "when interrupted or when qcowd closes the connection.\n" ONLINE_HELP,
        .run = run_events,
    },
    {
        .name = "version",
        .synopsis = "",
        .summary = "show the versions of qcowctl and of the qcowd it talks to",
        .help = "Then how many more images the daemon can take, and each of its limits:\n"
                "--max-images, its open files, the host's kernel AIO slots.  With --json,\n"
                "{\"client\": {package, version, protocol}, \"daemon\": qcowd's version object,\n"
                "with \"limits\"}.\n" ONLINE_HELP,
        .run = run_version,
    },
    {
        .name = "shutdown",
        .synopsis = "[--no-wait]",
        .summary = "detach every image and stop qcowd",
        .help =
            "Options:\n"
            "      --no-wait         return once qcowd has accepted the request, without\n"
            "                        waiting for it to detach every image and stop\n"
            ONLINE_HELP,
        .run = run_shutdown,
    },
};

const struct cli_group cli_online_group = {
    .title = "Online commands (talk to a running qcowd over its control socket)",
    .commands = online_commands,
    .n_commands = ARRAY_SIZE(online_commands),
};
