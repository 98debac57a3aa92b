/*
 * log.h — lifecycle lines on stderr, never on stdout (which carries events).
 *
 * Lines are plain: "connecting to postgres...", or with --log-format json
 * one object per line: {"time":"...Z","level":"info","msg":"connecting to
 * postgres...","fields":{"slot":"pgstream_slot"}}. Levels filter; the
 * default shows info and above. Callers never pass row data or passwords
 * here.
 */
#ifndef PGSTREAM_LOG_H
#define PGSTREAM_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_QUIET };
enum log_format { LOG_TEXT = 0, LOG_JSON };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* The format, and the slot every JSON line names (copied). */
void log_set_format(enum log_format format, const char *slot);
/* Parse "text|json"; -1 if unknown. */
int log_format_parse(const char *s);
/* Parse "debug|info|warn|error|quiet"; -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The error pgstream exits with, whatever the level: "pgstream: msg", or
 * a JSON line of level error. */
void log_fatal(const char *msg);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
