/* Logging with levels to stderr (journald picks it up under systemd).
 * Lines look like "qcowd[1234]: warning: disk.qcow: message". */
#ifndef QCOWD_LOG_H
#define QCOWD_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_init(const char *program);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warning", "info", "debug" → level; -1 if unknown. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
