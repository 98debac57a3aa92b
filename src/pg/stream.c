/*
 * stream.c — CopyBoth framing and I/O on a started replication connection.
 *
 * As pg_recvlogical does: PQgetCopyData in async mode drains what libpq has
 * buffered; only when it returns 0 do we wait on the socket, with a timeout
 * set by the caller to the next feedback deadline.
 *
 * Unlike pg_recvlogical we pace the reads. The walsender send()s every
 * message on its own, and a reader faster than it wakes for nearly each one:
 * a wakeup, a poll and a recv per change for us, and for the walsender a
 * reader to wake and a TCP segment to push through the stack per change.
 * Pausing briefly (--read-delay-us, default 300) after a read that brought
 * data lets the messages pile up instead: each read then takes a whole libpq
 * buffer, and on TCP the walsender's sends coalesce in its socket into large
 * segments. On the reference workload (bench/run.sh, 800,000 changes,
 * loopback TCP, 2 cores, quiet run at 61b4cdc; contender c against f,
 * which reads unpaced; the README gives the spread between runs) this
 * cut pgstream's CPU from 4.5 to 0.8 s per million changes and the
 * walsender's from 11.4 to 5.8 s, and raised throughput from 88,000 to
 * 170,000 changes/s. (The walsender's part needs its TCP to hold sends back
 * while we pause: BBR did here; with CUBIC its window grows so large that
 * it never does, and only our own saving remains: 4.9 to 1.3 s.)
 * The cost is latency: a change that arrives during a pause waits for its
 * end (p99 at 5,000 transactions/s: 0.8 ms; under the hold below, 10-30 ms
 * by design).
 *
 * One read takes at most libpq's input buffer (16 kB until a larger message
 * grows it), and over TLS or GSSAPI only one record - one walsender message
 * - so a pause after every read would cap throughput at one buffer, or one
 * message, per pause (over TLS: 2,500 changes/s instead of 160,000). A read
 * that may have left data behind (a full buffer, or any record) is therefore
 * followed at once by another, up to PACE_BURST_BYTES since the last pause;
 * the pause comes when a read completes no message or the budget is spent.
 * The daemon delivers what it decoded only before it waits, not between
 * these reads (stream_read_on), so a burst is one write to the sink.
 *
 * The hold. Pausing saves our wakeups, but the walsender's sends coalesce
 * only while its TCP has to hold data back. BBR does (a small congestion
 * window); CUBIC, Debian's default, lets the window grow until every
 * message leaves as its own segment, and then each costs both sides a trip
 * through the stack: 1.3-1.7 s per million changes for pgstream, ~10 for
 * the walsender. The one thing a reader controls is its receive window. So
 * (--read-hold, on by default) over TCP to a server on this host - where a
 * small window costs no throughput, the round trip being microseconds -
 * conn.c fixes the receive buffer small (HOLD_RCVBUF) until the sink first
 * stalls (conn_release_hold: a long stall must not find it small), and
 * under load (HOLD_ENTER_RATE) we read at most hold_budget bytes per
 * HOLD_PAUSE_US: the window closes, the server's messages queue in its
 * socket and leave in large segments once we read. The budget follows the
 * server: the XLogData send times say how long the newest message waited
 * (same clock: same host), and the budget grows while that is over
 * HOLD_LAG_HIGH_US, shrinks while under HOLD_LAG_LOW_US, so that the queue
 * stays well inside the server's send buffer and the walsender need not
 * wait for us. Measured with CUBIC (bench, N=400k, 2 repetitions): 169,000
 * changes/s at 0.54 s per million for pgstream and 5.8 for the walsender,
 * against 102,000 at 1.36 and 9.8 without the hold; with BBR 179,000 at
 * 0.55 against 111,000 at 1.43. A fixed budget (64 kB per 2 ms) gave
 * 129,000 at 0.68; the hold without the fixed buffer 103,000 at 1.31, Linux
 * having grown the buffer to ~1 MB so that the window never closed. Below
 * HOLD_LEAVE_RATE the hold ends, so a light load keeps the short pause and
 * its latency. Only when the server is the other end of our socket (conn.c
 * checks: not through a proxy on this host), and not on Unix sockets (their
 * sends never coalesce, and a pause only starves the sender) nor to remote
 * servers (a small window would cap throughput at window / round trip;
 * there the receiving NIC's GRO merges segments anyway).
 */
#include "pg/stream.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "pg/conn_int.h"
#include "util/be.h"
#include "util/log.h"
#include "util/lsn.h"
#include "util/rd.h"

/* A read of at least this many bytes probably stopped at the end of libpq's
 * 16 kB input buffer rather than at the end of what the socket held. */
#define PACE_FULL_READ (12 * 1024)
/* Bytes read without a pause, unless holding: four buffers per pause lift
 * the cap four times above the rate the walsender reached here, while the
 * walsender still finds its socket busy (measured: 8 buffers were no better,
 * 1 was 10% slower). The budget per pause is a ceiling on the read rate,
 * 218 MB/s at the default 300 us, kept out of reach: near it, the data left
 * unread keeps the server's window closed. The hold (below) brings its own
 * ceiling near the server's rate on purpose, and moves it with the server. */
#define PACE_BURST_BYTES (64 * 1024)

/* The hold (see the top of the file). Arrival rates that start and end it:
 * the reference workload's bulk phases arrive at 30-40 MB/s, 5,000 one-row
 * transactions a second at about 1 MB/s, which keeps the short pause. */
#define HOLD_ENTER_RATE      (8 * 1000 * 1000) /* bytes/s over HOLD_ENTER_WINDOW_US */
#define HOLD_ENTER_WINDOW_US 10000
#define HOLD_LEAVE_RATE      (2 * 1000 * 1000) /* bytes/s over HOLD_LEAVE_WINDOW_US */
#define HOLD_LEAVE_WINDOW_US 100000
#define HOLD_PAUSE_US        2000
/* Queueing delay of the newest message read, kept between these: 30 ms at
 * 35 MB/s is about 1 MB waiting on the server, well under the 2.5-4 MB
 * send buffer Linux gives a loopback socket. */
#define HOLD_LAG_LOW_US   10000
#define HOLD_LAG_HIGH_US  30000
#define HOLD_BUDGET_START (64 * 1024)
#define HOLD_BUDGET_MIN   (16 * 1024) /* one libpq buffer */
#define HOLD_BUDGET_MAX   (4 * 1024 * 1024)

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
static void note_send_time(struct stream_pace *p, const uint8_t *frame, size_t len)
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
		struct stream_pace *pace = conn_pace(c);

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

enum pace_action stream_pace_next(struct stream_pace *p)
{
	size_t got = p->read_bytes;
	bool bursting = p->bursting;

	p->read_bytes = 0;
	p->bursting = false;
	if (p->delay_us <= 0)
		return PACE_POLL;
	if (got == 0) {
		/* Drained after reading: pause. Idle: the next message is read
		 * the moment it comes. */
		p->burst_bytes = 0;
		return bursting ? PACE_PAUSE : PACE_POLL;
	}
	p->burst_bytes += got;
	if ((got >= PACE_FULL_READ || p->record_reads) &&
	    p->burst_bytes < (p->holding ? p->hold_budget : PACE_BURST_BYTES)) {
		p->bursting = true;
		return PACE_READ_AGAIN;
	}
	p->burst_bytes = 0;
	return PACE_PAUSE;
}

int stream_pace_delay(const struct stream_pace *p)
{
	return p->holding && p->delay_us < HOLD_PAUSE_US ? HOLD_PAUSE_US : p->delay_us;
}

static void hold_start(struct stream_pace *p, int64_t now_us)
{
	p->holding = true;
	p->hold_budget = HOLD_BUDGET_START;
	p->next_adjust = now_us + HOLD_PAUSE_US;
	log_debug("read hold on: server sending over %d MB/s", HOLD_ENTER_RATE / 1000000);
}

/* Every HOLD_PAUSE_US: more budget while messages wait too long on the
 * server, less while they hardly wait (then the window must close sooner).
 * The send time comes from the server: compared, never subtracted, so that
 * a corrupt one cannot overflow. */
static void hold_adjust(struct stream_pace *p, int64_t now_us, int64_t wall_us)
{
	if (now_us < p->next_adjust || p->last_sent == 0)
		return;
	p->next_adjust = now_us + HOLD_PAUSE_US;
	if (p->last_sent < wall_us - HOLD_LAG_HIGH_US) {
		p->hold_budget += p->hold_budget / 8;
		if (p->hold_budget > HOLD_BUDGET_MAX)
			p->hold_budget = HOLD_BUDGET_MAX;
	} else if (p->last_sent > wall_us - HOLD_LAG_LOW_US) {
		p->hold_budget -= p->hold_budget / 16;
		if (p->hold_budget < HOLD_BUDGET_MIN)
			p->hold_budget = HOLD_BUDGET_MIN;
	}
}

void stream_pace_observe(struct stream_pace *p, int64_t now_us, int64_t wall_us)
{
	int64_t window = p->holding ? HOLD_LEAVE_WINDOW_US : HOLD_ENTER_WINDOW_US;
	int64_t elapsed;
	double rate;

	if (!p->hold_allowed || p->delay_us <= 0)
		return;
	p->rate_bytes += p->read_bytes;
	if (p->holding)
		hold_adjust(p, now_us, wall_us);
	if (p->rate_since == 0)
		p->rate_since = now_us;
	elapsed = now_us - p->rate_since;
	if (elapsed < window)
		return;
	rate = (double)p->rate_bytes * 1e6 / (double)elapsed;
	if (!p->holding && rate >= HOLD_ENTER_RATE) {
		hold_start(p, now_us);
	} else if (p->holding && rate < HOLD_LEAVE_RATE) {
		p->holding = false;
		log_debug("read hold off: server sending under %d MB/s", HOLD_LEAVE_RATE / 1000000);
	}
	p->rate_since = now_us;
	p->rate_bytes = 0;
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
	struct stream_pace *pace = conn_pace(c);
	enum pace_action next;

	if (pace->hold_allowed)
		stream_pace_observe(pace, clock_us(), pgtime_now());
	next = stream_pace_next(pace);
	if (next == PACE_READ_AGAIN)
		return consume(conn_pg(c), e);
	pace->pause_next = next == PACE_PAUSE;
	return 0;
}

int stream_wait(struct pg_conn *c, int timeout_ms, struct err *e)
{
	PGconn *pg = conn_pg(c);
	struct stream_pace *pace = conn_pace(c);
	struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
	int n;

	if (pfd.fd < 0)
		return err_setk(e, ERR_TRANSIENT, "could not wait for data: connection lost");
	if (pace->pause_next) {
		pace->pause_next = false;
		if (!pause_reading(stream_pace_delay(pace), &timeout_ms))
			return 0; /* a signal: let the caller look at its flags */
	}
	if (tls_pending(pg))
		return consume(pg, e);
	n = poll(&pfd, 1, timeout_ms);
	if (n < 0 && errno != EINTR)
		return err_setk(e, ERR_TRANSIENT, "could not wait for data: %s", strerror(errno));
	return n > 0 ? consume(pg, e) : 0;
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
