/* qcowctl limit NAME, and the I/O limit options attach shares: they become
 * an "io-limits" object by the protocol's names (doc/protocol.md). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "limits.h"
#include "output.h"

#define MAX_RATE (UINT64_C(1) << 50)

enum { OPT_RESET = CLI_OPT_LIMIT + 1 };

static const struct {
    int opt;
    const char *key;
    bool size;                  /* takes K, M, G suffixes */
} simple_options[] = {
    { CLI_OPT_IOPS, "iops-total", false },
    { CLI_OPT_IOPS_READ, "iops-read", false },
    { CLI_OPT_IOPS_WRITE, "iops-write", false },
    { CLI_OPT_BPS, "bps-total", true },
    { CLI_OPT_BPS_READ, "bps-read", true },
    { CLI_OPT_BPS_WRITE, "bps-write", true },
    { CLI_OPT_IOPS_BURST, "iops-total-max", false },
    { CLI_OPT_BPS_BURST, "bps-total-max", true },
    { CLI_OPT_IOPS_SIZE, "iops-size", true },
};

static void add(struct cli_limits *l, const char *key, json_object *v)
{
    if (!l->obj)
        l->obj = json_object_new_object();
    json_object_object_add(l->obj, key, v);
}

static int add_number(const struct cli_command *cmd, struct cli_limits *l, const char *key,
                      const char *value, bool size)
{
    unsigned long n;
    uint64_t v;
    int r;

    if (size) {
        if ((r = cli_parse_size(cmd, key, value, &v)) != CLI_CONTINUE)
            return r;
        if (v > MAX_RATE)
            return cli_usage_error(cmd, "%s: %s '%s' is too large", cmd->name, key, value);
    } else {
        if ((r = cli_parse_uint(cmd, key, value, 0, MAX_RATE, &n)) != CLI_CONTINUE)
            return r;
        v = n;
    }
    add(l, key, json_object_new_int64((int64_t)v));
    return CLI_CONTINUE;
}

/* --limit KEY=VALUE[,KEY=VALUE...]: qcowd knows the keys; numbers may
 * have size suffixes. */
static int add_generic(const struct cli_command *cmd, struct cli_limits *l, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    int r = CLI_CONTINUE;

    if (!copy)
        return cli_fail("out of memory");
    for (char *item = strtok_r(copy, ",", &save); item && r == CLI_CONTINUE;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            r = cli_usage_error(cmd, "%s: --limit takes KEY=VALUE, not '%s'", cmd->name, item);
            break;
        }
        *eq = '\0';
        if (strcmp(item, "group") == 0)
            add(l, item, json_object_new_string(eq + 1));
        else
            r = add_number(cmd, l, item, eq + 1, true);
    }
    free(copy);
    return r;
}

int cli_limit_option(const struct cli_command *cmd, int opt, const char *arg,
                     struct cli_limits *l)
{
    unsigned long n;
    int r;

    for (size_t i = 0; i < sizeof simple_options / sizeof simple_options[0]; i++)
        if (simple_options[i].opt == opt)
            return add_number(cmd, l, simple_options[i].key, arg, simple_options[i].size);
    switch (opt) {
    case CLI_OPT_LIMIT_GROUP:
        add(l, "group", json_object_new_string(arg));
        return CLI_CONTINUE;
    case CLI_OPT_LIMIT:
        return add_generic(cmd, l, arg);
    case CLI_OPT_BURST_LENGTH:
        if ((r = cli_parse_uint(cmd, "burst length", arg, 1, 86400, &n)) == CLI_CONTINUE) {
            l->burst_length = n;
            l->burst_length_given = true;
        }
        return r;
    }
    return CLI_NOT_MINE;
}

int cli_limits_finish(const struct cli_command *cmd, struct cli_limits *l)
{
    static const char *const bursts[] = { "iops-total-max", "bps-total-max" };
    bool any = false;
    char key[32];

    if (!l->burst_length_given)
        return CLI_CONTINUE;
    for (size_t i = 0; i < 2; i++) {
        if (!l->obj || !json_object_object_get_ex(l->obj, bursts[i], NULL))
            continue;
        snprintf(key, sizeof key, "%s-length", bursts[i]);
        add(l, key, json_object_new_int64((int64_t)l->burst_length));
        any = true;
    }
    if (!any)
        return cli_usage_error(cmd, "%s: --burst-length goes with --iops-burst or --bps-burst",
                               cmd->name);
    return CLI_CONTINUE;
}

/* ---- as text ------------------------------------------------------------- */

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);

    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* One limit: "iops-read 500/s", "bps-total 100 MiB/s", "iops-total-max-length 10 s". */
static void limit_text(const char *key, json_object *v, char *buf, size_t len)
{
    char size[32];
    int64_t n = json_object_get_int64(v);

    if (!json_object_is_type(v, json_type_int))
        snprintf(buf, len, "%s %s", key, json_object_get_string(v));
    else if (ends_with(key, "-length"))
        snprintf(buf, len, "%s %" PRId64 " s", key, n);
    else if (strncmp(key, "bps-", 4) == 0)
        snprintf(buf, len, "%s %s/s", key, cli_human_size((uint64_t)n, size));
    else if (strcmp(key, "iops-size") == 0)
        snprintf(buf, len, "%s %s", key, cli_human_size((uint64_t)n, size));
    else
        snprintf(buf, len, "%s %" PRId64 "/s", key, n);
}

void cli_print_limits(const char *label, json_object *limits)
{
    char *clean = cli_clean_text(label), item[160];
    bool first = true;

    printf("%s: ", clean ? clean : "?");
    free(clean);
    if (limits && json_object_is_type(limits, json_type_object)) {
        json_object_object_foreach(limits, key, val) {
            limit_text(key, val, item, sizeof item);
            clean = cli_clean_text(item);
            printf("%s%s", first ? "" : ", ", clean ? clean : "?");
            free(clean);
            first = false;
        }
    }
    printf("%s\n", first ? "none" : "");
}

static int64_t int_of(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_int64(v);
}

void cli_print_throttle(json_object *throttle)
{
    json_object *limits = NULL;
    int64_t delayed = int_of(throttle, "delayed"), held = int_of(throttle, "held");

    if (!throttle || !json_object_is_type(throttle, json_type_object))
        return;
    json_object_object_get_ex(throttle, "io-limits", &limits);
    if (!delayed && !held && (!limits || json_object_object_length(limits) == 0))
        return;
    printf("  throttled: %" PRId64 " requests delayed by %.3f s in all, %" PRId64
           " held now, limited for %.3f s\n",
           delayed, (double)int_of(throttle, "delay-us") / 1e6, held,
           (double)int_of(throttle, "throttled-us") / 1e6);
    cli_print_limits("  I/O limits", limits);
}

/* ---- qcowctl limit ------------------------------------------------------- */

struct limit_args {
    struct cli_limits limits;
    bool reset;
};

static int limit_option(struct cli *cli, const struct cli_command *cmd, int opt,
                        struct limit_args *a)
{
    int r;

    if ((r = cli_connection_option(cli, cmd, opt, optarg)) != CLI_NOT_MINE)
        return r;
    switch (opt) {
    case OPT_RESET:
        a->reset = true;
        return CLI_CONTINUE;
    }
    return cli_limit_option(cmd, opt, optarg, &a->limits);
}

static int parse_limit(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                       struct limit_args *a)
{
    static const struct option opts[] = {
        CLI_LIMIT_OPTIONS,
        { "reset", no_argument, NULL, OPT_RESET },
        CLI_CONNECTION_OPTIONS,
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
        r = limit_option(cli, cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    if (!*argv[optind])
        return cli_usage_error(cmd, "%s: empty operand", cmd->name);
    return cli_limits_finish(cmd, &a->limits);
}

int cli_run_limit(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct limit_args a = { .reset = false };
    json_object *args, *ret = NULL;
    int r;

    if ((r = parse_limit(cli, cmd, argc, argv, &a)) != CLI_CONTINUE) {
        json_object_put(a.limits.obj);
        return r;
    }
    args = json_object_new_object();
    json_object_object_add(args, "name", json_object_new_string(argv[optind]));
    if (a.limits.obj)
        json_object_object_add(args, "io-limits", a.limits.obj);
    if (a.reset)
        json_object_object_add(args, "reset", json_object_new_boolean(true));
    r = ctl_call_once(cli, "limit", args, &ret);
    json_object_put(args);
    if (r != CLI_EXIT_OK)
        return r;
    if (cli->json)
        return cli_print_json(ret);
    if (!cli->quiet)
        cli_print_limits(argv[optind], ret);
    json_object_put(ret);
    return cli_finish_stdout();
}
