/* qcowctl discard and compact: giving disk space back, offline. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "error.h"
#include "output.h"
#include "qcow_compact.h"
#include "util.h"

/* ---- discard ------------------------------------------------------------- */

struct discard_args {
    const char *path;
    enum image_format format;
    uint64_t offset;
    uint64_t length;
};

static const struct option discard_options[] = {
    { "format", required_argument, NULL, 'f' },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int parse_discard(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                         struct discard_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "f:", discard_options, NULL)) != -1) {
        r = opt == 'f' ? cli_parse_format(cmd, optarg, &a->format)
                       : cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 3, 3)) != CLI_CONTINUE)
        return r;
    a->path = argv[optind];
    if ((r = cli_parse_size(cmd, "OFFSET", argv[optind + 1], &a->offset)) != CLI_CONTINUE ||
        (r = cli_parse_size(cmd, "LENGTH", argv[optind + 2], &a->length)) != CLI_CONTINUE)
        return r;
    if (!is_aligned(a->offset | a->length, IMAGE_SECTOR_SIZE))
        return cli_usage_error(cmd, "%s: OFFSET and LENGTH must be multiples of 512", cmd->name);
    return CLI_CONTINUE;
}

static int report_discarded(const struct cli *cli, const struct discard_args *a,
                            uint64_t discarded)
{
    struct json_object *doc;

    if (!cli->json) {
        cli_say(cli, "discarded %" PRIu64 " of %" PRIu64 " bytes at offset %" PRIu64 "\n",
                discarded, a->length, a->offset);
        return CLI_EXIT_OK;
    }
    doc = json_object_new_object();
    json_add_string(doc, "filename", a->path);
    json_add_u64(doc, "offset", a->offset);
    json_add_u64(doc, "length", a->length);
    json_add_u64(doc, "discarded", discarded);
    return cli_print_json(doc);
}

static int run_discard(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct discard_args a = { .format = IMAGE_FORMAT_AUTO };
    struct cli_open o = { .format = IMAGE_FORMAT_AUTO };
    uint64_t discarded = 0;
    struct image *img;
    int r, rc;

    if ((r = parse_discard(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    o.path = a.path;
    o.format = a.format;
    if ((r = cli_open_image(&o, &img)) != CLI_EXIT_OK)
        return r;
    qc_clear_error();
    r = image_discard(img, a.offset, a.length, &discarded);
    r = r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
    rc = cli_close_image(img);
    if (r == CLI_EXIT_OK)
        r = rc;
    return r == CLI_EXIT_OK ? report_discarded(cli, &a, discarded) : r;
}

/* ---- compact ------------------------------------------------------------- */

static int run_compact(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct qcow_compact_result res;
    struct json_object *doc;
    const char *path;
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT, discard_options + 1, NULL)) != -1)
        if ((r = cli_common_option(cli, cmd, opt, argv)) != CLI_CONTINUE)
            return r;
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    path = argv[optind];
    if ((r = qcow_compact(path, &res)) < 0)
        return cli_engine_fail(r);
    if (cli->json) {
        doc = json_object_new_object();
        json_add_string(doc, "filename", path);
        json_add_u64(doc, "old-size", res.old_size);
        json_add_u64(doc, "new-size", res.new_size);
        json_add_u64(doc, "l2-tables", res.l2_tables);
        json_add_u64(doc, "clusters", res.clusters);
        return cli_print_json(doc);
    }
    cli_say(cli, "%s: %" PRIu64 " L2 tables and %" PRIu64 " clusters rewritten in order; "
            "file %" PRIu64 " -> %" PRIu64 " bytes\n", path, res.l2_tables, res.clusters,
            res.old_size, res.new_size);
    return CLI_EXIT_OK;
}

static const struct cli_command space_commands[] = {
    {
        .name = "discard",
        .synopsis = "[-f FMT] FILE OFFSET LENGTH",
        .summary = "make a range of the virtual disk read as zeros and free its space",
        .help =
            "Options:\n"
            "  -f, --format FMT      format of FILE: qcow or raw (probed when not given)\n"
            "Every whole cluster in the range then reads as zeros and, where the file\n"
            "system can, its space is freed (a hole is punched in its data; its entry\n"
            "stays, so a backing file never shows through); a cluster the range covers\n"
            "only in part keeps its data.  A raw image gets the whole range punched.\n"
            "OFFSET and LENGTH are bytes (K, M, G, T suffixes), multiples of 512.  Not\n"
            "possible on an encrypted image.\n",
        .run = run_discard,
    },
    {
        .name = "compact",
        .synopsis = "FILE",
        .summary = "rewrite a qcow image without leaked space, its clusters in order",
        .help =
            "Copies FILE beside itself, each L2 table followed by its clusters in guest\n"
            "order, nothing unreferenced, all-zero clusters as holes, and renames the copy\n"
            "over FILE.  The data, backing file, encryption and compression stay as they\n"
            "are (no key needed).  Refused while the image is in use (attached, or open\n"
            "in QEMU) and on an image with corrupt entries (qcowctl check --repair first).\n",
        .run = run_compact,
    },
};

const struct cli_group cli_space_group = {
    .title = "Giving space back",
    .commands = space_commands,
    .n_commands = ARRAY_SIZE(space_commands),
};
