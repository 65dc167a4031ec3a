/* qcowctl output: the one place that prints errors (`qcowctl: <message>` on
 * stderr), human text on stdout, and JSON documents through json-c. */
#ifndef QCOWCTL_OUTPUT_H
#define QCOWCTL_OUTPUT_H

#include <json-c/json.h>
#include <stdint.h>

#include "cli.h"

#define CLI_PROGRAM "qcowctl"

/* Print "qcowctl: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cli_error(), then evaluate to CLI_EXIT_FAILURE.  A macro, so that the
 * compiler and analysers see a failure path return non-zero. */
#define cli_fail(...) (cli_error(__VA_ARGS__), CLI_EXIT_FAILURE)

/* Report an engine error (its message names the file) and return
 * CLI_EXIT_FAILURE. */
int cli_engine_fail(int err);

/* A usage error: the message and a hint at --help, then evaluate to
 * CLI_EXIT_USAGE (a macro, like cli_fail).  cmd may be NULL for the global
 * command line. */
#define cli_usage_error(cmd, ...) (cli_print_usage_error((cmd), __VA_ARGS__), CLI_EXIT_USAGE)
void cli_print_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Human text on stdout, unless --quiet or --json. */
void cli_say(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Progress and details on stderr with --verbose. */
void cli_verbose(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print a JSON document (pretty, one trailing newline) and drop the
 * reference.  Returns an exit status. */
int cli_print_json(struct json_object *doc);

/* Make sure stdout got everything; reports a write error.  Returns an exit
 * status (CLI_EXIT_OK or CLI_EXIT_FAILURE). */
int cli_finish_stdout(void);

/* "64 MiB", "1.5 GiB", "512 B" (three significant digits, binary units). */
const char *cli_human_size(uint64_t bytes, char buf[static 32]);

/* Text that came from elsewhere (a daemon, a file name) made safe for a
 * terminal: a copy with control characters shown as '?'.  Free it. */
char *cli_clean_text(const char *s);

/* A text table with aligned columns: the header row first, then the rows;
 * cells are copied (made safe with cli_clean_text).  align has one letter
 * per column, 'l' or 'r'; the last column is never padded. */
struct cli_table {
    size_t ncols, nrows, cap;   /* cap: cells allocated */
    const char *align;
    char **cells;               /* nrows * ncols; NULL after an allocation failure */
    bool failed;
};

void cli_table_init(struct cli_table *t, const char *align, const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *row);
/* Print every row with indent before it; returns an exit status (fails
 * only when memory ran out while building the table). */
int cli_table_print(struct cli_table *t, const char *indent);
void cli_table_free(struct cli_table *t);

/* json-c helpers: add a member of each type. */
void json_add_string(struct json_object *o, const char *key, const char *value);
void json_add_u64(struct json_object *o, const char *key, uint64_t value);
void json_add_bool(struct json_object *o, const char *key, bool value);

#endif
