/*
 * daemon_int.h — the daemon's state and the steps its files share; nothing
 * outside the daemon includes it. daemon.c owns the loop, the sessions
 * and the reconnect policy; daemon_emit.c hands events to the sink;
 * daemon_relations.c resolves a relation's types and keys with the
 * catalog; daemon_snapshot.c runs the initial snapshot. They call each
 * other one way: daemon.c the others, daemon_snapshot.c the two below it.
 */
#ifndef PGSTREAM_DAEMON_INT_H
#define PGSTREAM_DAEMON_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "config.h"
#include "spool.h"
#include "event/encoder.h"
#include "event/filter.h"
#include "event/txmeta.h"
#include "event/utf8guard.h"
#include "ops/metrics.h"
#include "pg/conn.h"
#include "util/buf.h"
#include "util/err.h"

struct backfill;
struct catalog;
struct ops_http;
struct pg_conn;
struct pgo_decoder;
struct relation;
struct relmap;
struct sink;

struct daemon {
	const struct config *cfg;
	struct conn_params params;
	volatile sig_atomic_t *stop;
	struct encoder *enc;
	struct filter filter; /* what of the events is emitted */
	char dbname[64];      /* the encoder's options.database, filled on connecting */

	struct sink *sink;
	struct catalog *cat;
	struct backfill *bf; /* on-demand snapshots */
	struct checkpoint cp;
	uint64_t seq;             /* number of the last event handed to the sink */
	uint64_t written_lsn;     /* highest WAL position processed */
	uint64_t reported_flush;  /* last flush LSN sent to the server */
	struct utf8guard utf8;    /* SQL_ASCII databases only (utf8guard.h) */
	struct buf converted;     /* message content converted to UTF-8 */
	bool records;             /* the sink routes by table and key (Kafka) */
	bool keys;                /* ... and reads the keys (not the webhook, files) */
	struct buf key, old_key;  /* ... the current event's keys */
	struct row_opts key_opts; /* ... rendered as the events' values */

	/* Per session. */
	struct pg_conn *conn;
	struct pgo_decoder *dec;
	struct relmap *rels;   /* what we derive from the decoder's relations */
	char encoding[32];     /* the database's, as the server names it */
	bool sql_ascii;        /* ... and it is SQL_ASCII (utf8guard.h) */
	bool convert_messages; /* ... neither that nor UTF8: message content is converted */
	bool in_txn;
	struct event_txn txn;
	/* --tx-events: the transaction's BEGIN position, whether its begin
	 * event is out (sent before its first event, so a transaction of which
	 * nothing is emitted has neither), and its counts. */
	uint64_t txn_begin_lsn;
	bool txn_opened;
	struct txmeta txmeta;
	uint64_t txn_events;    /* events of the open transaction so far */
	uint64_t reads_emitted; /* a snapshot's rows so far (their index) */
	bool reached_end;
	bool reply_now;
	/* Streamed transactions not yet committed or aborted (--streaming). */
	struct spool_set spools;
	int64_t next_status_ms;
	int64_t last_recv_ms; /* when the server was last heard from */

	bool ever_streamed;       /* some session reached START_REPLICATION */
	bool session_streamed;    /* the last session did */
	bool session_snapshotted; /* the slot was made from our snapshot */
	bool waiting_for_slot;    /* retrying a busy slot: said once, not per try */

	struct metrics metrics; /* what --metrics-addr serves (ops/metrics.h) */
	struct ops_http *http;  /* NULL without --metrics-addr */
	int64_t next_slot_check_ms;
	int64_t next_heartbeat_ms;     /* --heartbeat-interval */
	bool heartbeat_failing;        /* ... warned about, until one works */
	int64_t snapshot_published_ms; /* the snapshot's progress, to the metrics */
};

/* daemon_emit.c: ev through the filter, numbered, encoded into the sink's
 * buffer and handed over (a dropped event gets no number; with
 * --tx-events its transaction's begin event goes first). */
int daemon_emit(struct daemon *d, struct event *ev, struct err *e);

/* daemon_emit.c: with --tx-events, the transaction's commit event at lsn,
 * if its begin event went out (a transaction of which nothing was emitted
 * has neither). */
int daemon_emit_commit(struct daemon *d, uint64_t lsn, struct err *e);

/* daemon_emit.c: the sink's buffer written out (made durable if durable:
 * fsync, delivery reports), and what the sink confirmed taken into the
 * checkpoint. */
int daemon_confirm(struct daemon *d, bool durable, struct err *e);

/* daemon_relations.c: rel's relinfo in map, with the catalog's base types
 * and keys. */
struct relinfo *daemon_refine_relation(struct daemon *d, struct relmap *map,
                                       const struct relation *rel, uint64_t lsn, struct err *e);

/* daemon_snapshot.c: the rows of every published table as of the new
 * slot's snapshot, as read events; returns once the sink confirmed them
 * all, 1 if stopped first. */
int daemon_initial_snapshot(struct daemon *d, const struct conn_info *info, struct err *e);

#endif
