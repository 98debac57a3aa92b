/*
 * metrics.h — what pgstream tells an operator about itself: counters,
 * positions and state that the stream loop keeps, and their Prometheus text
 * and health verdict for the HTTP thread (ops/http.h).
 *
 * Two threads, one rule: the HTTP side never slows the stream. The stream
 * loop owns the live figures and updates plain fields on its hot path (an
 * increment per event, no atomics, no lock). About once a second, at every
 * status update and at every change of state it copies them into a
 * published snapshot under a mutex (metrics_tick, metrics_state); the HTTP
 * thread reads only that snapshot, under the same mutex, copies what it
 * needs and renders after unlocking. So a scrape costs the stream at most
 * one short wait for a lock it takes once a second, and never sees half an
 * update. Figures are at most a second old.
 *
 * The module knows nothing of Postgres types or events: the daemon passes
 * OIDs, names, numbers and an operation index (enum metrics_op, in the
 * order of event/event.h's enum event_op; daemon.c asserts it).
 */
#ifndef PGSTREAM_METRICS_H
#define PGSTREAM_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/oidmap.h"

/* A snapshot's rows count as "read": their count per table is its progress. */
enum metrics_op {
	METRICS_INSERT,
	METRICS_UPDATE,
	METRICS_DELETE,
	METRICS_TRUNCATE,
	METRICS_READ,
	METRICS_NOPS
};
/* metrics_event's op for a logical message, and for what is neither a
 * change nor a message (--tx-events' boundaries): its bytes only. */
#define METRICS_MESSAGE    METRICS_NOPS
#define METRICS_BYTES_ONLY (METRICS_NOPS + 1)

/* What the stream loop is doing; only STREAMING and SNAPSHOT can be healthy. */
enum metrics_state {
	METRICS_STARTING,
	METRICS_CONNECTING,
	METRICS_STREAMING,
	METRICS_SINK_BLOCKED,
	METRICS_RECONNECTING,
	METRICS_STOPPING,
	METRICS_SNAPSHOT, /* the initial snapshot: alive (/livez), not yet healthy */
	METRICS_NSTATES,
};

/* Sink flush durations: bucket upper bounds in microseconds. */
#define METRICS_FLUSH_BUCKETS 14

/* One table's counts. Names are set once and never change (a renamed
 * table gets a new entry), so the snapshot may borrow them. */
struct metrics_table {
	char *schema;
	char *name;
	uint64_t events[METRICS_NOPS];
	double rate;        /* events per second over the last sample interval */
	uint64_t rate_base; /* ... its event count at the start of it */
	/* The initial snapshot's progress (in_snapshot: one of its tables);
	 * its rows read are events[METRICS_READ]. */
	bool in_snapshot;
	bool snapshot_done;
	int64_t rows_estimated; /* -1: unknown (never analyzed); once done, rows read */
};

/* The status page's history: one sample a second for an hour, and the
 * last errors (only with the HTTP endpoint: metrics_keep_history). */
#define METRICS_HISTORY 3600
#define METRICS_ERRORS  10
struct metrics_sample {
	double t; /* Unix time */
	double lag_seconds;
	uint64_t lag_bytes;
	double events_per_s;
};
struct metrics_error_entry {
	double t;
	char msg[ERR_MSG_MAX];
};

/* Everything copied at a publish, besides the tables. */
struct metrics_figures {
	uint64_t messages;     /* logical messages emitted */
	uint64_t transactions; /* transactions whose end was reached */
	uint64_t bytes_out;    /* encoded event bytes handed to the sink */
	uint64_t
	    received_lsn;     /* highest position the server sent (XLogData start, keepalive end) */
	uint64_t server_lsn;  /* the server's WAL end: the most its frames or the catalog said */
	uint64_t written_lsn; /* highest position processed */
	uint64_t flushed_lsn; /* durable in the sink: may be acknowledged */
	uint64_t acked_lsn;   /* last flush position sent to the server */
	double lag_seconds;   /* commit to emit, last transaction; 0 once caught up */
	uint64_t reconnects;
	uint64_t errors[5]; /* by enum err_kind, ERR_NONE unused */
	uint64_t flush_bucket[METRICS_FLUSH_BUCKETS + 1];
	uint64_t flush_count;
	uint64_t flush_sum_us;
	bool slot_known;              /* the catalog answered: */
	uint64_t slot_retained_bytes; /* WAL end - restart_lsn */
	uint64_t slot_lag_bytes;      /* WAL end - confirmed_flush_lsn */
	double slot_checked_at;       /* Unix time of that answer */
	bool slot_active;
	enum metrics_state state;
	int64_t state_since_ms;   /* clock_ms() */
	int64_t ack_moved_ms;     /* last time acknowledgement moved, or nothing was pending */
	int64_t published_ms;     /* when this snapshot was taken */
	char reason[ERR_MSG_MAX]; /* why the state is not STREAMING, or the last error */
	char last_error[ERR_MSG_MAX];
};

struct metrics_pub {
	pthread_mutex_t mu;
	struct metrics_figures f;
	struct metrics_table *tables; /* values copied; names borrowed from the live side */
	size_t ntables, cap;
	struct metrics_sample *history; /* ring of METRICS_HISTORY, NULL: not kept */
	size_t hist_head, hist_count;   /* oldest sample, how many */
	struct metrics_error_entry errors[METRICS_ERRORS]; /* ring */
	size_t nerrors;                                    /* ever recorded */
};

struct metrics {
	/* Stream loop's side. */
	struct metrics_figures f;
	struct metrics_table **tables; /* owned, in order of first appearance */
	size_t ntables, cap;
	struct oidmap by_oid; /* relation OID -> struct metrics_table */
	int64_t next_publish_ms;
	int64_t next_sample_ms; /* history: one sample a second */
	int64_t last_sample_ms;
	uint64_t last_sample_events;
	/* Settings. */
	int status_interval_ms;
	const char *slot, *publication; /* borrowed */
	double start_time;              /* Unix time */
	/* The HTTP thread's side. */
	struct metrics_pub pub;
};

/* slot and publication are borrowed for the metrics' lifetime. -1 on
 * failure (a mutex), with *e set. */
int metrics_init(struct metrics *m, const char *slot, const char *publication,
                 int status_interval_ms, struct err *e);
void metrics_reset(struct metrics *m);

/* ---- the stream loop's hooks ---- */

/* Relation oid is called schema.name from now on (its Relation message). */
void metrics_relation(struct metrics *m, uint32_t oid, const char *schema, const char *name);

/* An event of relation oid (op < METRICS_NOPS), a logical message (op
 * METRICS_MESSAGE, oid ignored) or other output (METRICS_BYTES_ONLY), of
 * len encoded bytes. */
static inline void metrics_event(struct metrics *m, uint32_t oid, int op, size_t len)
{
	m->f.bytes_out += len;
	if (op == METRICS_MESSAGE) {
		m->f.messages++;
	} else if (op < METRICS_NOPS) {
		struct metrics_table *t = (struct metrics_table *)oidmap_get(&m->by_oid, oid);

		if (t)
			t->events[op]++;
	}
}

/* A frame arrived: position is the XLogData start or the keepalive's WAL
 * end, server_end the WAL end from its header (a logical walsender's is
 * only how far it has sent, so the catalog's figure, metrics_slot, counts
 * too: the backlog not yet sent is lag as well). */
static inline void metrics_frame(struct metrics *m, uint64_t position, uint64_t server_end)
{
	if (position > m->f.received_lsn)
		m->f.received_lsn = position;
	if (server_end > m->f.server_lsn)
		m->f.server_lsn = server_end;
}

/* A transaction committed at commit_time (Postgres timestamp) was emitted. */
void metrics_commit(struct metrics *m, int64_t commit_time);
/* Everything the server sent before its WAL end is handled: caught up. */
void metrics_caught_up(struct metrics *m);

/* The initial snapshot's table oid: its estimated rows (-1 unknown) and
 * whether it is read to the end. */
void metrics_snapshot_table(struct metrics *m, uint32_t oid, int64_t rows_estimated, bool done);

/* A sink flush took us microseconds (durable: with fsync or delivery). */
void metrics_sink_flush(struct metrics *m, int64_t us);

/* The loop's positions; publishes if a second has passed since the last
 * time (or always, with force: a status update). pending: some position
 * may be acknowledged that is not yet. */
void metrics_tick(struct metrics *m, uint64_t written, uint64_t flushed, uint64_t acked,
                  bool pending, bool force);

/* A new state, published at once; reason (may be NULL) says why. */
void metrics_state(struct metrics *m, enum metrics_state st, const char *reason);
/* A session failed with e; reconnecting: a retry follows. */
void metrics_error(struct metrics *m, const struct err *e, bool reconnecting);

/* What the catalog says of the slot (published at the next tick). */
void metrics_slot(struct metrics *m, uint64_t wal_end, uint64_t restart_lsn, uint64_t confirmed,
                  bool active);

/* ---- the HTTP thread's side ---- */

/* Keep the status page's history from now on (the endpoint calls it
 * before it serves). -1 with *e set when out of memory. */
int metrics_keep_history(struct metrics *m, struct err *e);

/* The status page's data as one JSON object (ops/page.h polls it). */
void metrics_render_status(struct metrics *m, struct buf *out);

/* The Prometheus text exposition (format 0.0.4) of the latest snapshot,
 * appended to out, with the process's CPU and RSS read now. */
void metrics_render(struct metrics *m, struct buf *out);

/* Healthy (/healthz): streaming, and acknowledgement moving or nothing
 * to acknowledge. Appends one line saying why, or what is well, to out. */
bool metrics_health(struct metrics *m, struct buf *out);

/* Alive (/livez): the loop, or a snapshot, still publishes; waiting for a
 * server or a sink counts as alive (a restart would not help). For a
 * liveness probe, which must not restart a long snapshot from the start.
 * Appends one line to out. */
bool metrics_live(struct metrics *m, struct buf *out);

#endif
