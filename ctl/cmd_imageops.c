/* qcowctl resize, commit and rebase: an image's size and its backing chain,
 * offline on the files (the online forms are in cmd_imageops_online.c). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "imageops.h"
#include "output.h"
#include "qcow_check.h"
#include "util.h"

enum { OPT_KEY_FILE = CLI_OPT_COMMAND, OPT_SHRINK, OPT_OFFLINE, OPT_ONLINE };

/* An open image that is closed (and its writeback failure reported) when
 * the variable goes out of scope, unless taken. */
static void close_imagep(struct image **img)
{
    if (*img)
        image_close(*img);
}
#define _cleanup_image_ __attribute__((cleanup(close_imagep)))

static int close_reporting(struct image **img)
{
    struct image *i = *img;

    *img = NULL;
    return cli_close_image(i);
}

/* ---- resize -------------------------------------------------------------- */

struct resize_args {
    struct imageops_target target;
    enum image_format format;
    const char *key_file;
    char sign;                  /* '+', '-' or 0 */
    uint64_t amount;
    bool shrink;
};

static const struct option resize_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "shrink", no_argument, NULL, OPT_SHRINK },
    { "offline", no_argument, NULL, OPT_OFFLINE },
    { "online", no_argument, NULL, OPT_ONLINE },
    CLI_CONNECTION_OPTIONS,
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

/* --offline, --online, --socket: where the operand is looked for (and
 * --timeout, for an image qcowd serves). */
static int target_option(struct cli *cli, const struct cli_command *cmd, int opt,
                         struct imageops_target *t)
{
    switch (opt) {
    case OPT_OFFLINE: t->where = IMAGEOPS_OFFLINE; return CLI_CONTINUE;
    case OPT_ONLINE: t->where = IMAGEOPS_ONLINE; return CLI_CONTINUE;
    }
    return cli_connection_option(cli, cmd, opt, optarg);
}

static int resize_option(struct cli *cli, const struct cli_command *cmd, int opt,
                         struct resize_args *a)
{
    switch (opt) {
    case 'f': return cli_parse_format(cmd, optarg, &a->format);
    case OPT_KEY_FILE: a->key_file = optarg; return CLI_CONTINUE;
    case OPT_SHRINK: a->shrink = true; return CLI_CONTINUE;
    }
    return target_option(cli, cmd, opt, &a->target);
}

static int parse_resize(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                        struct resize_args *a)
{
    const char *size;
    int opt, r;

    cli_begin_options();
    /* "-" starts SIZE -1G, not an option: stop at the first operand. */
    while ((opt = getopt_long(argc, argv, "+" CLI_COMMON_SHORT "f:", resize_options, NULL)) != -1) {
        r = resize_option(cli, cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 2, 2)) != CLI_CONTINUE)
        return r;
    a->target.operand = argv[optind];
    size = argv[optind + 1];
    if (*size == '+' || *size == '-')
        a->sign = *size++;
    return cli_parse_size(cmd, "SIZE", size, &a->amount);
}

static int target_size(const struct resize_args *a, uint64_t old, uint64_t *out)
{
    uint64_t v = a->amount;

    if (a->sign == '+' && v > UINT64_MAX - old)
        return cli_fail("%s: %s + %" PRIu64 " bytes is too large", a->target.operand,
                        "the size", v);
    if (a->sign == '-' && v >= old)
        return cli_fail("%s: cannot take %" PRIu64 " bytes off a disk of %" PRIu64,
                        a->target.operand, v, old);
    v = a->sign == '+' ? old + v : a->sign == '-' ? old - v : v;
    if (v == 0 || v > UINT64_MAX - IMAGE_SECTOR_SIZE)
        return cli_fail("%s: invalid new size %" PRIu64, a->target.operand, v);
    /* As create does: whole sectors. */
    *out = align_up(v, IMAGE_SECTOR_SIZE);
    return CLI_EXIT_OK;
}

static int report_resize(const struct cli *cli, const char *path, uint64_t old, uint64_t now,
                         uint64_t reclaimed)
{
    struct json_object *doc;
    char a[32], b[32];

    if (cli->json) {
        doc = json_object_new_object();
        json_add_string(doc, "filename", path);
        json_add_u64(doc, "old-size", old);
        json_add_u64(doc, "new-size", now);
        json_add_u64(doc, "reclaimed", reclaimed);
        return cli_print_json(doc);
    }
    if (old == now) {
        cli_say(cli, "%s: already %" PRIu64 " bytes (%s)\n", path, now, cli_human_size(now, a));
        return CLI_EXIT_OK;
    }
    cli_say(cli, "%s: resized from %" PRIu64 " bytes (%s) to %" PRIu64 " bytes (%s)", path, old,
            cli_human_size(old, a), now, cli_human_size(now, b));
    if (reclaimed)
        cli_say(cli, "; %" PRIu64 " bytes of the file given back", reclaimed);
    cli_say(cli, "\n");
    return CLI_EXIT_OK;
}

/* A shrink leaves what lay past the new end unreferenced: give it back. */
static int reclaim_after_shrink(const char *path, uint64_t *bytes)
{
    int r;

    *bytes = 0;
    qc_clear_error();
    r = qcow_reclaim_leaks(path, bytes);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int resize_offline(struct cli *cli, const struct resize_args *a)
{
    struct cli_open o = { .path = a->target.operand, .format = a->format,
                          .key_file = a->key_file, .need_key = true };
    _cleanup_image_ struct image *img = NULL;
    struct layer_info info;
    uint64_t old, now = 0, reclaimed = 0;
    int r;

    if ((r = cli_open_image(&o, &img)) != CLI_EXIT_OK)
        return r;
    old = img->size;
    if ((r = target_size(a, old, &now)) != CLI_EXIT_OK)
        return r;
    layer_get_info(img->top, &info);
    qc_clear_error();
    if ((r = image_lock_alone(img, "resize")) < 0 || (r = image_resize(img, now, a->shrink)) < 0)
        return cli_engine_fail(r);
    now = img->size;
    if ((r = close_reporting(&img)) != CLI_EXIT_OK)
        return r;
    if (now < old && info.format == IMAGE_FORMAT_QCOW &&
        (r = reclaim_after_shrink(o.path, &reclaimed)) != CLI_EXIT_OK)
        return r;
    return report_resize(cli, o.path, old, now, reclaimed);
}

static int run_resize(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct resize_args a = { .format = IMAGE_FORMAT_AUTO };
    int r;

    if ((r = parse_resize(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if ((r = imageops_locate(cli, &a.target)) != CLI_CONTINUE)
        return r;
    if (a.target.where == IMAGEOPS_ONLINE) {
        if (a.sign || a.shrink)
            return cli_usage_error(cmd, "%s: online, SIZE is the new size (no + or -), and "
                                   "shrinking is refused", cmd->name);
        return imageops_resize_online(cli, &a.target, a.amount);
    }
    return resize_offline(cli, &a);
}

/* ---- commit -------------------------------------------------------------- */

struct commit_args {
    struct imageops_target target;
    enum image_format format;
    const char *key_file;
    bool keep;                  /* -d: do not empty the overlay */
};

static const struct option commit_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "offline", no_argument, NULL, OPT_OFFLINE },
    { "online", no_argument, NULL, OPT_ONLINE },
    CLI_CONNECTION_OPTIONS,
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int parse_commit(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                        struct commit_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "f:d", commit_options, NULL)) != -1) {
        switch (opt) {
        case 'f': r = cli_parse_format(cmd, optarg, &a->format); break;
        case 'd': a->keep = true; r = CLI_CONTINUE; break;
        case OPT_KEY_FILE: a->key_file = optarg; r = CLI_CONTINUE; break;
        default:
            r = target_option(cli, cmd, opt, &a->target);
            if (r == CLI_NOT_MINE)
                r = cli_common_option(cli, cmd, opt, argv);
        }
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    a->target.operand = argv[optind];
    return CLI_CONTINUE;
}

/* The overlay's backing file, opened for writing with its own chain. */
static int open_base(const struct commit_args *a, struct image *img, char **path,
                     struct image **base)
{
    struct layer_info info;
    struct cli_open o = { .format = IMAGE_FORMAT_AUTO, .key_file = a->key_file,
                          .need_key = true };
    int r;

    layer_get_info(img->top, &info);
    if (!info.backing_name)
        return cli_fail("%s: has no backing file to commit into", info.path);
    qc_clear_error();
    if ((r = image_resolve_backing(info.path, info.backing_name, path)) < 0)
        return cli_engine_fail(r);
    o.path = *path;
    if ((r = cli_open_image(&o, base)) != CLI_EXIT_OK)
        return r;
    qc_clear_error();
    r = image_lock_alone(*base, "commit into");
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int report_commit(const struct cli *cli, const char *path, const char *base,
                         const struct image_commit_result *res, uint64_t size)
{
    struct json_object *doc;
    char h[32];

    if (cli->json) {
        doc = json_object_new_object();
        json_add_string(doc, "filename", path);
        json_add_string(doc, "backing-filename", base);
        json_add_u64(doc, "copied", res->copied);
        json_add_bool(doc, "emptied", res->emptied);
        if (res->base_old_size < size) {
            json_add_u64(doc, "backing-old-size", res->base_old_size);
            json_add_u64(doc, "backing-new-size", size);
        }
        return cli_print_json(doc);
    }
    cli_say(cli, "Image committed: %" PRIu64 " bytes (%s) of %s copied into %s%s\n",
            res->copied, cli_human_size(res->copied, h), path, base,
            res->emptied ? "; the overlay is empty now" : "");
    if (res->base_old_size < size)
        cli_say(cli, "%s grew from %" PRIu64 " to %" PRIu64 " bytes\n", base, res->base_old_size,
                size);
    return CLI_EXIT_OK;
}

static int commit_offline(struct cli *cli, const struct commit_args *a)
{
    struct cli_open o = { .path = a->target.operand, .format = a->format,
                          .key_file = a->key_file, .need_key = true };
    _cleanup_image_ struct image *img = NULL;
    _cleanup_image_ struct image *base = NULL;
    _cleanup_free_ char *base_path = NULL;
    struct image_commit_result res;
    uint64_t size;
    int r;

    if ((r = cli_open_image(&o, &img)) != CLI_EXIT_OK)
        return r;
    qc_clear_error();
    if ((r = image_lock_alone(img, "commit")) < 0)
        return cli_engine_fail(r);
    if ((r = open_base(a, img, &base_path, &base)) != CLI_EXIT_OK)
        return r;
    assert(base);               /* cli_open_image sets it when it succeeds */
    qc_clear_error();
    if ((r = image_commit(img, base, !a->keep, &res)) < 0)
        return cli_engine_fail(r);
    size = base->size;
    if ((r = close_reporting(&base)) != CLI_EXIT_OK || (r = close_reporting(&img)) != CLI_EXIT_OK)
        return r;
    return report_commit(cli, o.path, base_path, &res, size);
}

static int run_commit(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct commit_args a = { .format = IMAGE_FORMAT_AUTO };
    int r;

    if ((r = parse_commit(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if ((r = imageops_locate(cli, &a.target)) != CLI_CONTINUE)
        return r;
    if (a.target.where == IMAGEOPS_ONLINE) {
        if (a.keep || a.key_file)
            return cli_usage_error(cmd, "%s: -d and --key-file are for the offline form",
                                   cmd->name);
        return imageops_commit_online(cli, &a.target);
    }
    return commit_offline(cli, &a);
}

/* ---- rebase -------------------------------------------------------------- */

struct rebase_args {
    const char *path;
    enum image_format format;
    const char *backing;        /* "" for none */
    enum image_format backing_format;
    const char *key_file;
    bool unsafe;
};

static const struct option rebase_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "backing", required_argument, NULL, 'b' },
    { "backing-format", required_argument, NULL, 'F' },
    { "unsafe", no_argument, NULL, 'u' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int parse_rebase(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                        struct rebase_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "f:b:F:u", rebase_options, NULL)) != -1) {
        switch (opt) {
        case 'f': r = cli_parse_format(cmd, optarg, &a->format); break;
        case 'b': a->backing = optarg; r = CLI_CONTINUE; break;
        case 'F': r = cli_parse_format(cmd, optarg, &a->backing_format); break;
        case 'u': a->unsafe = true; r = CLI_CONTINUE; break;
        case OPT_KEY_FILE: a->key_file = optarg; r = CLI_CONTINUE; break;
        default: r = cli_common_option(cli, cmd, opt, argv);
        }
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    a->path = argv[optind];
    if (!a->backing)
        return cli_usage_error(cmd, "%s: -b BACKING is required (-b \"\" for none)", cmd->name);
    return CLI_CONTINUE;
}

/* The new backing chain, read-only, to compare with (safe mode). */
static int open_next(const struct rebase_args *a, const char *name, struct image **next)
{
    _cleanup_free_ char *path = NULL;
    struct cli_open o = { .format = a->backing_format, .read_only = true,
                          .key_file = a->key_file, .need_key = true };
    int r;

    qc_clear_error();
    if ((r = image_resolve_backing(a->path, name, &path)) < 0)
        return cli_engine_fail(r);
    o.path = path;
    return cli_open_image(&o, next);
}

static int report_rebase(const struct cli *cli, const struct rebase_args *a, const char *name,
                         const struct image_rebase_result *res)
{
    struct json_object *doc;
    char h[32];

    if (cli->json) {
        doc = json_object_new_object();
        json_add_string(doc, "filename", a->path);
        if (name)
            json_add_string(doc, "backing-filename", name);
        else
            json_object_object_add(doc, "backing-filename", NULL);
        json_add_bool(doc, "unsafe", a->unsafe);
        json_add_u64(doc, "copied", res->copied);
        return cli_print_json(doc);
    }
    if (name)
        cli_say(cli, "%s: backing file is now %s", a->path, name);
    else
        cli_say(cli, "%s: has no backing file now", a->path);
    if (!a->unsafe)
        cli_say(cli, " (%" PRIu64 " bytes (%s) kept in the image)", res->copied,
                cli_human_size(res->copied, h));
    cli_say(cli, "\n");
    return CLI_EXIT_OK;
}

static int run_rebase(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct rebase_args a = { .format = IMAGE_FORMAT_AUTO, .backing_format = IMAGE_FORMAT_AUTO };
    _cleanup_image_ struct image *img = NULL;
    _cleanup_image_ struct image *next = NULL;
    struct image_rebase_result res;
    const char *name;
    int r;

    if ((r = parse_rebase(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    name = *a.backing ? a.backing : NULL;
    struct cli_open o = { .path = a.path, .format = a.format, .key_file = a.key_file,
                          .need_key = !a.unsafe };
    if ((r = cli_open_image(&o, &img)) != CLI_EXIT_OK)
        return r;
    qc_clear_error();
    if ((r = image_lock_alone(img, "rebase")) < 0)
        return cli_engine_fail(r);
    if (!a.unsafe && name && (r = open_next(&a, name, &next)) != CLI_EXIT_OK)
        return r;
    qc_clear_error();
    if ((r = image_rebase(img, next, name, a.unsafe, &res)) < 0)
        return cli_engine_fail(r);
    if ((r = close_reporting(&img)) != CLI_EXIT_OK)
        return r;
    return report_rebase(cli, &a, name, &res);
}

/* ---- the table ------------------------------------------------------------ */

static const struct cli_command imageops_commands[] = {
    {
        .name = "resize",
        .synopsis = "[--shrink] [-f FMT] [--key-file FILE] IMAGE [+|-]SIZE\n"
                    "       " CLI_PROGRAM " resize [--socket PATH] NAME SIZE",
        .summary = "change the virtual size of an image, offline or while qcowd serves it",
        .help =
            "Options:\n"
            "  -f, --format FMT      format of IMAGE: qcow or raw (probed when not given)\n"
            "      --key-file FILE   the password of an encrypted image\n"
            "      --shrink          allow a smaller size (offline only): what lies past the\n"
            "                        new end is dropped and its space given back\n"
            "      --offline         IMAGE is a file, even if qcowd serves an image by that\n"
            "                        name\n"
            "      --online          NAME is an image qcowd serves (also with --socket)\n"
            "      --socket PATH     qcowd's control socket\n"
            "      --timeout SECS    online: fail when qcowd does not answer within SECS\n"
            "SIZE is bytes with an optional K, M, G or T suffix, rounded up to a multiple\n"
            "of 512; +SIZE and -SIZE change the size by that much.  What a grown disk\n"
            "gains reads as zeros.  A qcow image whose L1 table must grow gets a new one\n"
            "at the end of the file first; only then does the header point at it, so a\n"
            "crash leaves the old size or the new one.  Images with blktap's Xen header\n"
            "are not resized.  Without --offline or --online, the operand is an image\n"
            "qcowd serves when qcowd answers and knows the name, else a file.  Online,\n"
            "the image grows while its ring's client goes on (it learns the new capacity\n"
            "from the ring's qcowd page and the image-resized event).\n",
        .run = run_resize,
    },
    {
        .name = "commit",
        .synopsis = "[-d] [-f FMT] [--key-file FILE] IMAGE\n"
                    "       " CLI_PROGRAM " commit [--socket PATH] NAME",
        .summary = "merge an overlay into its backing file, offline or while qcowd serves it",
        .help =
            "Options:\n"
            "  -d                    offline: leave the overlay as it is (by default it is\n"
            "                        emptied, as qemu-img commit does)\n"
            "  -f, --format FMT      format of IMAGE (probed when not given)\n"
            "      --key-file FILE   the password of an encrypted chain\n"
            "      --offline, --online, --socket PATH, --timeout SECS   as for resize\n"
            "Copies every cluster the overlay holds into its backing file (which grows to\n"
            "the overlay's size if smaller), flushes it, then empties the overlay.  Both\n"
            "files must not be in use.  Online, the copy runs in the background while\n"
            "the image is served (progress in query and commit-progress events); writes\n"
            "made meanwhile are copied too, and at the end the worker switches to the\n"
            "backing file and lets the overlay go (it is left as it was, no longer used).\n",
        .run = run_commit,
    },
    {
        .name = "rebase",
        .synopsis = "[-u] [-f FMT] [-F FMT] [--key-file FILE] -b BACKING IMAGE",
        .summary = "make an overlay use another backing file (\"\" for none)",
        .help =
            "Options:\n"
            "  -b, --backing NAME    the new backing file, stored as given (relative names\n"
            "                        are relative to IMAGE's directory); \"\" for none\n"
            "  -F, --backing-format FMT  its format (probed when not given)\n"
            "  -u, --unsafe          only change the name: the guest may then read other\n"
            "                        data\n"
            "  -f, --format FMT      format of IMAGE\n"
            "      --key-file FILE   the password of an encrypted chain\n"
            "Safe (the default): every cluster IMAGE leaves to its old backing chain whose\n"
            "contents the new one would change is first copied into IMAGE, so the guest\n"
            "reads the same afterwards.  A name that does not fit in front of the L1\n"
            "table is written at the end of the file and flushed before the header names\n"
            "it.  IMAGE must not be in use.\n",
        .run = run_rebase,
    },
    {
        .name = "snapshot",
        .synopsis = "[--socket PATH] NAME NEW",
        .summary = "take a live external snapshot: serve NAME from a new overlay NEW",
        .help =
            "qcowd pauses the image, creates NEW (qcow, with the image as its backing\n"
            "file: its name relative when NEW is in the same directory; the same cluster\n"
            "size, and encrypted with the same key when the image is), switches the\n"
            "worker onto it and resumes.  The ring and its client stay; requests posted\n"
            "meanwhile are served after.  The image becomes a read-only backing file\n"
            "(QEMU's locks move to NEW).  On failure the image goes on as it was and NEW\n"
            "is not left behind.  NEW must not exist.\n",
        .run = imageops_run_snapshot,
    },
};

const struct cli_group cli_imageops_group = {
    .title = "Changing an image's size and chain",
    .commands = imageops_commands,
    .n_commands = ARRAY_SIZE(imageops_commands),
};
