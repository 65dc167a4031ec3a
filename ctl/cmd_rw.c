/* qcowctl read and write: guest bytes between the virtual disk and
 * stdout/stdin, at any byte offset. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "output.h"
#include "util.h"

#define RW_CHUNK (1u << 20)

enum { OPT_KEY_FILE = CLI_OPT_COMMAND, OPT_PATTERN };

struct rw_args {
    const char *path;
    enum image_format format;
    const char *key_file;
    uint64_t offset;
    uint64_t length;
    bool have_length;
    int pattern;                /* -1: data from stdin */
};

static const struct option rw_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "pattern", required_argument, NULL, OPT_PATTERN },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int rw_option(const struct cli_command *cmd, int opt, struct rw_args *a, bool writing)
{
    unsigned long v;
    int r;

    switch (opt) {
    case 'f': return cli_parse_format(cmd, optarg, &a->format);
    case OPT_KEY_FILE: a->key_file = optarg; return CLI_CONTINUE;
    case OPT_PATTERN:
        if (!writing)
            return CLI_NOT_MINE;
        r = cli_parse_uint(cmd, "pattern byte", optarg, 0, 255, &v);
        a->pattern = (int)v;
        return r;
    }
    return CLI_NOT_MINE;
}

/* FILE OFFSET LENGTH (read), FILE OFFSET [LENGTH] (write). */
static int parse_rw(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                    struct rw_args *a, bool writing)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "f:", rw_options, NULL)) != -1) {
        r = rw_option(cmd, opt, a, writing);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, writing ? 2 : 3, 3)) != CLI_CONTINUE)
        return r;
    a->path = argv[optind];
    if ((r = cli_parse_size(cmd, "OFFSET", argv[optind + 1], &a->offset)) != CLI_CONTINUE)
        return r;
    if (optind + 2 < argc) {
        a->have_length = true;
        if ((r = cli_parse_size(cmd, "LENGTH", argv[optind + 2], &a->length)) != CLI_CONTINUE)
            return r;
    }
    if (a->pattern >= 0 && !a->have_length)
        return cli_usage_error(cmd, "%s: --pattern needs a LENGTH", cmd->name);
    return CLI_CONTINUE;
}

static int check_range(const struct image *img, const struct rw_args *a)
{
    if (a->offset > img->size || a->length > img->size - a->offset)
        return cli_fail("%s: %" PRIu64 " bytes at offset %" PRIu64 " go past the end of the "
                        "image (%" PRIu64 " bytes)", a->path, a->length, a->offset, img->size);
    return CLI_EXIT_OK;
}

/* ---- read --------------------------------------------------------------- */

static int copy_out(struct image *img, const struct rw_args *a, uint8_t *buf)
{
    for (uint64_t done = 0; done < a->length;) {
        uint64_t n = MIN((uint64_t)RW_CHUNK, a->length - done);
        int r;
        qc_clear_error();
        if ((r = image_pread(img, buf, n, a->offset + done)) < 0)
            return cli_engine_fail(r);
        if (fwrite(buf, 1, n, stdout) != n)
            return cli_fail("standard output: write error: %s", strerror(errno));
        done += n;
    }
    return cli_finish_stdout();
}

static int read_data(struct image *img, const struct rw_args *a)
{
    uint8_t *buf;
    int r;

    if ((r = check_range(img, a)) != CLI_EXIT_OK)
        return r;
    if (!(buf = malloc(RW_CHUNK)))
        return cli_fail("%s: out of memory", a->path);
    r = copy_out(img, a, buf);
    free(buf);
    return r;
}

static int run_read(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct rw_args a = { .format = IMAGE_FORMAT_AUTO, .pattern = -1 };
    struct image *img;
    int r;

    if ((r = parse_rw(cli, cmd, argc, argv, &a, false)) != CLI_CONTINUE)
        return r;
    struct cli_open o = { .path = a.path, .format = a.format, .read_only = true,
                          .key_file = a.key_file, .need_key = true };
    if ((r = cli_open_image(&o, &img)) != CLI_EXIT_OK)
        return r;
    r = read_data(img, &a);
    image_close(img);
    return r;
}

/* ---- write -------------------------------------------------------------- */

/* Fill buf with up to len bytes of stdin; returns the count (short at EOF). */
static int64_t read_stdin(uint8_t *buf, uint64_t len)
{
    uint64_t got = 0;

    while (got < len) {
        ssize_t n = read(STDIN_FILENO, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (uint64_t)n;
    }
    return (int64_t)got;
}

static int write_chunk(struct image *img, const struct rw_args *a, const uint8_t *buf,
                       uint64_t n, uint64_t off)
{
    int r;

    if (off > img->size || n > img->size - off)
        return cli_fail("%s: data at offset %" PRIu64 " goes past the end of the image "
                        "(%" PRIu64 " bytes)", a->path, off, img->size);
    qc_clear_error();
    r = image_pwrite(img, buf, n, off);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int write_pattern(struct image *img, const struct rw_args *a, uint8_t *buf,
                         uint64_t *written)
{
    memset(buf, a->pattern, RW_CHUNK);
    for (*written = 0; *written < a->length;) {
        uint64_t n = MIN((uint64_t)RW_CHUNK, a->length - *written);
        int r = write_chunk(img, a, buf, n, a->offset + *written);
        if (r != CLI_EXIT_OK)
            return r;
        *written += n;
    }
    return CLI_EXIT_OK;
}

/* LENGTH bytes of stdin (all of it without LENGTH). */
static int write_stdin(struct image *img, const struct rw_args *a, uint8_t *buf,
                       uint64_t *written)
{
    for (*written = 0; !a->have_length || *written < a->length;) {
        uint64_t want = a->have_length ? MIN((uint64_t)RW_CHUNK, a->length - *written) : RW_CHUNK;
        int64_t n = read_stdin(buf, want);
        int r;
        if (n < 0)
            return cli_fail("standard input: %s", strerror((int)-n));
        if (n > 0 && (r = write_chunk(img, a, buf, (uint64_t)n, a->offset + *written)) != 0)
            return r;
        *written += (uint64_t)n;
        if ((uint64_t)n < want && a->have_length)
            return cli_fail("%s: standard input ended after %" PRIu64 " of %" PRIu64 " bytes",
                            a->path, *written, a->length);
        if ((uint64_t)n < want)
            break;
    }
    return CLI_EXIT_OK;
}

static int report_written(const struct cli *cli, const struct rw_args *a, uint64_t written)
{
    struct json_object *doc;

    if (!cli->json) {
        cli_say(cli, "wrote %" PRIu64 " bytes at offset %" PRIu64 "\n", written, a->offset);
        return CLI_EXIT_OK;
    }
    doc = json_object_new_object();
    json_add_string(doc, "filename", a->path);
    json_add_u64(doc, "offset", a->offset);
    json_add_u64(doc, "length", written);
    return cli_print_json(doc);
}

static int write_data(struct image *img, const struct rw_args *a, uint64_t *written)
{
    uint8_t *buf;
    int r;

    *written = 0;
    if (a->have_length && (r = check_range(img, a)) != CLI_EXIT_OK)
        return r;
    if (!(buf = malloc(RW_CHUNK)))
        return cli_fail("%s: out of memory", a->path);
    r = a->pattern >= 0 ? write_pattern(img, a, buf, written) : write_stdin(img, a, buf, written);
    free(buf);
    return r;
}

static int run_write(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct rw_args a = { .format = IMAGE_FORMAT_AUTO, .pattern = -1 };
    struct image *img;
    uint64_t written;
    int r, rc;

    if ((r = parse_rw(cli, cmd, argc, argv, &a, true)) != CLI_CONTINUE)
        return r;
    struct cli_open o = { .path = a.path, .format = a.format, .read_only = false,
                          .key_file = a.key_file, .need_key = true };
    if ((r = cli_open_image(&o, &img)) != CLI_EXIT_OK)
        return r;
    r = write_data(img, &a, &written);
    /* Closing writes the metadata back: what was written is kept either way. */
    rc = cli_close_image(img);
    if (r == CLI_EXIT_OK)
        r = rc;
    return r == CLI_EXIT_OK ? report_written(cli, &a, written) : r;
}

static const struct cli_command rw_commands[] = {
    {
        .name = "read",
        .synopsis = "[-f FMT] [--key-file F] FILE OFFSET LENGTH",
        .summary = "write LENGTH bytes of the virtual disk at OFFSET to stdout",
        .help =
            "Options:\n"
            "  -f, --format FMT      format of FILE: qcow or raw (probed when not given)\n"
            "      --key-file F      password of an encrypted image (asked on a terminal\n"
            "                        when not given)\n"
            "OFFSET and LENGTH are bytes (K, M, G, T suffixes); the range must lie inside\n"
            "the virtual disk.\n",
        .run = run_read,
    },
    {
        .name = "write",
        .synopsis = "[-f FMT] [--key-file F] [--pattern BYTE] FILE OFFSET [LENGTH]",
        .summary = "write LENGTH bytes (a pattern, or stdin) to the virtual disk at OFFSET",
        .help =
            "Options:\n"
            "  -f, --format FMT      format of FILE: qcow or raw (probed when not given)\n"
            "      --key-file F      password of an encrypted image (asked on a terminal\n"
            "                        when not given)\n"
            "      --pattern BYTE    write BYTE (decimal or 0xNN) LENGTH times; without it\n"
            "                        the data comes from stdin (LENGTH bytes exactly, or\n"
            "                        all of it when LENGTH is left out)\n"
            "OFFSET and LENGTH are bytes (K, M, G, T suffixes); the range must lie inside\n"
            "the virtual disk.\n",
        .run = run_write,
    },
};

const struct cli_group cli_rw_group = {
    .title = "Reading and writing guest data",
    .commands = rw_commands,
    .n_commands = ARRAY_SIZE(rw_commands),
};
