/*
 * backfill.h — the server side of on-demand snapshots: an ordinary
 * connection that reads a table in primary-key chunks and writes the
 * watermarks around each chunk into the WAL (transactional logical
 * messages, prefix BACKFILL_WATERMARK_PREFIX), and asks the server to parse
 * the JSON of requests and watermarks (rare, and the server's parser is the
 * one that accepted them).
 *
 * The algorithm that uses them is src/backfill.c's.
 */
#ifndef PGSTREAM_PG_BACKFILL_H
#define PGSTREAM_PG_BACKFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg/pgoutput.h"
#include "pg/relcache.h"
#include "util/buf.h"
#include "util/err.h"

#define BACKFILL_REQUEST_PREFIX   "pgstream"
#define BACKFILL_WATERMARK_PREFIX "pgstream-watermark"

struct backfill_conn;

/* database_url is borrowed; the connection opens on first use. */
struct backfill_conn *backfill_conn_new(const char *database_url);
void backfill_conn_free(struct backfill_conn *bc); /* accepts NULL */
void backfill_conn_close(struct backfill_conn *bc);

/*
 * Fields of a JSON object held in content[0..len): each of names[0..n) as
 * text into fields (NUL-terminated strings one after the other, "" for a
 * field that is absent or null); a field that is an array gives its
 * elements' text, separated by "\n". -1 with *e set when the content is
 * not a JSON object or the server cannot be asked (e->kind ERR_TRANSIENT).
 */
int backfill_parse(struct backfill_conn *bc, const uint8_t *content, size_t len,
                   const char *const *names, int n, struct buf *fields, struct err *e);

/* A table as the publication sends it, with its primary key. */
struct backfill_table {
	struct relation *rel; /* owned */
	char *columns;        /* quoted published columns */
	char *from;           /* ONLY "s"."t" */
	char *filter;         /* the row filter, or NULL */
	char *order;          /* the primary key's quoted columns */
	char *types;          /* their types, NUL-separated, for the casts */
	uint16_t npk;
	uint16_t *pk; /* the key's columns, as indexes into rel->cols */
};

/*
 * Look up name ("schema.table", or "table" in public) in publication. 1
 * with *out set; 0 with *e set for a table the request cannot snapshot
 * (not published, no primary key, a key column the publication leaves
 * out); -1 on failure.
 */
int backfill_table_open(struct backfill_conn *bc, const char *publication, int server_version,
                        const char *name, struct backfill_table **out, struct err *e);
void backfill_table_free(struct backfill_table *t); /* accepts NULL */

/* The server's version (PQserverVersion), connecting first; -1 with *e
 * set when it cannot connect. */
int backfill_server_version(struct backfill_conn *bc, struct err *e);

/* Write a transactional logical message (a watermark, a request) in a
 * transaction of its own, committed; *lsn (if not NULL) is where. */
int backfill_emit(struct backfill_conn *bc, const char *prefix, const char *content, uint64_t *lsn,
                  struct err *e);

/* Rows of a chunk, owned by the connection until the next chunk is read. */
struct backfill_chunk {
	int nrows;
	uint16_t ncols;
	struct pgo_value *vals; /* nrows * ncols, row after row */
	/* The snapshot the rows were read in (pg_snapshot's fields). */
	uint64_t xmin, xmax;
	const uint64_t *xip;
	size_t nxip;
};

/* Whether the chunk's snapshot sees the transaction xid (if it committed). */
bool backfill_chunk_sees(const struct backfill_chunk *c, uint32_t xid);

/*
 * The next chunk of t: at most limit rows whose key is above after (npk
 * key values as text; NULL: from the first row), in key order, as text
 * exactly as the stream sends values, read in one REPEATABLE READ
 * transaction together with its snapshot. -1 with *e set on failure.
 */
int backfill_read_chunk(struct backfill_conn *bc, const struct backfill_table *t,
                        const char *const *after, int limit, struct backfill_chunk *c,
                        struct err *e);

#endif
