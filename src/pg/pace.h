/*
 * pace.h — the read pacing policy of the replication stream: after a read,
 * whether to read again at once, pause, or wait on the socket, and for how
 * long to pause; under load on a same-host TCP connection, the hold that
 * makes the server's sends coalesce (pace.c says why).
 *
 * Pure: read sizes and clocks in, decisions out. No socket, no libpq; the
 * connection (conn.c) owns one struct pace and sets what it allows, the
 * stream (stream.c) feeds it reads and carries out its decisions.
 */
#ifndef PGSTREAM_PACE_H
#define PGSTREAM_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zero-initialized, then the owner sets the first three fields. */
struct pace {
	/* Set by the owner (conn.c) before streaming. */
	int delay_us;      /* pause after a read that brought data; 0: wait on the
	                      socket at once, as pg_recvlogical does */
	bool record_reads; /* TLS or GSSAPI: a read returns one record, so a
	                      short read does not mean the socket is empty */
	bool hold_allowed; /* same-host TCP with pacing on; cleared for good by
	                      pace_release_hold */

	/* Fed by the reader (stream.c). */
	size_t read_bytes; /* CopyData bytes received since the last decision */
	int64_t last_sent; /* newest XLogData's send time (server clock) */
	bool pause_next;   /* the reader pauses pace_delay() before its wait */

	/* The policy's own. */
	size_t burst_bytes;  /* bytes read since the last pause */
	bool bursting;       /* reading again without a pause */
	bool holding;        /* under load: hold_budget per pause */
	size_t hold_budget;  /* bytes read per pause while holding */
	int64_t rate_since;  /* monotonic us: start of the arrival-rate window */
	size_t rate_bytes;   /* bytes read in that window */
	int64_t next_adjust; /* monotonic us: when hold_budget may change again */
};

enum pace_action {
	PACE_POLL,       /* wait on the socket now */
	PACE_READ_AGAIN, /* more is probably waiting: read again at once */
	PACE_PAUSE,      /* pause pace_delay(), then wait on the socket */
};

/* The decision after a read that completed no message, before the next
 * wait; consumes p->read_bytes. */
enum pace_action pace_next(struct pace *p);

/* Before pace_next, with hold_allowed: start, tune or end the hold from the
 * bytes read (p->read_bytes, not consumed), now_us on a monotonic clock and
 * wall_us on the server's clock (Postgres timestamp; the server is on this
 * host). Logs the hold's start and end at debug level. */
void pace_observe(struct pace *p, int64_t now_us, int64_t wall_us);

/* The pause to make before waiting, in us: longer while holding. */
int pace_delay(const struct pace *p);

/* The hold must not be used again on this connection (the output stalled:
 * conn_release_hold): ends it if on. */
void pace_release_hold(struct pace *p);

#endif
