/*
 * backfill.h — on-demand snapshots while streaming: the watermark algorithm
 * of Netflix's DBLog (Andreakis and Papapanagiotou, 2020), as Debezium's
 * incremental snapshots use it.
 *
 * A request is a logical message with prefix "pgstream" and content
 * {"snapshot":["schema.table",...]} (optionally "slot":"name": only the
 * pgstream on that slot takes it), so it is ordered in the WAL like any
 * change. Each requested table is then read in primary-key chunks. Around
 * each chunk's SELECT a low and a high watermark are written into the WAL
 * (pg/backfill.h). From the chunk's read until the stream reaches the high
 * watermark, a change to a key of the chunk removes that key's row from the
 * chunk: the change is as new as the row or newer. At the high watermark the
 * rows left are emitted as read events, in the high watermark's
 * transaction: after every change before it, before every change after it.
 * A chunk whose snapshot misses a transaction the stream has passed (one
 * that committed but is not visible yet) is read again.
 *
 * Progress lives in the WAL: every watermark carries the table, the key the
 * chunk starts after and the tables still queued. After a restart (or a
 * reconnect) the stream replays from the last acknowledged position and
 * meets a watermark of the interrupted snapshot before anything else of it
 * (the next chunk's low watermark is written before the previous chunk's
 * end can be acknowledged); pgstream takes the snapshot over from that
 * chunk. A chunk may so be read twice; none is skipped.
 */
#ifndef PGSTREAM_BACKFILL_H
#define PGSTREAM_BACKFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "event/relinfo.h"
#include "pg/pgoutput.h"
#include "util/err.h"

struct backfill_config {
	const char *database_url; /* borrowed, as the rest */
	const char *publication;
	const char *slot;
	int chunk_rows;
	/* The daemon's: a relinfo in map for rel, ready for the encoder. */
	struct relinfo *(*prepare)(void *ctx, struct relmap *map, const struct relation *rel,
	                           struct err *e);
	void *ctx;
};

struct backfill;

struct backfill *backfill_new(const struct backfill_config *cfg); /* NULL: out of memory */
void backfill_free(struct backfill *bf);                          /* accepts NULL */

/* A replication session starts (server_version for the catalog queries)
 * or ends: a chunk in flight is forgotten, to be taken over again from
 * the watermarks the next session replays. */
void backfill_session_start(struct backfill *bf, int server_version);
void backfill_session_end(struct backfill *bf);

/* The stream passed the commit of transaction xid. */
void backfill_on_commit(struct backfill *bf, uint32_t xid);

enum backfill_verdict {
	BACKFILL_PASS,     /* not pgstream's bookkeeping: emit it as a message */
	BACKFILL_CONSUMED, /* a watermark: nothing to emit */
	BACKFILL_EMIT,     /* this chunk's high watermark: emit its rows (backfill_next_row) */
};

/* A logical message in the stream. A bad request is one warning and
 * BACKFILL_PASS; -1 with *e set only when the server could not be asked
 * (ERR_TRANSIENT: reconnect). */
int backfill_on_message(struct backfill *bf, const char *prefix, const uint8_t *content,
                        uint32_t len, uint64_t lsn, struct err *e);

/* A row change in the stream, before it is emitted: between the watermarks
 * it takes its key's row out of the chunk. */
void backfill_on_change(struct backfill *bf, const struct event *ev);

/* After BACKFILL_EMIT: the chunk's rows, one per call, until false. */
bool backfill_next_row(struct backfill *bf, const struct relinfo **ri, struct pgo_tuple *tup);

/* The chunk is emitted: start the next one (or the next table). */
int backfill_chunk_done(struct backfill *bf, struct err *e);

/* The request `pgstream snapshot --table ...` sends: tables is a list of
 * names separated by ',' or newlines. Prints where it was written. */
int backfill_request(const char *database_url, const char *slot, const char *tables, struct err *e);

#endif
