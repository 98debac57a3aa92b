/*
 * err.h — the caller-owned error record every fallible function fills.
 *
 * A function that can fail returns int (0 ok, -1 failed) and writes one line
 * "could not <verb> <object>: <cause>" into a struct err the caller owns.
 * No globals, no errno games: the message travels with the call.
 */
#ifndef PGSTREAM_ERR_H
#define PGSTREAM_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 512

/* What went wrong, coarsely: lets the daemon decide between retry and exit. */
enum err_kind {
	ERR_NONE = 0,
	ERR_FATAL,     /* configuration or server state the user must fix */
	ERR_TRANSIENT, /* connection lost, server restarting: retry with backoff */
	ERR_BUSY,      /* the slot is held by another walsender: may be released soon */
	ERR_SINK,      /* the sink refused or failed a write */
	ERR_REPLAY,    /* the sink dropped what it had not confirmed (an aborted Kafka
	                * transaction): stream again from the last confirmed event */
};

struct err {
	enum err_kind kind;
	char msg[ERR_MSG_MAX];
};

/* Format msg with kind ERR_FATAL; returns -1 so callers can `return err_set(...)`. */
int err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with an explicit kind. */
int err_setk(struct err *e, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "could not X: <old message>". */
int err_wrap(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);

#endif
