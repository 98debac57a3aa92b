/*
 * stream.c — CopyBoth framing and I/O on a started replication connection.
 *
 * As pg_recvlogical does: PQgetCopyData in async mode drains what libpq has
 * buffered; only when it returns 0 do we wait on the socket, with a timeout
 * set by the caller to the next feedback deadline.
 *
 * The reads are paced (pg/pace.c says why and how): after a read that
 * completed no message, stream_read_on asks the connection's pacing policy
 * whether to read again at once, and stream_wait makes the pause it asked
 * for before waiting on the socket.
 */
#include "pg/stream.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "pg/conn_int.h"
#include "pg/pace.h"
#include "util/be.h"
#include "util/lsn.h"
#include "util/rd.h"

/*
 * XLogData:  'w' Int64 walStart, Int64 walEnd, Int64 sendTime, Byte* payload
 * Keepalive: 'k' Int64 walEnd, Int64 sendTime, Byte1 replyRequested
 */
int stream_parse_frame(const uint8_t *data, size_t len, struct stream_frame *out, struct err *e)
{
	struct rd r;
	uint8_t type, reply;
	uint64_t t;

	rd_init(&r, data, len);
	memset(out, 0, sizeof *out);
	if (!rd_u8(&r, &type))
		return err_set(e, "could not parse replication frame: empty CopyData");
	switch (type) {
	case FRAME_XLOGDATA:
		if (!rd_u64(&r, &out->wal_start) || !rd_u64(&r, &out->wal_end) || !rd_u64(&r, &t))
			return err_set(e, "could not parse XLogData: %zu bytes is too short", len);
		out->type = FRAME_XLOGDATA;
		out->send_time = (int64_t)t;
		out->payload = r.p;
		out->payload_len = r.left;
		return 0;
	case FRAME_KEEPALIVE:
		if (!rd_u64(&r, &out->wal_end) || !rd_u64(&r, &t) || !rd_u8(&r, &reply))
			return err_set(e, "could not parse keepalive: %zu bytes is too short", len);
		if (r.left != 0)
			return err_set(e, "could not parse keepalive: %zu trailing bytes", r.left);
		out->type = FRAME_KEEPALIVE;
		out->send_time = (int64_t)t;
		out->reply_requested = reply != 0;
		return 0;
	default:
		return err_set(e, "could not parse replication frame: unknown type 0x%02x", type);
	}
}

/* The copy ended or broke: collect the server's reason. */
static int stream_ended(PGconn *pg, struct err *e)
{
	PGresult *res = PQgetResult(pg);
	int rc;

	if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
		rc = err_setk(e, ERR_TRANSIENT, "replication stream ended by the server");
	else
		rc = conn_result_error(pg, res, e, "read replication stream");
	PQclear(res);
	return rc;
}

/* Keep the send time of an XLogData frame for the hold; the frame itself is
 * parsed by the caller. */
static void note_send_time(struct pace *p, const uint8_t *frame, size_t len)
{
	const size_t at = 1 + 8 + 8; /* type, walStart, walEnd, then sendTime */
	struct rd r;

	if (len < at + 8 || frame[0] != FRAME_XLOGDATA)
		return;
	rd_init(&r, frame + at, 8);
	rd_i64(&r, &p->last_sent);
}

int stream_recv(struct pg_conn *c, uint8_t **data, size_t *len, struct err *e)
{
	PGconn *pg = conn_pg(c);
	char *buf = NULL;
	int n = PQgetCopyData(pg, &buf, 1);

	if (n > 0) {
		struct pace *pace = conn_pace(c);

		pace->read_bytes += (size_t)n;
		if (pace->hold_allowed)
			note_send_time(pace, (const uint8_t *)buf, (size_t)n);
		*data = (uint8_t *)buf;
		*len = (size_t)n;
		return 1;
	}
	if (n == 0)
		return 0;
	if (n == -1)
		return stream_ended(pg, e);
	return conn_result_error(pg, NULL, e, "read replication stream");
}

void stream_free(uint8_t *data)
{
	PQfreemem(data);
}

/* Sleep up to delay_us, never past the caller's timeout, and take the
 * time slept off *timeout_ms. Returns false if a signal cut the pause short:
 * the caller must then return to the loop that checks its flags rather
 * than go on to poll. */
static bool pause_reading(int delay_us, int *timeout_ms)
{
	struct timespec ts;

	if (*timeout_ms >= 0 && (long long)delay_us > (long long)*timeout_ms * 1000)
		delay_us = *timeout_ms * 1000;
	if (delay_us <= 0)
		return true;
	ts.tv_sec = delay_us / 1000000;
	ts.tv_nsec = (long)(delay_us % 1000000) * 1000;
	if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
		return false;
	if (*timeout_ms >= 0)
		*timeout_ms -= delay_us / 1000;
	return true;
}

/* Bytes OpenSSL has decrypted but libpq has not taken, which poll() on the
 * socket cannot see: libpq reads one record per call into what room its
 * buffer has, and the rest of a large record stays inside OpenSSL. libpq's
 * own waits check for them (pqSocketCheck); ours must, or the tail of a
 * batch would wait there until the server sent again. */
static bool tls_pending(PGconn *pg)
{
	SSL *ssl = PQsslStruct(pg, "OpenSSL"); /* NULL without TLS */

	return ssl != NULL && SSL_pending(ssl) > 0;
}

static int consume(PGconn *pg, struct err *e)
{
	if (!PQconsumeInput(pg))
		return conn_result_error(pg, NULL, e, "read replication stream");
	return 1;
}

int stream_read_on(struct pg_conn *c, struct err *e)
{
	struct pace *pace = conn_pace(c);
	enum pace_action next;

	if (pace->hold_allowed)
		pace_observe(pace, clock_us(), pgtime_now());
	next = pace_next(pace);
	if (next == PACE_READ_AGAIN)
		return consume(conn_pg(c), e);
	pace->pause_next = next == PACE_PAUSE;
	return 0;
}

int stream_wait(struct pg_conn *c, int timeout_ms, struct pollfd *others, unsigned nothers,
                struct err *e)
{
	PGconn *pg = conn_pg(c);
	struct pace *pace = conn_pace(c);
	struct pollfd fds[1 + STREAM_WAIT_OTHERS];
	int n;

	assert(nothers <= STREAM_WAIT_OTHERS);
	for (unsigned i = 0; i < nothers; i++)
		others[i].revents = 0;
	fds[0] = (struct pollfd){.fd = PQsocket(pg), .events = POLLIN};
	if (fds[0].fd < 0)
		return err_setk(e, ERR_TRANSIENT, "could not wait for data: connection lost");
	if (pace->pause_next) {
		pace->pause_next = false;
		if (!pause_reading(pace_delay(pace), &timeout_ms))
			return 0; /* a signal: let the caller look at its flags */
	}
	if (tls_pending(pg))
		return consume(pg, e);
	if (nothers > 0)
		memcpy(fds + 1, others, nothers * sizeof *others);
	n = poll(fds, 1 + nothers, timeout_ms);
	if (n < 0 && errno != EINTR)
		return err_setk(e, ERR_TRANSIENT, "could not wait for data: %s", strerror(errno));
	if (n <= 0)
		return 0;
	for (unsigned i = 0; i < nothers; i++)
		others[i].revents = fds[1 + i].revents;
	return fds[0].revents ? consume(pg, e) : 0;
}

/* 'r' Int64 write, Int64 flush, Int64 apply, Int64 clock, Byte1 replyRequested */
int stream_send_status(struct pg_conn *c, uint64_t write_lsn, uint64_t flush_lsn,
                       bool reply_requested, struct err *e)
{
	PGconn *pg = conn_pg(c);
	uint8_t msg[1 + 8 * 4 + 1];

	msg[0] = 'r';
	be_put64(msg + 1, write_lsn);
	be_put64(msg + 9, flush_lsn);
	be_put64(msg + 17, flush_lsn); /* applied = flushed: we apply by emitting */
	be_put64(msg + 25, (uint64_t)pgtime_now());
	msg[33] = reply_requested ? 1 : 0;
	if (PQputCopyData(pg, (const char *)msg, sizeof msg) <= 0 || PQflush(pg) != 0)
		return conn_result_error(pg, NULL, e, "send status update");
	return 0;
}

/* Give the server up to this long to finish the copy at shutdown. Our last
 * status update is processed well before; a walsender in the middle of a
 * large transaction would otherwise keep us draining until its end. */
#define STREAM_END_TIMEOUT_MS 1000

void stream_end(struct pg_conn *c)
{
	PGconn *pg = conn_pg(c);
	int64_t deadline = clock_ms() + STREAM_END_TIMEOUT_MS;
	PGresult *res;
	char *buf;
	int n;

	if (PQputCopyEnd(pg, NULL) <= 0 || PQflush(pg) != 0)
		return;
	/* Wait (bounded) for the server's CopyDone: once it arrives the server
	 * has also processed our last status update, which preceded ours. */
	while ((n = PQgetCopyData(pg, &buf, 1)) >= 0) {
		int64_t left = deadline - clock_ms();
		struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
		if (n > 0) {
			PQfreemem(buf);
			continue;
		}
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 || !PQconsumeInput(pg))
			return;
	}
	while (!PQisBusy(pg) && (res = PQgetResult(pg)) != NULL)
		PQclear(res);
}
