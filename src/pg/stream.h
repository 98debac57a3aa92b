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

#include <poll.h>
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

/* Wait until the socket is readable, one of the caller's other descriptors
 * others[0..nothers) is ready (at most STREAM_WAIT_OTHERS; their revents
 * are filled in, zero when they were not ready), or timeout_ms passes (-1:
 * forever), and read what arrived; before that, the pause stream_read_on
 * asked for. Returns 1 if data may have been read from the server, 0 if
 * not (a timeout, only another descriptor ready), -1 with *e set on error;
 * EINTR is a timeout (the caller checks its signal flag). */
#define STREAM_WAIT_OTHERS 8
int stream_wait(struct pg_conn *c, int timeout_ms, struct pollfd *others, unsigned nothers,
                struct err *e);

/* Send a Standby Status Update reporting write/flush/apply positions. */
int stream_send_status(struct pg_conn *c, uint64_t write_lsn, uint64_t flush_lsn,
                       bool reply_requested, struct err *e);

/* End the copy cleanly (at shutdown) so the server sees a normal stop. */
void stream_end(struct pg_conn *c);

#endif
