/*
 * event.h — the change model: one row change, truncate or logical message
 * as the encoder sees it, with its position in the WAL and its transaction.
 *
 * An event borrows everything it points to (relation, tuples, message bytes)
 * from the decoder and the relmap; it lives only for the call that encodes
 * it. event/map.h builds events from decoded messages.
 */
#ifndef PGSTREAM_EVENT_H
#define PGSTREAM_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "event/relinfo.h"
#include "pg/pgoutput.h"

struct txmeta;

enum event_op {
	EVENT_INSERT,
	EVENT_UPDATE,
	EVENT_DELETE,
	EVENT_TRUNCATE,
	EVENT_MESSAGE,
	EVENT_READ, /* a row as a snapshot read it (no transaction) */
	/* --tx-events: around a transaction's events (event/txmeta.h) */
	EVENT_BEGIN,
	EVENT_COMMIT,
};

/* The transaction an event belongs to, from its BEGIN message. */
struct event_txn {
	uint32_t xid;
	uint64_t commit_lsn; /* LSN of the commit record (BEGIN's final_lsn) */
	int64_t commit_time; /* Postgres wire timestamp */
};

struct event {
	enum event_op op;
	uint64_t lsn;                   /* XLogData start of the change's message */
	const struct event_txn *txn;    /* NULL only for a non-transactional message */
	const struct relinfo *rel;      /* row changes and truncate */
	char old_kind;                  /* 'K', 'O' or 0: what oldtup holds */
	const struct pgo_tuple *oldtup; /* UPDATE/DELETE, NULL if not sent */
	const struct pgo_tuple *newtup; /* INSERT/UPDATE/READ */
	bool cascade;                   /* TRUNCATE */
	bool restart_identity;          /* TRUNCATE */
	bool transactional;             /* MESSAGE */
	const char *prefix;             /* MESSAGE, NUL-terminated */
	const uint8_t *content;         /* MESSAGE */
	uint32_t content_len;           /* MESSAGE */
	/* --tx-events: a row change's or TRUNCATE's place among its
	 * transaction's numbered events and among its table's (from 1; 0:
	 * not numbered), and a COMMIT's counts (event/txmeta.h). */
	uint64_t tx_order, tx_table_order;
	const struct txmeta *tx;
};

const char *event_op_name(enum event_op op); /* "insert", ... */

#endif
