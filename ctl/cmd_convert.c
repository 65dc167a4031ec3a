/* qcowctl convert: copy an image (its whole chain, flattened) into a new
 * qcow or raw image, leaving zero ranges unallocated, optionally compressed. */
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

/* Bytes read from the source at a time. */
#define CONVERT_CHUNK (2u << 20)
/* Zero detection granularity for a raw target (holes stay holes). */
#define RAW_ZERO_UNIT 4096u

enum { OPT_KEY_FILE = CLI_OPT_COMMAND, OPT_TARGET_KEY_FILE, OPT_CLUSTER_SIZE };

struct convert_args {
    const char *src, *dst;
    enum image_format src_format;
    enum image_format dst_format;
    bool compress;
    const char *key_file;
    const char *target_key_file;
    unsigned cluster_bits;
    const char *cluster_size_arg;
};

static const struct option convert_options[] = {
    { "compress", no_argument, NULL, 'c' },
    { "format", required_argument, NULL, 'f' },
    { "output-format", required_argument, NULL, 'O' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "target-key-file", required_argument, NULL, OPT_TARGET_KEY_FILE },
    { "cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int convert_option(const struct cli_command *cmd, int opt, struct convert_args *a)
{
    switch (opt) {
    case 'c': a->compress = true; return CLI_CONTINUE;
    case 'f': return cli_parse_format(cmd, optarg, &a->src_format);
    case 'O': return cli_parse_format(cmd, optarg, &a->dst_format);
    case OPT_KEY_FILE: a->key_file = optarg; return CLI_CONTINUE;
    case OPT_TARGET_KEY_FILE: a->target_key_file = optarg; return CLI_CONTINUE;
    case OPT_CLUSTER_SIZE:
        a->cluster_size_arg = optarg;
        return cli_parse_cluster_size(cmd, optarg, &a->cluster_bits);
    }
    return CLI_NOT_MINE;
}

static int check_convert_args(const struct cli_command *cmd, const struct convert_args *a)
{
    if (a->dst_format == IMAGE_FORMAT_RAW) {
        if (a->compress)
            return cli_usage_error(cmd, "%s: -c needs a qcow target (-O qcow)", cmd->name);
        if (a->target_key_file)
            return cli_usage_error(cmd, "%s: --target-key-file needs a qcow target (-O qcow)",
                                   cmd->name);
        if (a->cluster_size_arg)
            return cli_usage_error(cmd, "%s: --cluster-size needs a qcow target (-O qcow)",
                                   cmd->name);
    }
    return CLI_CONTINUE;
}

static int parse_convert(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                         struct convert_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "cf:O:", convert_options, NULL)) != -1) {
        r = convert_option(cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 2, 2)) != CLI_CONTINUE ||
        (r = check_convert_args(cmd, a)) != CLI_CONTINUE)
        return r;
    a->src = argv[optind];
    a->dst = argv[optind + 1];
    return CLI_CONTINUE;
}

/* ---- the target --------------------------------------------------------- */

/* Creating the target truncates it: it must not be part of the source. */
static int check_not_source(const struct image *src, const char *dst)
{
    struct stat d, s;

    if (stat(dst, &d) < 0)
        return CLI_EXIT_OK;
    for (const struct layer *l = src->top; l; l = layer_backing(l)) {
        struct layer_info li;
        layer_get_info(l, &li);
        if (stat(li.path, &s) == 0 && s.st_dev == d.st_dev && s.st_ino == d.st_ino)
            return cli_fail("%s: is the source image %s or in its backing chain", dst, li.path);
    }
    return CLI_EXIT_OK;
}

static int create_target(const struct convert_args *a, uint64_t size, const struct cli_key *key)
{
    struct qcow_create_opts o = { .size = size, .cluster_bits = a->cluster_bits };
    int r;

    qc_clear_error();
    if (a->dst_format == IMAGE_FORMAT_RAW) {
        r = raw_create(a->dst, size, PREALLOC_OFF);
    } else {
        if (key) {
            o.key = key->data;
            o.key_len = key->len;
        }
        r = qcow_create(a->dst, &o);
    }
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int open_target(const struct convert_args *a, const struct cli_key *key,
                       struct image **out)
{
    struct image_open_opts o = { .format = a->dst_format };
    int r;

    if (key) {
        o.key = key->data;
        o.key_len = key->len;
    }
    r = image_open(a->dst, &o, out);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

/* Create and open the target, encrypted with the target key if given.
 * *created tells whether the file was (re)made, even on failure. */
static int make_target(const struct convert_args *a, uint64_t size, struct image **out,
                       bool *created)
{
    struct cli_key key;
    bool keyed = a->target_key_file != NULL;
    int r = keyed ? key_read_file(a->target_key_file, &key) : CLI_EXIT_OK;

    if (r == CLI_EXIT_OK) {
        *created = true;
        r = create_target(a, size, keyed ? &key : NULL);
    }
    if (r == CLI_EXIT_OK)
        r = open_target(a, keyed ? &key : NULL, out);
    if (keyed)
        key_wipe(&key);
    return r;
}

/* ---- copying ------------------------------------------------------------ */

struct copier {
    struct image *src, *dst;
    bool compress;
    uint32_t unit;              /* zero detection and compression granularity */
    uint8_t *buf;               /* CONVERT_CHUNK bytes */
    uint64_t copied;            /* bytes written to the target */
};

static bool all_zero(const uint8_t *p, size_t len)
{
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Whether the source holds only zeros in [off, off+len), without reading. */
static int source_is_zero(struct copier *c, uint64_t off, uint64_t len, bool *zero)
{
    struct extent_vec ev = { 0 };
    int r;

    qc_clear_error();
    r = image_map(c->src, off, len, &ev);
    *zero = r == 0;
    for (size_t i = 0; i < ev.n && *zero; i++)
        *zero = ev.v[i].kind == EXTENT_ZERO;
    extent_vec_free(&ev);
    return r;
}

/* Read source bytes [off, off+len) (len <= CONVERT_CHUNK) into c->buf. */
static int read_source(struct copier *c, uint64_t off, uint64_t len)
{
    qc_clear_error();
    return image_pread(c->src, c->buf, len, off);
}

/* Write target bytes; byte-granular only at an unaligned end of a raw target. */
static int write_target(struct copier *c, const uint8_t *data, uint64_t len, uint64_t off)
{
    int r;

    qc_clear_error();
    r = is_aligned(off | len, IMAGE_SECTOR_SIZE) ? image_write(c->dst, data, len, off)
                                                  : image_pwrite(c->dst, data, len, off);
    if (r == 0)
        c->copied += len;
    return r;
}

/* Write the non-zero units of buf (len bytes at off), runs at a time. */
static int write_nonzero_runs(struct copier *c, uint64_t off, uint64_t len)
{
    uint64_t run_start = 0, pos;
    bool in_run = false;
    int r;

    for (pos = 0; pos < len; pos += c->unit) {
        uint64_t n = MIN(c->unit, len - pos);
        bool zero = all_zero(c->buf + pos, n);
        if (!zero && !in_run) {
            run_start = pos;
            in_run = true;
        } else if (zero && in_run) {
            if ((r = write_target(c, c->buf + run_start, pos - run_start, off + run_start)) < 0)
                return r;
            in_run = false;
        }
    }
    if (in_run)
        return write_target(c, c->buf + run_start, len - run_start, off + run_start);
    return 0;
}

/* Each non-zero cluster compressed (whole clusters: the buffer past the
 * source's end is zeros). */
static int write_compressed_clusters(struct copier *c, uint64_t off, uint64_t len)
{
    int r;

    for (uint64_t pos = 0; pos < len; pos += c->unit) {
        if (all_zero(c->buf + pos, c->unit))
            continue;
        qc_clear_error();
        if ((r = image_write_compressed(c->dst, off + pos, c->buf + pos)) < 0)
            return r;
        c->copied += c->unit;
        if (image_meta_pressure(c->dst) && (r = image_flush(c->dst)) < 0)
            return r;
    }
    return 0;
}

static int copy_chunk(struct copier *c, uint64_t off)
{
    uint64_t len = MIN((uint64_t)CONVERT_CHUNK, c->src->size - off);
    bool zero;
    int r;

    if ((r = source_is_zero(c, off, len, &zero)) < 0 || zero)
        return r;
    if ((r = read_source(c, off, len)) < 0)
        return r;
    if (!c->compress)
        return write_nonzero_runs(c, off, len);
    memset(c->buf + len, 0, align_up(len, c->unit) - len);
    return write_compressed_clusters(c, off, len);
}

static int copy_image(const struct cli *cli, struct copier *c)
{
    int r = 0;

    for (uint64_t off = 0; off < c->src->size && r == 0; off += CONVERT_CHUNK) {
        r = copy_chunk(c, off);
        if (cli->verbose > 1)
            cli_verbose(cli, "%" PRIu64 " of %" PRIu64 " bytes done", MIN(off + CONVERT_CHUNK,
                        c->src->size), c->src->size);
    }
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static uint32_t target_unit(const struct image *dst)
{
    struct layer_info li;

    layer_get_info(dst->top, &li);
    return li.format == IMAGE_FORMAT_QCOW ? li.cluster_size : RAW_ZERO_UNIT;
}

static int convert(const struct cli *cli, const struct convert_args *a, struct image *src,
                   bool *created)
{
    struct copier c = { .src = src, .compress = a->compress };
    int r, rc;

    if ((r = check_not_source(src, a->dst)) != CLI_EXIT_OK ||
        (r = make_target(a, src->size, &c.dst, created)) != CLI_EXIT_OK)
        return r;
    c.unit = target_unit(c.dst);
    /* CONVERT_CHUNK is a multiple of any cluster size (at most 64 KiB). */
    if (!(c.buf = malloc(CONVERT_CHUNK)))
        r = cli_fail("%s: out of memory", a->dst);
    else
        r = copy_image(cli, &c);
    free(c.buf);
    rc = cli_close_image(c.dst);
    if (r == CLI_EXIT_OK)
        r = rc;
    if (r == CLI_EXIT_OK)
        cli_verbose(cli, "%s: %" PRIu64 " bytes written", a->dst, c.copied);
    return r;
}

static int run_convert(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct convert_args a = { .src_format = IMAGE_FORMAT_AUTO, .dst_format = IMAGE_FORMAT_RAW };
    struct image *src;
    bool created = false;
    int r;

    if ((r = parse_convert(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if (a.compress && a.target_key_file)
        return cli_fail("%s: compression is not possible on an encrypted image", a.dst);
    struct cli_open so = { .path = a.src, .format = a.src_format, .read_only = true,
                           .key_file = a.key_file, .need_key = true };
    if ((r = cli_open_image(&so, &src)) != CLI_EXIT_OK)
        return r;
    r = convert(cli, &a, src, &created);
    image_close(src);
    /* A partial target is of no use. */
    if (r != CLI_EXIT_OK && created)
        unlink(a.dst);
    return r;
}

static const struct cli_command convert_commands[] = {
    {
        .name = "convert",
        .synopsis = "[-c] [-f FMT] [-O qcow|raw] [--key-file F] [--target-key-file F] "
                    "[--cluster-size BYTES] SRC DST",
        .summary = "copy an image, its backing chain flattened, into a new image",
        .help =
            "Options:\n"
            "  -c, --compress            write each non-zero cluster compressed (qcow\n"
            "                            target, not encrypted)\n"
            "  -f, --format FMT          format of SRC: qcow or raw (probed when not given)\n"
            "  -O, --output-format FMT   format of DST: raw (default) or qcow\n"
            "      --key-file F          password of an encrypted SRC (asked on a terminal\n"
            "                            when not given)\n"
            "      --target-key-file F   encrypt DST (qcow) with this password\n"
            "      --cluster-size BYTES  cluster size of a qcow DST (512 to 64K)\n"
            "Zero ranges are not written: they stay unallocated (qcow) or holes (raw).\n"
            "DST is created (replaced if it exists); on failure it is removed.\n",
        .run = run_convert,
    },
};

const struct cli_group cli_convert_group = {
    .title = "Converting images",
    .commands = convert_commands,
    .n_commands = ARRAY_SIZE(convert_commands),
};
