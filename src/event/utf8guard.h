/*
 * utf8guard.h — text that is not UTF-8 never changes silently.
 *
 * With client_encoding UTF8 the server hands pgstream valid UTF-8 from
 * every database encoding but one: SQL_ASCII stores bytes without an
 * encoding and converts nothing, so its names and text values may hold any
 * bytes. JSON cannot carry those bytes, and the encoder writes U+FFFD for
 * each invalid sequence. This guard runs before the encoder in a SQL_ASCII
 * database only (it costs a scan of every text value) and makes that
 * visible: under UTF8_REPLACE it logs one warning per column (and one per
 * relation for its names) and counts the values, under UTF8_FAIL it stops
 * the stream with an error naming the column, before the event is written.
 * Message content is not checked: the encoder emits content that is not
 * UTF-8 losslessly, as base64.
 */
#ifndef PGSTREAM_UTF8GUARD_H
#define PGSTREAM_UTF8GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "event/event.h"
#include "util/err.h"

enum utf8_policy {
	UTF8_REPLACE, /* write U+FFFD, warn once per column, count */
	UTF8_FAIL,    /* stop with an error naming the column */
};

/* Columns warned about are remembered up to this many; later ones are
 * counted but no longer named. */
#define UTF8GUARD_MAX_WARNED 256

struct utf8guard {
	enum utf8_policy policy;
	uint64_t values; /* values and names replaced so far */
	/* Distinct columns (or relations' names) warned about; past
	 * UTF8GUARD_MAX_WARNED it stops at UTF8GUARD_MAX_WARNED + 1, "more". */
	uint32_t columns;
	struct {
		uint32_t relid;
		int32_t attnum; /* column index, or -1 for the relation's names */
	} warned[UTF8GUARD_MAX_WARNED];
};

void utf8guard_init(struct utf8guard *g, enum utf8_policy policy);

/* Check the schema, table and column names of rel (call when its Relation
 * message arrives; lsn 0 if unknown). Returns -1 with *e set only under UTF8_FAIL. */
int utf8guard_check_relation(struct utf8guard *g, const struct relation *rel, uint64_t lsn,
                             struct err *e);

/* Check the text values (and a message's prefix) that encoding ev would
 * write. Returns -1 with *e set only under UTF8_FAIL. */
int utf8guard_check_event(struct utf8guard *g, const struct event *ev, struct err *e);

/* "replaced invalid UTF-8 in N values of M columns", or nothing when none
 * were: a line for the log at exit. */
void utf8guard_log_summary(const struct utf8guard *g);

#endif
