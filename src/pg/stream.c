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
 * end (p99 at 5,000 transactions/s: 0.9 ms).
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
 */
#include "pg/stream.h"

#include <errno.h>
#include <linux/tcp.h> /* struct tcp_info with the byte and segment counts */
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "pg/conn_int.h"
#include "util/lsn.h"
#include "util/rd.h"

/* A read of at least this many bytes probably stopped at the end of libpq's
 * 16 kB input buffer rather than at the end of what the socket held. */
#define PACE_FULL_READ (12 * 1024)
/* Bytes read without a pause: four buffers per pause lift the cap four
 * times above the rate the walsender reached here, while the walsender
 * still finds its socket busy and coalesces (measured: 8 buffers were no
 * better, 1 was 10% slower). The budget per pause is a ceiling on the read
 * rate: 213 MB/s at the default 300 us, about 30 MB/s at 2000 us. Near the
 * ceiling the data left unread keeps the server's TCP window closed, so its
 * sends coalesce whatever its congestion control: with CUBIC, 2000 us gave
 * 140,000 changes/s at 0.55 s per million against 101,000 at 1.69 with the
 * default (README, contender h). A larger budget at 2000 us let the window
 * open again and lost that; the default keeps the ceiling out of reach. */
#define PACE_BURST_BYTES (64 * 1024)

/*
 * Holding the window (TCP only). The pause alone makes the walsender's sends
 * coalesce only if its TCP holds them back: BBR did here, CUBIC (Debian's
 * default) did not, and then every message left as its own ~155-byte
 * segment while Linux grew our receive buffer to about 1 MB. A sender
 * coalesces when the receiver's window is full, so when traffic is busy and
 * arrives one message per segment, pgstream reads at most `budget` bytes per
 * PACE_HOLD_PAUSE_US: what it leaves unread keeps the window closed, and the
 * walsender's messages wait in its own socket and leave in large segments.
 * The budget then follows the sender: +1/8 per interval while segments stay
 * large and reads end at the budget (the server could send more), halved
 * when segments turn small again (the window opened: read less so the queue
 * rebuilds). Measured with CUBIC (bench contender c, 3 repetitions,
 * N=200000): 138,000 changes/s at 0.85 s of pgstream CPU per million against
 * 112,000 at 1.65, walsender 6.5 against 8.9 s; with BBR no change (171,624
 * against 169,729). A fixed 64 kB per 2 ms did as well with CUBIC but is a
 * 30 MB/s ceiling (README, contender h); segments are counted by TCP_INFO.
 */
#define PACE_INTERVAL_MS     100
#define PACE_HOLD_RATE       (8 * 1000 * 1000) /* bytes/s: start holding above */
#define PACE_RELEASE_RATE    (4 * 1000 * 1000) /* bytes/s: stop holding below */
#define PACE_SMALL_SEGMENT   300               /* bytes: about one message */
#define PACE_HOLD_INTERVALS  3                 /* busy small-segment intervals */
#define PACE_HOLD_PAUSE_US   2000
#define PACE_HOLD_MIN_BUDGET (32 * 1024)
#define PACE_HOLD_MAX_BUDGET (4 * 1024 * 1024)

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

int stream_recv(struct pg_conn *c, uint8_t **data, size_t *len, struct err *e)
{
	PGconn *pg = conn_pg(c);
	char *buf = NULL;
	int n = PQgetCopyData(pg, &buf, 1);

	if (n > 0) {
		conn_pace(c)->read_bytes += (size_t)n;
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
	    p->burst_bytes < (p->budget ? p->budget : PACE_BURST_BYTES)) {
		p->bursting = true;
		return PACE_READ_AGAIN;
	}
	p->bursts++;
	if (got >= PACE_FULL_READ || p->record_reads)
		p->bursts_full++; /* stopped by the budget, not by an empty socket */
	p->burst_bytes = 0;
	return PACE_PAUSE;
}

static void hold_window(struct stream_pace *p)
{
	p->holding = true;
	p->budget = PACE_BURST_BYTES;
	p->pause_us = p->delay_us > PACE_HOLD_PAUSE_US ? p->delay_us : PACE_HOLD_PAUSE_US;
}

static void release_window(struct stream_pace *p)
{
	p->holding = false;
	p->budget = 0;
	p->pause_us = 0;
}

void stream_pace_adapt(struct stream_pace *p, const struct pace_sample *s)
{
	uint64_t rate = s->elapsed_ms > 0 ? s->bytes * 1000 / (uint64_t)s->elapsed_ms : 0;
	bool small = s->segments > 0 && s->bytes / s->segments < PACE_SMALL_SEGMENT;
	bool at_budget = p->bursts > 0 && p->bursts_full * 2 >= p->bursts;

	p->bursts = p->bursts_full = 0;
	if (p->delay_us <= 0)
		return;
	if (!p->holding) {
		p->small_intervals = rate >= PACE_HOLD_RATE && small ? p->small_intervals + 1 : 0;
		if (p->small_intervals >= PACE_HOLD_INTERVALS)
			hold_window(p);
		return;
	}
	p->small_intervals = 0;
	if (rate < PACE_RELEASE_RATE) {
		release_window(p);
	} else if (small) {
		p->budget =
		    p->budget / 2 > PACE_HOLD_MIN_BUDGET ? p->budget / 2 : PACE_HOLD_MIN_BUDGET;
	} else if (at_budget) {
		p->budget += p->budget / 8;
		if (p->budget > PACE_HOLD_MAX_BUDGET)
			p->budget = PACE_HOLD_MAX_BUDGET;
	}
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

/* Over TCP, once per PACE_INTERVAL_MS: what the socket received, for
 * stream_pace_adapt. A failing TCP_INFO turns the adaptation off. */
static void sample_tcp(struct pg_conn *c, struct stream_pace *p)
{
	int64_t now = clock_ms();
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	struct pace_sample s;

	if (!p->tcp || p->delay_us <= 0 || now - p->interval_start_ms < PACE_INTERVAL_MS)
		return;
	memset(&ti, 0, sizeof ti);
	if (getsockopt(PQsocket(conn_pg(c)), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof ti.tcpi_data_segs_in) {
		p->tcp = false;
		return;
	}
	if (p->interval_start_ms != 0) {
		s.elapsed_ms = now - p->interval_start_ms;
		s.bytes = ti.tcpi_bytes_received - p->tcp_bytes;
		s.segments = (uint32_t)(ti.tcpi_data_segs_in - (uint32_t)p->tcp_segments);
		stream_pace_adapt(p, &s);
	}
	p->interval_start_ms = now;
	p->tcp_bytes = ti.tcpi_bytes_received;
	p->tcp_segments = ti.tcpi_data_segs_in;
}

int stream_read_on(struct pg_conn *c, struct err *e)
{
	struct stream_pace *pace = conn_pace(c);
	enum pace_action next = stream_pace_next(pace);

	if (next != PACE_READ_AGAIN)
		sample_tcp(c, pace);

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
		if (!pause_reading(pace->pause_us ? pace->pause_us : pace->delay_us, &timeout_ms))
			return 0; /* a signal: let the caller look at its flags */
	}
	if (tls_pending(pg))
		return consume(pg, e);
	n = poll(&pfd, 1, timeout_ms);
	if (n < 0 && errno != EINTR)
		return err_setk(e, ERR_TRANSIENT, "could not wait for data: %s", strerror(errno));
	return n > 0 ? consume(pg, e) : 0;
}

static void put_u64(char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (char)(v & 0xFF);
}

/* 'r' Int64 write, Int64 flush, Int64 apply, Int64 clock, Byte1 replyRequested */
int stream_send_status(struct pg_conn *c, uint64_t write_lsn, uint64_t flush_lsn,
                       bool reply_requested, struct err *e)
{
	PGconn *pg = conn_pg(c);
	char msg[1 + 8 * 4 + 1];

	msg[0] = 'r';
	put_u64(msg + 1, write_lsn);
	put_u64(msg + 9, flush_lsn);
	put_u64(msg + 17, flush_lsn); /* applied = flushed: we apply by emitting */
	put_u64(msg + 25, (uint64_t)pgtime_now());
	msg[33] = reply_requested ? 1 : 0;
	if (PQputCopyData(pg, msg, sizeof msg) <= 0 || PQflush(pg) != 0)
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
