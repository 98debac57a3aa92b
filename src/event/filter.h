/*
 * filter.h — which events and columns reach the encoders:
 * --include-tables, --exclude-tables, --exclude-columns, --mask-columns.
 *
 * Every format and sink sees events through it, and the decisions are
 * made once per relation, when its Relation message arrives: an excluded
 * table is marked in its struct relinfo (its events are dropped, its
 * transactions still acknowledged like any other's), and a table with
 * excluded or masked columns gets a view of itself (relinfo's view: the
 * relation minus the excluded columns, masked columns typed text) that
 * relinfo's remote then points to, so the encoders, the event key and the
 * UTF-8 guard work on the view as on any relation. Per event, only a table
 * with a view costs anything: its tuples are projected onto the view, into
 * the filter's scratch (grown when a relation needs more, never per event),
 * and each masked value is replaced by HMAC-SHA-256(secret, value) in hex.
 *
 * Patterns are globs (fnmatch: * ? [..]) matched against "schema.table"
 * and "schema.table.column", names as the catalog stores them
 * (case-sensitive), in comma-separated lists.
 */
#ifndef PGSTREAM_FILTER_H
#define PGSTREAM_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "event/event.h"
#include "event/relinfo.h"
#include "pg/pgoutput.h"
#include "util/err.h"
#include "util/hmac.h"

/* The options, as given (NULL: not given); borrowed by filter_init only. */
struct filter_config {
	const char *include_tables;
	const char *exclude_tables;
	const char *exclude_columns;
	const char *mask_columns;
	const char *mask_secret; /* the HMAC key; needed by mask_columns */
	bool allow_key;          /* key columns may be excluded or masked */
};

/* One option's patterns. */
struct filter_list {
	const char *option; /* "--include-tables", ... */
	char **pat;
	size_t n;
};

struct filter {
	struct filter_list include, exclude, drop, mask;
	bool allow_key;
	struct hmac_key key;
	/* Scratch for one event's projected tuples: cap columns each, and
	 * 64 hex digits per column for the old and the new tuple. */
	uint16_t cap;
	struct pgo_value *oldcols, *newcols;
	char *oldhex, *newhex;
	struct pgo_tuple oldtup, newtup;
};

/* Parse c into f. -1 with a one-line message for a malformed pattern, or
 * masking without a secret. filter_reset frees what it made. */
int filter_init(struct filter *f, const struct filter_config *c, struct err *e);
void filter_reset(struct filter *f);

/* Whether any column is excluded or masked by some pattern (the daemon
 * then looks up the primary key of REPLICA IDENTITY FULL tables: their
 * key columns are the filter's business too). */
bool filter_has_columns(const struct filter *f);

/* The table decision for ri, made when its Relation message arrived:
 * sets and returns ri->excluded. */
bool filter_table(struct filter *f, struct relinfo *ri);

/*
 * The column decisions for ri (not excluded), after its types and key are
 * known (relinfo.h): build its view when a column is excluded or masked.
 * A key column (the replica identity's, or the primary key that keys a
 * REPLICA IDENTITY FULL table's records) excluded or masked is refused
 * unless allow_key: -1 with the message. -1 also when out of memory.
 */
int filter_columns(struct filter *f, struct relinfo *ri, struct err *e);

/* ev as the encoders see it: false if it is dropped (an excluded table's),
 * else its tuples projected onto its relation's view, if any (borrowing
 * the filter's scratch until the next call). Logical messages pass. */
bool filter_event(struct filter *f, struct event *ev);

/* Log a warning for each pattern that matches none of the publication's
 * tables (tables: "schema.table" strings, each NUL-terminated, in tlen
 * bytes) or, for column patterns, none of their columns (columns:
 * "schema.table.column" strings, likewise). Returns how many warned. */
int filter_warn_unmatched(const struct filter *f, const char *tables, size_t tlen,
                          const char *columns, size_t clen);

#endif
