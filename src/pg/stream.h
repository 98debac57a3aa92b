/*
 * stream.h — the CopyBoth stream of a started replication connection:
 * CopyData frames in ('w' XLogData, 'k' keepalive), Standby Status Update
 * ('r') out, waiting on the socket with a deadline.
 *
 * Frame parsing (stream_parse_frame) is pure, like the decoder; the rest
 * wraps libpq's non-blocking CopyBoth calls as pg_recvlogical does.
 */
#ifndef PGSTREAM_STREAM_H
#define PGSTREAM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg/conn.h"
#include "util/err.h"

enum stream_frame_type {
	FRAME_XLOGDATA = 'w',
	FRAME_KEEPALIVE = 'k',
};

struct stream_frame {
	enum stream_frame_type type;
	uint64_t wal_start;     /* 'w': LSN of the payload's first byte */
	uint64_t wal_end;       /* both: server's WAL end */
	int64_t send_time;      /* both: server clock, Postgres timestamp */
	bool reply_requested;   /* 'k' */
	const uint8_t *payload; /* 'w': borrowed from the CopyData buffer */
	size_t payload_len;
};

/* Parse one CopyData message. Returns -1 with *e set on a short, unknown or
 * malformed frame. */
int stream_parse_frame(const uint8_t *data, size_t len, struct stream_frame *out, struct err *e);

/*
 * Receive the next CopyData message without blocking. Returns 1 and sets
 * *data and *len (free with stream_free) when one is ready, 0 when none is
 * buffered, -1 with *e set when the stream ended or failed.
 */
int stream_recv(struct pg_conn *c, uint8_t **data, size_t *len, struct err *e);
void stream_free(uint8_t *data);

/* Call when stream_recv returns 0. When the last read probably left data
 * behind, read again at once and return 1: receive on, with nothing to
 * deliver yet. Otherwise return 0: deliver what was decoded, then
 * stream_wait (which first pauses, if pacing says so). -1 with *e set on
 * error. Reading on without delivering in between is what makes one write
 * to the sink per batch rather than one per read. */
int stream_read_on(struct pg_conn *c, struct err *e);

/* Wait until the socket is readable or timeout_ms passes (-1: forever), and
 * read what arrived; before that, the pause stream_read_on asked for.
 * Returns 1 if data may have been read, 0 on timeout, -1 with *e set on
 * error; EINTR is a timeout (the caller checks its signal flag). */
int stream_wait(struct pg_conn *c, int timeout_ms, struct err *e);

/* Read pacing: after a read that brought data, pause (delay_us, longer
 * while holding: stream_pace_delay) before the next one so that messages
 * arrive in batches (stream.c says why). */
struct stream_pace {
	int delay_us;       /* 0: wait on the socket at once, as pg_recvlogical does */
	bool record_reads;  /* TLS or GSSAPI: a read returns one record, so a short
	                       read does not mean the socket is empty */
	size_t read_bytes;  /* CopyData bytes received since the last wait */
	size_t burst_bytes; /* bytes read since the last pause */
	bool bursting;      /* reading again without a pause */
	bool pause_next;    /* stream_wait pauses first */

	/* The hold (stream.c): over TCP to a server on this host, under load,
	 * read a budget per longer pause so that the server's sends queue up
	 * and coalesce. */
	bool hold_allowed;   /* set by conn.c: same-host TCP, pacing on; cleared
	                        by conn_release_hold */
	bool holding;        /* under load: hold_budget per HOLD_PAUSE_US */
	size_t hold_budget;  /* bytes read per pause while holding */
	int64_t last_sent;   /* newest XLogData's send time (server clock) */
	int64_t rate_since;  /* monotonic us: start of the arrival-rate window */
	size_t rate_bytes;   /* bytes read in that window */
	int64_t next_adjust; /* monotonic us: when hold_budget may change again */
};

enum pace_action {
	PACE_POLL,       /* wait on the socket now */
	PACE_READ_AGAIN, /* more is probably waiting: read again at once */
	PACE_PAUSE,      /* pause stream_pace_delay(), then wait on the socket */
};

/* The decision before each wait; consumes p->read_bytes. No I/O. */
enum pace_action stream_pace_next(struct stream_pace *p);

/* Before stream_pace_next, with hold_allowed: start, tune or end the hold
 * from the bytes read (p->read_bytes, not consumed), now_us on a monotonic
 * clock and wall_us on the server's clock (Postgres timestamp; the server is
 * on this host). No I/O. */
void stream_pace_observe(struct stream_pace *p, int64_t now_us, int64_t wall_us);

/* The pause stream_wait makes, in us: longer while holding. */
int stream_pace_delay(const struct stream_pace *p);

/* Send a Standby Status Update reporting write/flush/apply positions. */
int stream_send_status(struct pg_conn *c, uint64_t write_lsn, uint64_t flush_lsn,
                       bool reply_requested, struct err *e);

/* End the copy cleanly (at shutdown) so the server sees a normal stop. */
void stream_end(struct pg_conn *c);

#endif
