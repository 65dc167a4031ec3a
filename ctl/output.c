#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "output.h"
#include "daemon/common/cleanup.h"
#include "daemon/common/vec.h"

static void vprint_error(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs(CLI_PROGRAM ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
}

int cli_engine_fail(int err)
{
    return cli_fail("%s", qc_error_message(err));
}

void cli_print_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "Try '" CLI_PROGRAM " %s --help' for more information.\n", cmd->name);
    else
        fputs("Try '" CLI_PROGRAM " --help' for more information.\n", stderr);
}

void cli_say(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    if (cli->quiet || cli->json)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

void cli_verbose(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    if (!cli->verbose)
        return;
    va_start(ap, fmt);
    fflush(stdout);
    fputs(CLI_PROGRAM ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_print_json(struct json_object *doc)
{
    const char *text;

    if (!doc)
        return cli_fail("out of memory building the JSON output");
    text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text)
        printf("%s\n", text);
    json_object_put(doc);
    return text ? CLI_EXIT_OK : cli_fail("out of memory printing the JSON output");
}

int cli_finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_fail("standard output: write error: %s", strerror(errno));
    return CLI_EXIT_OK;
}

const char *cli_human_size(uint64_t bytes, char buf[static 32])
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    double v = (double)bytes;
    size_t u = 0;

    /* Move up while the number would need four digits. */
    while (v >= 999.5 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, 32, "%.3g %s", v, units[u]);
    return buf;
}

void json_add_string(struct json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

void json_add_u64(struct json_object *o, const char *key, uint64_t value)
{
    json_object_object_add(o, key, json_object_new_uint64(value));
}

void json_add_bool(struct json_object *o, const char *key, bool value)
{
    json_object_object_add(o, key, json_object_new_boolean(value));
}

char *cli_clean_text(const char *s)
{
    char *copy = strdup(s ? s : "");

    if (!copy)
        return NULL;
    for (unsigned char *p = (unsigned char *)copy; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return copy;
}

void cli_table_init(struct cli_table *t, const char *align, const char *const *headers)
{
    *t = (struct cli_table){ .ncols = strlen(align), .align = align };
    cli_table_add(t, headers);
}

void cli_table_add(struct cli_table *t, const char *const *row)
{
    if (t->failed)
        return;
    if (array_reserve(t->cells, t->cap, t->nrows * t->ncols, t->ncols) < 0) {
        t->failed = true;
        return;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        char **cell = &t->cells[t->nrows * t->ncols + c];
        if (!(*cell = cli_clean_text(row[c]))) {
            while (c-- > 0)
                free(t->cells[t->nrows * t->ncols + c]);
            t->failed = true;
            return;
        }
    }
    t->nrows++;
}

int cli_table_print(struct cli_table *t, const char *indent)
{
    _cleanup_free_ size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof *width);

    if (t->failed || !width)
        return cli_fail("out of memory building a table");
    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = 0;
        for (size_t r = 0; r < t->nrows; r++) {
            size_t n = strlen(t->cells[r * t->ncols + c]);
            if (n > width[c])
                width[c] = n;
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        fputs(indent, stdout);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            bool last = c + 1 == t->ncols;
            int w = (int)width[c];
            if (t->align[c] == 'r')
                printf("%*s", w, cell);
            else
                printf("%-*s", last ? 0 : w, cell);
            if (!last)
                fputs("  ", stdout);
        }
        fputc('\n', stdout);
    }
    return CLI_EXIT_OK;
}

void cli_table_free(struct cli_table *t)
{
    for (size_t i = 0; t->cells && i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (struct cli_table){ 0 };
}
