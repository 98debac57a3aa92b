/* err.c — formatting of struct err messages. */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 0))) static void err_vformat(struct err *e, enum err_kind kind,
                                                              const char *fmt, va_list ap)
{
	e->kind = kind;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	/* libpq messages end in a newline; one error is one line. */
	for (char *p = e->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = (p[1] == '\0') ? '\0' : ' ';
}

int err_set(struct err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vformat(e, ERR_FATAL, fmt, ap);
	va_end(ap);
	return -1;
}

int err_setk(struct err *e, enum err_kind kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vformat(e, kind, fmt, ap);
	va_end(ap);
	return -1;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	char old[ERR_MSG_MAX];
	va_list ap;
	int n;

	memcpy(old, e->msg, sizeof old);
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	/* Truncation is fine: one line, cut at the buffer's end. */
	if (n >= 0 && (size_t)n < sizeof e->msg - 2) {
		size_t at = (size_t)n;
		size_t oldlen = strnlen(old, sizeof old - 1);

		e->msg[at++] = ':';
		e->msg[at++] = ' ';
		/* memcpy with an explicit bound, not strncpy: the cut is meant,
		 * and GCC's truncation warning (which sanitizer builds trip)
		 * cannot tell. */
		if (oldlen > sizeof e->msg - at - 1)
			oldlen = sizeof e->msg - at - 1;
		memcpy(e->msg + at, old, oldlen);
		e->msg[at + oldlen] = '\0';
	}
	if (e->kind == ERR_NONE)
		e->kind = ERR_FATAL;
	return -1;
}

void err_clear(struct err *e)
{
	e->kind = ERR_NONE;
	e->msg[0] = '\0';
}
