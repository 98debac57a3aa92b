/*
 * pubtable.h — what a publication sends of its tables, asked of the catalog
 * over an ordinary connection (pg/conn_int.h), in the caller's transaction:
 * inside an imported snapshot the answer is as of that snapshot.
 *
 * For each table: the relation as pgoutput's Relation message would
 * describe it (the columns of a column list, PostgreSQL 15+, or every
 * column but generated ones; the replica identity's columns flagged as
 * the key, every column under FULL), the row filter, and the SQL pieces
 * that read exactly those columns and rows. Shared by the initial snapshot
 * (pg/snapshot.c) and on-demand snapshots (pg/backfill.c), so both read
 * what the stream sends.
 */
#ifndef PGSTREAM_PUBTABLE_H
#define PGSTREAM_PUBTABLE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pg/relcache.h"
#include "util/err.h"

struct pubtable {
	struct relation *rel;   /* owned */
	char relkind;           /* 'r' a table, 'p' a partitioned root */
	uint32_t pages;         /* from the files (a root: its largest partition) */
	int64_t rows_estimated; /* pg_class.reltuples; -1: never analyzed */
	char *filter;           /* the row filter, or NULL */
	char *columns;          /* "c1", "c2": the published columns, quoted */
	char *from;             /* ONLY "s"."t" (a root: without ONLY) */
};

/*
 * The tables of publication, ordered by schema and name; only the one named
 * schema.table when only_table is set (*n is then 0 if the publication does
 * not have it). *out is NULL when *n is 0. -1 with *e set on failure.
 */
int pubtable_list(PGconn *pg, const char *publication, int server_version, const char *only_schema,
                  const char *only_table, struct pubtable **out, size_t *n, struct err *e);

void pubtable_free(struct pubtable *t, size_t n); /* accepts NULL */

#endif
