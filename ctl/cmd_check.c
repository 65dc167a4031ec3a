/* qcowctl check: consistency check (and repair) of a qcow image.  The
 * format logic is in daemon/image/qcow_check.c; this is the presentation
 * and the exit status. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "error.h"
#include "output.h"
#include "qcow_check.h"
#include "util.h"

struct check_args {
    const char *path;
    bool repair;
};

static const struct option check_options[] = {
    { "repair", no_argument, NULL, 'r' },
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

static int parse_check(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                       struct check_args *a)
{
    int opt, r;

    cli_begin_options();
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "r", check_options, NULL)) != -1) {
        if (opt == 'r') {
            a->repair = true;
            continue;
        }
        if ((r = cli_common_option(cli, cmd, opt, argv)) != CLI_CONTINUE)
            return r;
    }
    if ((r = cli_operands(cmd, argc, 1, 1)) != CLI_CONTINUE)
        return r;
    a->path = argv[optind];
    return CLI_CONTINUE;
}

static int check_status(const struct qcow_check_report *rep)
{
    if (rep->corruptions)
        return CLI_EXIT_CORRUPT;
    if (rep->leaks)
        return CLI_EXIT_LEAKS;
    return CLI_EXIT_OK;
}

static void print_problem(const char *path, const struct qcow_problem *p)
{
    if (p->repaired)
        printf("Repaired: %s: %s (%s)\n", path, p->message, p->remedy ? p->remedy : "fixed");
    else if (p->corruption)
        printf("ERROR: %s: %s\n", path, p->message);
    else
        printf("Leaked: %s: %s\n", path, p->message);
}

static void print_summary(const struct qcow_check_report *rep)
{
    if (rep->repairs)
        printf("%" PRIu64 " problem%s repaired.\n", rep->repairs, rep->repairs == 1 ? "" : "s");
    if (!rep->corruptions && !rep->leaks) {
        printf("No errors were found on the image.\n");
        return;
    }
    if (rep->corruptions)
        printf("%" PRIu64 " error%s found on the image.\n"
               "Data may be corrupted, or further writes to the image may corrupt it.\n",
               rep->corruptions, rep->corruptions == 1 ? " was" : "s were");
    if (rep->leaks)
        printf("%" PRIu64 " leaked cluster%s (%" PRIu64 " bytes) %s found on the image.\n"
               "This means waste of disk space, but no harm to data.\n",
               rep->leaks, rep->leaks == 1 ? "" : "s", rep->leaked_bytes,
               rep->leaks == 1 ? "was" : "were");
}

static void print_check_human(const struct cli *cli, const char *path,
                              const struct qcow_check_report *rep)
{
    for (size_t k = 0; k < rep->n_problems; k++)
        print_problem(path, &rep->problems[k]);
    if (rep->problems_dropped)
        printf("(%" PRIu64 " more problems not listed)\n", rep->problems_dropped);
    print_summary(rep);
    if (cli->verbose)
        printf("%" PRIu64 " L2 tables, %" PRIu64 " clusters, %" PRIu64 " of them compressed; "
               "file size %" PRIu64 " bytes.\n", rep->l2_tables,
               rep->data_clusters + rep->compressed_clusters, rep->compressed_clusters,
               rep->file_size);
}

static const char *table_name(enum qcow_problem_table t)
{
    return t == QCOW_TABLE_L1 ? "l1" : "l2";
}

static struct json_object *problem_json(const struct qcow_problem *p)
{
    struct json_object *o = json_object_new_object();

    json_add_string(o, "kind", qcow_problem_kind_name(p->kind));
    json_add_string(o, "message", p->message);
    json_add_bool(o, "corruption", p->corruption);
    json_add_bool(o, "repaired", p->repaired);
    if (p->remedy)
        json_add_string(o, "remedy", p->remedy);
    json_add_u64(o, "host-offset", p->host_off);
    json_add_u64(o, "length", p->length);
    if (p->table != QCOW_TABLE_NONE) {
        json_add_string(o, "table", table_name(p->table));
        json_add_u64(o, "guest-offset", p->guest_off);
        json_add_u64(o, "entry-offset", p->entry_pos);
    }
    return o;
}

static int print_check_json(const char *path, const struct qcow_check_report *rep)
{
    struct json_object *doc = json_object_new_object();
    struct json_object *problems = json_object_new_array();

    for (size_t k = 0; k < rep->n_problems; k++)
        json_object_array_add(problems, problem_json(&rep->problems[k]));
    json_add_string(doc, "filename", path);
    json_add_u64(doc, "corruptions", rep->corruptions);
    json_add_u64(doc, "leaks", rep->leaks);
    json_add_u64(doc, "leaked-bytes", rep->leaked_bytes);
    json_object_object_add(doc, "problems", problems);
    json_add_u64(doc, "problems-not-listed", rep->problems_dropped);
    json_add_bool(doc, "repaired", rep->repaired);
    json_add_u64(doc, "repairs", rep->repairs);
    json_add_u64(doc, "l2-tables", rep->l2_tables);
    json_add_u64(doc, "allocated-clusters", rep->data_clusters + rep->compressed_clusters);
    json_add_u64(doc, "compressed-clusters", rep->compressed_clusters);
    json_add_u64(doc, "image-end-offset", rep->file_size);
    return cli_print_json(doc);
}

static int run_check(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    struct check_args a = { 0 };
    struct qcow_check_report rep;
    int r;

    if ((r = parse_check(cli, cmd, argc, argv, &a)) != CLI_CONTINUE)
        return r;
    if ((r = qcow_check(a.path, a.repair, &rep)) < 0) {
        /* Repairs done before the failure are still worth knowing about. */
        for (size_t k = 0; k < rep.n_problems && !cli->quiet; k++)
            if (rep.problems[k].repaired)
                print_problem(a.path, &rep.problems[k]);
        qcow_check_report_free(&rep);
        return cli_engine_fail(r);
    }
    if (cli->json)
        r = print_check_json(a.path, &rep);
    else if (!cli->quiet)
        print_check_human(cli, a.path, &rep);
    if (r == CLI_EXIT_OK)
        r = check_status(&rep);
    qcow_check_report_free(&rep);
    return r;
}

static const struct cli_command check_commands[] = {
    {
        .name = "check",
        .synopsis = "[-r|--repair] FILE",
        .summary = "check a qcow image for corruption and leaks, and repair it",
        .help =
            "Options:\n"
            "  -r, --repair          clear entries that point past the end of the file,\n"
            "                        misaligned, into metadata or into another cluster, or\n"
            "                        at compressed data that does not inflate (the data\n"
            "                        they pointed to is lost); put the Xen header right\n"
            "                        (never making blktap trust more than the image holds);\n"
            "                        punch holes in leaked clusters and cut off a leaked\n"
            "                        tail (the file system gets the space back); then\n"
            "                        check again\n"
            "A leak is unreferenced space that holds data: holes are not leaks.\n"
            "Exit status:\n"
            "  0  the image is clean\n"
            "  1  the check could not run (cannot open, not a qcow image, bad header)\n"
            "  2  usage error\n"
            "  3  corruption found (and not repaired)\n"
            "  4  only leaks found (not repaired)\n",
        .run = run_check,
    },
};

const struct cli_group cli_check_group = {
    .title = "Checking images",
    .commands = check_commands,
    .n_commands = ARRAY_SIZE(check_commands),
};
