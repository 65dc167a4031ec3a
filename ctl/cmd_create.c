/* qcowctl create: new qcow (v1) or raw images. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "error.h"
#include "key.h"
#include "output.h"
#include "qcow_format.h"
#include "util.h"

struct create_args {
    enum image_format format;
    const char *path;
    uint64_t size;              /* 0 with a backing file: its size */
    const char *backing;
    enum image_format backing_format;
    unsigned cluster_bits;      /* 0: the default */
    unsigned l2_bits;
    bool encrypt;
    const char *key_file;
    bool xen_header;
    bool xen_extent_alloc;
    bool no_sparse;
    enum prealloc_mode prealloc;
    const char *qcow_only;      /* a qcow-only option given (long name), if any */
};

enum {
    OPT_CLUSTER_SIZE = CLI_OPT_COMMAND,
    OPT_L2_BITS,
    OPT_ENCRYPT,
    OPT_KEY_FILE,
    OPT_XEN_HEADER,
    OPT_XEN_EXTENT_ALLOC,
    OPT_NO_SPARSE,
    OPT_PREALLOCATION,
};

static const struct option create_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "backing", required_argument, NULL, 'b' },
    { "backing-format", required_argument, NULL, 'F' },
    { "cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE },
    { "l2-bits", required_argument, NULL, OPT_L2_BITS },
    { "encrypt", no_argument, NULL, OPT_ENCRYPT },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "xen-header", no_argument, NULL, OPT_XEN_HEADER },
    { "xen-extent-alloc", no_argument, NULL, OPT_XEN_EXTENT_ALLOC },
    { "no-sparse", no_argument, NULL, OPT_NO_SPARSE },
    { "preallocation", required_argument, NULL, OPT_PREALLOCATION },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int parse_prealloc(const struct cli_command *cmd, const char *s, enum prealloc_mode *out)
{
    static const char *const names[] = { "off", "metadata", "full" };

    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum prealloc_mode)i;
            return CLI_CONTINUE;
        }
    return cli_usage_error(cmd, "%s: invalid preallocation mode '%s' (expected off, metadata "
                           "or full)", cmd->name, s);
}

static int parse_l2_bits(const struct cli_command *cmd, const char *s, unsigned *bits)
{
    unsigned long v = 0;
    int r = cli_parse_uint(cmd, "number of L2 bits", s, QCOW_MIN_L2_BITS, QCOW_MAX_L2_BITS, &v);

    *bits = (unsigned)v;
    return r;
}

static int create_option_value(const struct cli_command *cmd, int opt, struct create_args *a)
{
    switch (opt) {
    case 'f': return cli_parse_format(cmd, optarg, &a->format);
    case 'b': a->backing = optarg; return CLI_CONTINUE;
    case 'F': return cli_parse_format(cmd, optarg, &a->backing_format);
    case OPT_CLUSTER_SIZE: return cli_parse_cluster_size(cmd, optarg, &a->cluster_bits);
    case OPT_L2_BITS: return parse_l2_bits(cmd, optarg, &a->l2_bits);
    case OPT_ENCRYPT: a->encrypt = true; return CLI_CONTINUE;
    case OPT_KEY_FILE: a->key_file = optarg; return CLI_CONTINUE;
    case OPT_XEN_HEADER: a->xen_header = true; return CLI_CONTINUE;
    case OPT_XEN_EXTENT_ALLOC: a->xen_extent_alloc = true; return CLI_CONTINUE;
    case OPT_NO_SPARSE: a->no_sparse = true; return CLI_CONTINUE;
    case OPT_PREALLOCATION: return parse_prealloc(cmd, optarg, &a->prealloc);
    }
    return CLI_NOT_MINE;
}

static const char *long_name(int opt)
{
    for (const struct option *o = create_options; o->name; o++)
        if (o->val == opt)
            return o->name;
    return "?";
}

/* Options other than -f and --preallocation only make sense for qcow:
 * remember one for the check against -f raw. */
static int create_option(const struct cli_command *cmd, int opt, struct create_args *a)
{
    int r = create_option_value(cmd, opt, a);

    if (r == CLI_CONTINUE && opt != 'f' && opt != OPT_PREALLOCATION)
        a->qcow_only = long_name(opt);
    return r;
}

static int check_combinations(const struct cli_command *cmd, const struct create_args *a)
{
    if (a->format == IMAGE_FORMAT_RAW && a->qcow_only)
        return cli_usage_error(cmd, "%s: option --%s is only for qcow images", cmd->name,
                               a->qcow_only);
    if (a->backing_format != IMAGE_FORMAT_AUTO && !a->backing)
        return cli_usage_error(cmd, "%s: -F needs a backing file (-b)", cmd->name);
    if (a->key_file && !a->encrypt)
        return cli_usage_error(cmd, "%s: --key-file needs --encrypt", cmd->name);
    if ((a->xen_extent_alloc || a->no_sparse) && !a->xen_header)
        return cli_usage_error(cmd, "%s: %s needs --xen-header", cmd->name,
                               a->xen_extent_alloc ? "--xen-extent-alloc" : "--no-sparse");
    return CLI_CONTINUE;
}

static int parse_create(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                        struct create_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "f:b:F:", create_options, NULL)) != -1) {
        r = create_option(cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 2)) != CLI_CONTINUE ||
        (r = check_combinations(cmd, a)) != CLI_CONTINUE)
        return r;
    a->path = argv[optind];
    if (optind + 1 < argc)
        return cli_parse_size(cmd, "SIZE", argv[optind + 1], &a->size);
    if (!a->backing)
        return cli_usage_error(cmd, "%s: SIZE is needed without a backing file (-b)", cmd->name);
    return CLI_CONTINUE;
}

static int get_password(const struct create_args *a, struct cli_key *key)
{
    if (a->key_file)
        return key_read_file(a->key_file, key);
    if (!key_can_prompt())
        return cli_fail("%s: --encrypt needs a password: give --key-file or run on a terminal",
                        a->path);
    return key_prompt(a->path, true, key);
}

static int create_qcow(const struct create_args *a)
{
    struct qcow_create_opts o = {
        .size = a->size, .cluster_bits = a->cluster_bits, .l2_bits = a->l2_bits,
        .backing_file = a->backing, .backing_format = a->backing_format,
        .xen_header = a->xen_header, .xen_sparse = !a->no_sparse,
        .xen_extent_alloc = a->xen_extent_alloc, .prealloc = a->prealloc,
    };
    struct cli_key key;
    int r;

    if (a->encrypt) {
        if ((r = get_password(a, &key)) != 0)
            return r;
        o.key = key.data;
        o.key_len = key.len;
    }
    qc_clear_error();
    r = qcow_create(a->path, &o);
    if (a->encrypt)
        key_wipe(&key);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int create_raw(const struct create_args *a)
{
    int r;

    qc_clear_error();
    r = raw_create(a->path, a->size, a->prealloc);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

/* The virtual size as written (the backing file's, or rounded up). */
static uint64_t created_size(const struct create_args *a)
{
    uint8_t raw[QCOW_HEADER_SIZE];
    struct qcow_header h;
    FILE *f;
    size_t n;

    if (a->format == IMAGE_FORMAT_RAW || !(f = fopen(a->path, "rb")))
        return a->size;
    n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    if (n != sizeof raw)
        return a->size;
    qcow_header_decode(raw, &h);
    return h.size;
}

static int report_created(const struct cli *cli, const struct create_args *a)
{
    uint64_t size = created_size(a);
    struct json_object *doc;

    if (cli->quiet)
        return CLI_EXIT_OK;
    if (!cli->json) {
        printf("Formatting '%s', fmt=%s size=%" PRIu64, a->path, image_format_name(a->format),
               size);
        if (a->backing)
            printf(" backing_file=%s", a->backing);
        if (a->backing_format != IMAGE_FORMAT_AUTO)
            printf(" backing_fmt=%s", image_format_name(a->backing_format));
        if (a->cluster_bits)
            printf(" cluster_size=%u", 1u << a->cluster_bits);
        if (a->encrypt)
            printf(" encryption=on");
        if (a->prealloc != PREALLOC_OFF)
            printf(" preallocation=%s", a->prealloc == PREALLOC_FULL ? "full" : "metadata");
        printf("\n");
        return CLI_EXIT_OK;
    }
    doc = json_object_new_object();
    json_add_string(doc, "filename", a->path);
    json_add_string(doc, "format", image_format_name(a->format));
    json_add_u64(doc, "virtual-size", size);
    if (a->backing)
        json_add_string(doc, "backing-filename", a->backing);
    json_add_bool(doc, "encrypted", a->encrypt);
    return cli_print_json(doc);
}

static int run_create(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct create_args a = { .format = IMAGE_FORMAT_QCOW };
    struct stat st;
    bool existed;
    int r;

    if ((r = parse_create(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    existed = stat(a.path, &st) == 0;
    r = a.format == IMAGE_FORMAT_RAW ? create_raw(&a) : create_qcow(&a);
    if (r != CLI_EXIT_OK) {
        /* Do not leave a half-made image behind (one we made, that is). */
        if (!existed)
            unlink(a.path);
        return r;
    }
    return report_created(cli, &a);
}

static const struct cli_command create_commands[] = {
    {
        .name = "create",
        .synopsis = "[-f qcow|raw] [-b BACKING [-F FMT]] [options] FILE [SIZE]",
        .summary = "create a new image (SIZE may be left out with -b: the backing file's)",
        .help =
            "Options:\n"
            "  -f, --format FMT          qcow (default) or raw\n"
            "  -b, --backing BACKING     backing file, stored as given (relative names\n"
            "                            resolve against FILE's directory)\n"
            "  -F, --backing-format FMT  format of BACKING (probed when not given)\n"
            "      --cluster-size BYTES  512 to 64K, a power of two (default 4K, or 512\n"
            "                            with a backing file, as qemu-img)\n"
            "      --l2-bits N           entries per L2 table = 2^N, 6 to 13\n"
            "      --encrypt             AES encryption; password from --key-file or\n"
            "                            asked twice on the terminal\n"
            "      --key-file F          the password: F's contents up to the first newline\n"
            "      --xen-header          write the Xen (blktap) extension header\n"
            "      --xen-extent-alloc    with --xen-header: allocate every L2 table with all\n"
            "                            its clusters\n"
            "      --no-sparse           with --xen-header: clear the sparse flag (allocate\n"
            "                            file space for new clusters)\n"
            "      --preallocation MODE  off (default), metadata (all L2 tables) or full\n"
            "SIZE and BYTES take K, M, G and T suffixes (binary units).\n",
        .run = run_create,
    },
};

const struct cli_group cli_create_group = {
    .title = "Creating images",
    .commands = create_commands,
    .n_commands = ARRAY_SIZE(create_commands),
};
