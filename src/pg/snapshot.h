/*
 * snapshot.h — reading the published tables' rows as of a replication
 * slot's exported snapshot, over worker connections, in chunks.
 *
 * Each worker is an ordinary connection with pgstream's session settings
 * (conn.c: the same client encoding the walsender uses, so values come out
 * as pgoutput would send them) in one REPEATABLE READ transaction that
 * imports the snapshot (SET TRANSACTION SNAPSHOT). All workers import it
 * while it is valid, in snapshot_open, before the replication connection
 * that exported it runs another command.
 *
 * What is read is what the publication sends: its tables (as
 * pg_publication_tables lists them, so partitions or their root as
 * publish_via_partition_root says), their columns (the column list of
 * PostgreSQL 15+, no generated columns before 18) and rows (the row
 * filter). Tables are split into chunks of pages (ctid ranges, which
 * PostgreSQL 14+ scans by range) that idle workers take in turn, each
 * copied with COPY ... TO STDOUT. Rows are read without blocking, so one
 * thread drives every worker from its poll loop: a reader that stops
 * taking rows (its sink is full) stops reading the sockets, and the server
 * waits; memory holds one row per worker.
 */
#ifndef PGSTREAM_SNAPSHOT_H
#define PGSTREAM_SNAPSHOT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg/pgoutput.h"
#include "pg/relcache.h"
#include "util/err.h"

#define SNAPSHOT_MAX_WORKERS 64

struct snapshot_options {
	const char *database_url; /* borrowed */
	const char *snapshot;     /* the exported snapshot's name */
	const char *publication;
	int server_version;
	int workers;          /* connections, >= 1 */
	uint32_t chunk_pages; /* 0: chosen from each table's size */
};

/* One published table and how far its copy has come. */
struct snapshot_table {
	const struct relation *rel; /* as pgoutput's Relation message would describe it */
	int64_t rows_estimated;     /* -1: unknown (never analyzed) */
	int64_t rows_done;
	uint32_t chunks;
	uint32_t chunks_done;
	bool whole; /* read by one COPY of the table itself */
};

struct snapshot_reader;

/* Connect the workers, import the snapshot in each, list the tables in it
 * and plan the chunks. NULL with *e set on failure. */
struct snapshot_reader *snapshot_open(const struct snapshot_options *o, struct err *e);
void snapshot_close(struct snapshot_reader *r); /* accepts NULL */

size_t snapshot_ntables(const struct snapshot_reader *r);
const struct snapshot_table *snapshot_table(const struct snapshot_reader *r, size_t i);

enum snapshot_step {
	SNAPSHOT_WAIT = 0, /* nothing buffered: poll snapshot_pollfds, then snapshot_input */
	SNAPSHOT_ROW = 1,  /* *table and *tup are the next row */
	SNAPSHOT_DONE = 2, /* every chunk copied */
};

/* The next row: its table's index and its values, which stay valid until
 * the next call. -1 with *e set on failure (e->kind ERR_TRANSIENT for a
 * lost connection). */
int snapshot_next(struct snapshot_reader *r, size_t *table, struct pgo_tuple *tup, struct err *e);

/* The sockets of the workers waiting for data, into fds (room for max);
 * returns their number. */
int snapshot_pollfds(const struct snapshot_reader *r, struct pollfd *fds, int max);

/* Read what arrived on the sockets poll found readable. -1 with *e set
 * when a connection failed. */
int snapshot_input(struct snapshot_reader *r, const struct pollfd *fds, int n, struct err *e);

#endif
