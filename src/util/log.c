/*
 * log.c — stderr logger, as text lines or JSON objects; the level, the
 * format and the slot named in every JSON line are the only process-wide
 * state, set once at startup before any other thread runs.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_TEXT;
static char context_slot[64];

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error", "quiet"};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

void log_set_format(enum log_format format, const char *slot)
{
	current_format = format;
	snprintf(context_slot, sizeof context_slot, "%s", slot ? slot : "");
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < (int)(sizeof LEVEL_NAMES / sizeof LEVEL_NAMES[0]); i++)
		if (strcmp(s, LEVEL_NAMES[i]) == 0)
			return i;
	return -1;
}

int log_format_parse(const char *s)
{
	if (strcmp(s, "text") == 0)
		return LOG_TEXT;
	if (strcmp(s, "json") == 0)
		return LOG_JSON;
	return -1;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, min = 0x80, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, min = 0x800, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, min = 0x10000, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* s as a JSON string into out (size cap, always terminated): quotes,
 * backslashes and control characters escaped, bytes that are not UTF-8
 * (a quoted value typed by the user) as U+FFFD, so the line always parses. */
static size_t json_string(char *out, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;

	out[o++] = '"';
	while (*p && o + 8 < cap) {
		size_t len = utf8_len(p, n - (size_t)(p - (const unsigned char *)s));

		if (len == 0) {
			o += (size_t)snprintf(out + o, cap - o, "\\ufffd");
			p++;
		} else if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = (char)*p++;
		} else if (*p < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *p);
			p++;
		} else {
			memcpy(out + o, p, len);
			o += len;
			p += len;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

static void write_json(enum log_level level, const char *msg)
{
	char line[3 * 1024 + 256], when[40];
	struct timespec ts;
	struct tm tm;
	size_t o;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	o = (size_t)snprintf(line, sizeof line,
	                     "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when,
	                     ts.tv_nsec / 1000000, LEVEL_NAMES[level]);
	o += json_string(line + o, sizeof line - o - 64 - sizeof context_slot * 6, msg);
	o += (size_t)snprintf(line + o, sizeof line - o, ",\"fields\":{\"slot\":");
	o += json_string(line + o, sizeof line - o - 4, context_slot);
	snprintf(line + o, sizeof line - o, "}}");
	/* One write per line so concurrent writers never interleave mid-line. */
	fprintf(stderr, "%s\n", line);
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const prefix[] = {"debug: ", "", "warning: ", "error: ", ""};
	char line[1024];

	vsnprintf(line, sizeof line, fmt, ap);
	if (current_format == LOG_JSON)
		write_json(level, line);
	else
		fprintf(stderr, "%s%s\n", prefix[level], line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < current_level)
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *msg)
{
	if (current_format == LOG_JSON)
		write_json(LOG_ERROR, msg);
	else
		fprintf(stderr, "pgstream: %s\n", msg);
}
