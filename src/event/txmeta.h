/*
 * txmeta.h — --tx-events: what a transaction's begin and commit events
 * say, and each change's place in its transaction (Debezium's transaction
 * metadata: total_order, data_collection_order, event_count and
 * data_collections).
 *
 * The numbered events are a transaction's row changes and TRUNCATEs as
 * they are emitted (after the filter, event/filter.h); logical messages
 * are not numbered, as Debezium counts only data change events. Tables
 * are told apart by OID and named as they were at their first event in
 * the transaction. Storage grows with the number of tables a transaction
 * touches and is kept for the next: no allocation per event.
 */
#ifndef PGSTREAM_TXMETA_H
#define PGSTREAM_TXMETA_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct event;

struct txmeta_table {
	uint32_t oid;
	uint64_t count; /* its numbered events so far */
	size_t name;    /* offset of "schema.table" in names */
};

struct txmeta {
	uint64_t count; /* numbered events so far */
	struct txmeta_table *tables;
	size_t n, cap;
	struct buf names; /* "schema.table\0" each */
	size_t last;      /* the table of the last event: most follow it */
};

void txmeta_init(struct txmeta *t);
void txmeta_reset(struct txmeta *t); /* frees the storage */

/* A transaction's first event is about to be emitted: count from zero. */
void txmeta_begin(struct txmeta *t);

/* Number ev (a row change or TRUNCATE of the current transaction): set its
 * tx_order and tx_table_order. -1 when out of memory. */
int txmeta_number(struct txmeta *t, struct event *ev);

/* The transaction's i-th table (i < t->n), in the order first seen. */
static inline const char *txmeta_table_name(const struct txmeta *t, size_t i)
{
	return t->names.data + t->tables[i].name;
}

#endif
