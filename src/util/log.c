/* log.c — stderr logger; the level is the only process-wide state. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level current_level = LOG_INFO;

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

int log_level_parse(const char *s)
{
	static const char *const names[] = {"debug", "info", "warn", "error", "quiet"};

	for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = {"debug: ", "", "warning: ", "error: ", ""};
	char line[1024];
	va_list ap;

	if (level < current_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One write per line so concurrent writers never interleave mid-line. */
	fprintf(stderr, "%s%s\n", prefix[level], line);
}
