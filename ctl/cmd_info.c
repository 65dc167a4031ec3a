/* qcowctl info and map: what an image is and where its data lives. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "error.h"
#include "output.h"
#include "qcow_check.h"
#include "qcow_format.h"
#include "util.h"

enum { OPT_KEY_FILE = CLI_OPT_COMMAND };

struct inspect_args {
    const char *path;
    enum image_format format;
    const char *key_file;
};

static const struct option inspect_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int inspect_option(const struct cli_command *cmd, int opt, struct inspect_args *a)
{
    switch (opt) {
    case 'f': return cli_parse_format(cmd, optarg, &a->format);
    case OPT_KEY_FILE: a->key_file = optarg; return CLI_CONTINUE;
    }
    return CLI_NOT_MINE;
}

static int parse_inspect(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                         struct inspect_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "f:", inspect_options, NULL)) != -1) {
        r = inspect_option(cmd, opt, a);
        if (r == CLI_NOT_MINE)
            r = cli_common_option(cli, cmd, opt, argv);
        if (r != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    a->path = argv[optind];
    return CLI_CONTINUE;
}

/* info and map only look at metadata: no key needed (one given is used). */
static int open_inspected(const struct inspect_args *a, struct image **img)
{
    struct cli_open o = { .path = a->path, .format = a->format, .read_only = true,
                          .key_file = a->key_file };

    return cli_open_image(&o, img);
}

/* ---- info --------------------------------------------------------------- */

struct info {
    struct layer_info top;
    uint64_t actual_size;       /* bytes the file takes on disk */
    bool have_usage;
    struct qcow_usage usage;
};

static int gather_info(const struct image *img, struct info *in)
{
    struct stat st;
    int r;

    layer_get_info(img->top, &in->top);
    if (stat(in->top.path, &st) < 0)
        return cli_fail("%s: %s", in->top.path, strerror(errno));
    in->actual_size = (uint64_t)st.st_blocks * 512;
    if (in->top.format != IMAGE_FORMAT_QCOW)
        return CLI_EXIT_OK;
    qc_clear_error();
    if ((r = qcow_count_usage(in->top.path, &in->usage)) < 0)
        return cli_engine_fail(r);
    in->have_usage = true;
    return CLI_EXIT_OK;
}

static uint64_t allocated_clusters(const struct qcow_usage *u)
{
    return u->data_clusters + u->compressed_clusters;
}

static void xen_flags_text(uint32_t flags, char *buf, size_t len)
{
    snprintf(buf, len, "%#" PRIx32 " (%s, %s L1)", flags,
             (flags & QCOW_XEN_FLAG_SPARSE) ? "sparse" : "not sparse",
             (flags & QCOW_XEN_FLAG_L1_BIG_ENDIAN) ? "big-endian" : "host-order");
}

static void print_chain_human(const struct image *img)
{
    unsigned depth = 0;
    char size[32];

    printf("backing chain:\n");
    for (const struct layer *l = img->top; l; l = layer_backing(l), depth++) {
        struct layer_info li;
        layer_get_info(l, &li);
        printf("    [%u] %s (%s, %s)\n", depth, li.path, image_format_name(li.format),
               cli_human_size(li.size, size));
    }
}

static void print_info_human(const struct image *img, const struct info *in)
{
    const struct layer_info *t = &in->top;
    char size[32], flags[64];

    printf("image: %s\n", t->path);
    printf("file format: %s\n", image_format_name(t->format));
    printf("virtual size: %s (%" PRIu64 " bytes)\n", cli_human_size(t->size, size), t->size);
    printf("disk size: %s\n", cli_human_size(in->actual_size, size));
    if (t->format == IMAGE_FORMAT_QCOW)
        printf("cluster_size: %" PRIu32 "\n", t->cluster_size);
    if (t->encrypted)
        printf("encrypted: yes\n");
    if (t->backing_name)
        printf("backing file: %s\n", t->backing_name);
    if (in->have_usage) {
        uint64_t n = allocated_clusters(&in->usage);
        printf("allocated clusters: %" PRIu64 " (%s)\n", n,
               cli_human_size(n * t->cluster_size, size));
        printf("compressed clusters: %" PRIu64 "\n", in->usage.compressed_clusters);
        printf("L2 tables: %" PRIu64 "\n", in->usage.l2_tables);
        if (in->usage.bad_entries)
            printf("corrupt entries: %" PRIu64 " (see qcowctl check)\n", in->usage.bad_entries);
    }
    if (t->xen_header) {
        xen_flags_text(t->xen_flags, flags, sizeof flags);
        printf("Xen header:\n");
        printf("    min_cluster_alloc: %" PRIu32 "\n", t->xen_min_cluster_alloc);
        printf("    flags: %s\n", flags);
        printf("    L1 checksum: %s\n", !t->xen_honoured ? "not used (blktap ignores the "
                                                             "header of an image with a "
                                                             "backing file)"
                                     : t->xen_checksum_ok ? "ok" : "wrong");
        if (t->l1_area_entries > t->l1_entries)
            printf("    L1 table: %" PRIu64 " entries (blktap's long table; %" PRIu64 " used)\n",
                   t->l1_area_entries, t->l1_entries);
    }
    if (img->depth > 1)
        print_chain_human(img);
}

static struct json_object *xen_json(const struct layer_info *t)
{
    struct json_object *x = json_object_new_object();

    json_add_u64(x, "min-cluster-alloc", t->xen_min_cluster_alloc);
    json_add_u64(x, "flags", t->xen_flags);
    json_add_bool(x, "sparse", t->xen_flags & QCOW_XEN_FLAG_SPARSE);
    json_add_bool(x, "l1-big-endian", t->xen_flags & QCOW_XEN_FLAG_L1_BIG_ENDIAN);
    json_add_bool(x, "honoured", t->xen_honoured);
    json_add_bool(x, "checksum-ok", t->xen_checksum_ok);
    json_add_u64(x, "l1-table-entries", t->l1_area_entries);
    json_add_bool(x, "long-l1", t->l1_area_entries > t->l1_entries);
    return x;
}

static struct json_object *chain_json(const struct image *img)
{
    struct json_object *chain = json_object_new_array();

    for (const struct layer *l = img->top; l; l = layer_backing(l)) {
        struct layer_info li;
        struct json_object *o = json_object_new_object();
        layer_get_info(l, &li);
        json_add_string(o, "filename", li.path);
        json_add_string(o, "format", image_format_name(li.format));
        json_add_u64(o, "virtual-size", li.size);
        json_add_bool(o, "encrypted", li.encrypted);
        if (li.backing_name)
            json_add_string(o, "backing-filename", li.backing_name);
        json_object_array_add(chain, o);
    }
    return chain;
}

static int print_info_json(const struct image *img, const struct info *in)
{
    const struct layer_info *t = &in->top;
    struct json_object *doc = json_object_new_object();

    json_add_string(doc, "filename", t->path);
    json_add_string(doc, "format", image_format_name(t->format));
    json_add_u64(doc, "virtual-size", t->size);
    json_add_u64(doc, "actual-size", in->actual_size);
    if (t->format == IMAGE_FORMAT_QCOW)
        json_add_u64(doc, "cluster-size", t->cluster_size);
    json_add_bool(doc, "encrypted", t->encrypted);
    if (t->backing_name)
        json_add_string(doc, "backing-filename", t->backing_name);
    if (in->have_usage) {
        json_add_u64(doc, "allocated-clusters", allocated_clusters(&in->usage));
        json_add_u64(doc, "compressed-clusters", in->usage.compressed_clusters);
        json_add_u64(doc, "l2-tables", in->usage.l2_tables);
        json_add_u64(doc, "corrupt-entries", in->usage.bad_entries);
    }
    if (t->xen_header)
        json_object_object_add(doc, "xen-header", xen_json(t));
    json_object_object_add(doc, "chain", chain_json(img));
    return cli_print_json(doc);
}

static int run_info(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct inspect_args a = { .format = IMAGE_FORMAT_AUTO };
    struct info in = { 0 };
    struct image *img;
    int r;

    if ((r = parse_inspect(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if ((r = open_inspected(&a, &img)) != CLI_EXIT_OK)
        return r;
    if ((r = gather_info(img, &in)) == CLI_EXIT_OK) {
        if (cli->json)
            r = print_info_json(img, &in);
        else if (!cli->quiet)
            print_info_human(img, &in);
    }
    image_close(img);
    return r;
}

/* ---- map ---------------------------------------------------------------- */

/* One line of the map: a run of guest bytes that live in the same way. */
struct map_range {
    enum extent_kind kind;
    uint64_t start;
    uint64_t length;
    uint32_t depth;
    uint64_t offset;            /* EXTENT_DATA: host offset of start */
    const char *filename;       /* EXTENT_DATA, EXTENT_COMPRESSED */
};

struct map_output {
    const struct cli *cli;
    struct json_object *array;  /* --json */
    bool header_done;
};

/* Bytes resolved per image_map() call: bounds the extent vector. */
#define MAP_STEP (UINT64_C(64) << 20)

static void map_range_from_extent(const struct image *img, const struct extent *e,
                                  struct map_range *m)
{
    struct layer_info li;

    *m = (struct map_range){ .kind = e->kind, .start = e->guest_off, .length = e->len,
                             .depth = e->depth, .offset = e->host_off };
    if (e->kind == EXTENT_ZERO) {
        /* As qemu-img: the depth of the last layer asked. */
        m->depth = MIN(e->depth, img->depth - 1);
        return;
    }
    layer_get_info(e->layer, &li);
    m->filename = li.path;
}

static bool map_ranges_join(const struct map_range *a, const struct map_range *b)
{
    if (a->kind != b->kind || a->depth != b->depth || a->start + a->length != b->start)
        return false;
    if (a->kind == EXTENT_DATA)
        return a->filename == b->filename && a->offset + a->length == b->offset;
    return a->kind == EXTENT_ZERO || a->filename == b->filename;
}

static void emit_human(struct map_output *out, const struct map_range *m)
{
    if (m->kind == EXTENT_ZERO)
        return;
    if (!out->header_done) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
        out->header_done = true;
    }
    if (m->kind == EXTENT_COMPRESSED)
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%-16s%s\n", m->start, m->length, "compressed",
               m->filename);
    else
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", m->start, m->length,
               m->offset, m->filename);
}

static void emit_json(struct map_output *out, const struct map_range *m)
{
    struct json_object *o = json_object_new_object();
    bool data = m->kind != EXTENT_ZERO;

    json_add_u64(o, "start", m->start);
    json_add_u64(o, "length", m->length);
    json_add_u64(o, "depth", m->depth);
    json_add_bool(o, "present", data);
    json_add_bool(o, "zero", !data);
    json_add_bool(o, "data", data);
    json_add_bool(o, "compressed", m->kind == EXTENT_COMPRESSED);
    if (m->kind == EXTENT_DATA)
        json_add_u64(o, "offset", m->offset);
    if (m->filename)
        json_add_string(o, "filename", m->filename);
    json_object_array_add(out->array, o);
}

static void emit(struct map_output *out, const struct map_range *m)
{
    if (out->cli->json)
        emit_json(out, m);
    else if (!out->cli->quiet)
        emit_human(out, m);
}

/* Walk the whole image, emitting each maximal run. */
static int walk_map(struct image *img, struct map_output *out)
{
    struct extent_vec ev = { 0 };
    struct map_range cur = { .length = 0 };
    int r = 0;

    for (uint64_t off = 0; off < img->size && r == 0; off += MAP_STEP) {
        extent_vec_reset(&ev);
        qc_clear_error();
        if ((r = image_map(img, off, MIN(MAP_STEP, img->size - off), &ev)) < 0)
            break;
        for (size_t i = 0; i < ev.n; i++) {
            struct map_range m;
            map_range_from_extent(img, &ev.v[i], &m);
            if (cur.length && map_ranges_join(&cur, &m)) {
                cur.length += m.length;
                continue;
            }
            if (cur.length)
                emit(out, &cur);
            cur = m;
        }
    }
    if (r == 0 && cur.length)
        emit(out, &cur);
    extent_vec_free(&ev);
    return r < 0 ? cli_engine_fail(r) : CLI_EXIT_OK;
}

static int run_map(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct inspect_args a = { .format = IMAGE_FORMAT_AUTO };
    struct map_output out = { .cli = cli };
    struct image *img;
    int r;

    if ((r = parse_inspect(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if ((r = open_inspected(&a, &img)) != CLI_EXIT_OK)
        return r;
    if (cli->json)
        out.array = json_object_new_array();
    r = walk_map(img, &out);
    if (cli->json && r == CLI_EXIT_OK)
        r = cli_print_json(out.array);
    else if (cli->json)
        json_object_put(out.array);
    image_close(img);
    return r;
}

static const struct cli_command info_commands[] = {
    {
        .name = "info",
        .synopsis = "[-f FMT] [--key-file F] FILE",
        .summary = "show an image's format, sizes, allocation and backing chain",
        .help =
            "Options:\n"
            "  -f, --format FMT      format of FILE: qcow or raw (probed when not given)\n"
            "      --key-file F      password of an encrypted image (not needed for info)\n"
            "allocated clusters counts normal and compressed clusters of the top layer.\n",
        .run = run_info,
    },
    {
        .name = "map",
        .synopsis = "[-f FMT] FILE",
        .summary = "show where the image's data lives (like qemu-img map)",
        .help =
            "Options:\n"
            "  -f, --format FMT      format of FILE: qcow or raw (probed when not given)\n"
            "The human output lists allocated ranges (compressed ones marked); --json\n"
            "covers the whole image: start, length, depth, present, zero, data,\n"
            "compressed, offset (host offset of normal data) and filename.\n",
        .run = run_map,
    },
};

const struct cli_group cli_info_group = {
    .title = "Inspecting images",
    .commands = info_commands,
    .n_commands = ARRAY_SIZE(info_commands),
};
