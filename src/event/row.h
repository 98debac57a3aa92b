/*
 * row.h — a tuple as a JSON object: which columns (struct rowsel), how they
 * are laid out (struct row_style), and what is escaped once per relation.
 *
 * Both text formats build their rows here. A column whose value was not
 * sent (an unchanged TOAST value) is never shown as null: it is left out,
 * or written as the placeholder text the options name; the writer says
 * whether there was one, for the formats that list them.
 *
 * The per-relation cache (struct rowcache) holds each column's rendering,
 * its escaped '"name":' and the relation's escaped ',"schema":..,"table":..'
 * members; row_prepare() builds it in the relation's encoder slot
 * (event/relinfo.h) when its Relation message arrives. Without it, rows
 * render the same, escaping as they go.
 */
#ifndef PGSTREAM_ROW_H
#define PGSTREAM_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/relinfo.h"
#include "event/valtype.h"
#include "pg/pgoutput.h"
#include "util/buf.h"

/* What the options change in rows (json and pretty values, event keys). */
struct row_opts {
	bool pg_times;          /* --time-format postgres */
	bool numeric_strings;   /* --numeric string */
	const char *toast_text; /* --unchanged-toast placeholder: the value written
	                         * for an unchanged TOAST column; NULL: left out */
};

enum row_filter {
	ROW_ALL,     /* every column that was sent */
	ROW_KEYS,    /* replica identity columns only */
	ROW_ROUTE,   /* the columns of the event's key (struct relinfo's key) */
	ROW_CHANGED, /* columns whose text differs from the other tuple */
};

struct rowsel {
	const struct relinfo *rel;
	const struct pgo_tuple *tup;
	const struct pgo_tuple *other; /* ROW_CHANGED: the tuple compared with */
	enum row_filter filter;
	const struct row_opts *opt; /* NULL: the defaults */
};

/* A piece of punctuation with its length: row_write runs per column. */
struct lit {
	const char *s;
	size_t n;
};
#define LIT(x)                                                                                     \
	{                                                                                          \
		x, sizeof(x) - 1                                                                   \
	}

struct row_style {
	struct lit first; /* before the first member */
	struct lit sep;   /* between members */
	struct lit colon; /* between a name and its value */
	struct lit end;   /* after the last member of a non-empty row */
};

extern const struct row_style ROW_COMPACT;  /* {"id":1,"name":"a"} */
extern const struct row_style ROW_INDENTED; /* one member per line */

/* Append the row rs selects as a JSON object in style st. Returns whether
 * the tuple had an unchanged TOAST column, which the row leaves out, so that
 * the caller lists such columns only when there are any. */
bool row_write(struct buf *out, const struct rowsel *rs, const struct row_style *st);

/* Whether column i of tup (which may be NULL) is an unchanged TOAST value. */
bool row_is_toast(const struct pgo_tuple *tup, uint16_t i);

/* Append ',"schema":"..","table":".."' for rel. */
void row_relation_members(struct buf *out, const struct relation *rel);

struct rowcache {
	uint16_t ncols;
	struct valtype *vt; /* each column's rendering */
	struct {
		char *s; /* '"name":' escaped, NULL if it could not be made */
		size_t n;
	} * keys, head; /* head: row_relation_members' text */
};

/* Build ri's cache (once: a cache already there is kept), its renderings
 * as opt says (NULL: the defaults). On allocation failure there is none,
 * which only costs speed. */
void row_prepare(struct relinfo *ri, const struct row_opts *opt);

/* ri's cache, or NULL. */
const struct rowcache *row_cache(const struct relinfo *ri);

#endif
