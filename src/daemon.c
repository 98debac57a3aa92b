/*
 * daemon.c — the poll loop that wires connector, decoder, encoder, sink and
 * checkpoint together, and the reconnect policy around it.
 *
 * Flow per CopyData frame: parse the frame (stream.c), decode the pgoutput
 * payload (pgoutput.c), turn each message into events (event/map.c), encode
 * each straight into the sink's buffer (event/encoder.c), number it, and
 * record at each COMMIT which event must be durable before that
 * transaction's end LSN may be acknowledged (checkpoint.c). The loop is
 * Redis ae.c's: one place knows the next deadline (next_deadline), one step
 * runs before every sleep (before_sleep: the sink's buffer is written out,
 * so events leave as soon as they are decoded, and a due status update
 * goes), and one wait watches the server and the sink together
 * (wait_for_input). Before each status update the sink is made durable and
 * only what it confirmed is reported as flushed. Counters and positions go
 * to ops/metrics.h through one-line hooks (plain stores on this thread;
 * --metrics-addr's HTTP thread reads only what they publish). Handing an
 * event to the sink is daemon_emit.c, resolving a relation with the
 * catalog daemon_relations.c, the initial snapshot daemon_snapshot.c;
 * daemon_int.h holds the state they share.
 */
#include "daemon.h"
#include "daemon_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill.h"
#include "checkpoint.h"
#include "event/encoder.h"
#include "event/filter.h"
#include "event/map.h"
#include "event/txmeta.h"
#include "event/relinfo.h"
#include "event/utf8guard.h"
#include "ops/http.h"
#include "ops/metrics.h"
#include "pg/catalog.h"
#include "pg/conn.h"
#include "pg/pgoutput.h"
#include "pg/stream.h"
#include "sink/sink.h"
#include "spool.h"
#include "util/log.h"
#include "util/lsn.h"
#include "wake.h"

/* Pending acknowledgement marks (one per transaction) before the sink is
 * forced to confirm: bounds memory however many small transactions arrive
 * between status updates. */
#define CHECKPOINT_MARKS 65536
/* While data keeps arriving, look at the clock every this many frames so
 * status updates stay on time under load. */
#define FRAMES_PER_CLOCK_CHECK 1024
#define RECONNECT_INITIAL_MS   1000
/* How long a first start waits for a slot held by another walsender. */
#define SLOT_BUSY_GRACE_MS 5000
#define SLOT_BUSY_POLL_MS  250

static bool kafka_sink(const struct config *cfg)
{
	return cfg->sink && strcmp(cfg->sink, "kafka") == 0;
}

/* ---- events ------------------------------------------------------------ */

static int wait_for_sink(struct daemon *d, struct err *e);

/* Record that lsn may be acknowledged once the events so far are durable. */
static int mark(struct daemon *d, uint64_t lsn, struct err *e)
{
	while (!checkpoint_mark(&d->cp, lsn, d->seq)) {
		/* Ring full: make the sink confirm, which frees marks; a full
		 * pipe must drain first. Stopping instead leaves lsn unmarked:
		 * not acknowledged, so sent again after a restart. */
		if (sink_blocked(d->sink) && wait_for_sink(d, e) < 0)
			return -1;
		if (*d->stop)
			return 0;
		if (daemon_confirm(d, true, e) < 0)
			return -1;
	}
	return 0;
}

static const struct event_txn *current_txn(const struct daemon *d)
{
	return d->in_txn ? &d->txn : NULL;
}

static int handle_change(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e)
{
	struct event ev;

	if (map_change(m, lsn, current_txn(d), d->rels, &ev, e) < 0)
		return -1;
	backfill_on_change(d->bf, &ev);
	return daemon_emit(d, &ev, e);
}

static int handle_truncate(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e)
{
	for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
		struct event ev;

		if (map_truncate(m, i, lsn, current_txn(d), d->rels, &ev, e) < 0)
			return -1;
		backfill_on_change(d->bf, &ev);
		if (daemon_emit(d, &ev, e) < 0)
			return -1;
	}
	return 0;
}

/* The rows of an on-demand snapshot's chunk, at its high watermark (lsn),
 * in the watermark's transaction. */
static int emit_backfill(struct daemon *d, uint64_t lsn, struct err *e)
{
	struct pgo_tuple tup;
	struct event ev = {.op = EVENT_READ, .lsn = lsn, .txn = current_txn(d), .newtup = &tup};

	while (backfill_next_row(d->bf, &ev.rel, &tup)) {
		/* A slow reader must not make a chunk grow memory. */
		if (sink_blocked(d->sink) && wait_for_sink(d, e) < 0)
			return -1;
		if (daemon_emit(d, &ev, e) < 0)
			return -1;
	}
	return backfill_chunk_done(d->bf, e);
}

static int handle_message(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e)
{
	struct event ev;

	map_message(m, lsn, current_txn(d), &ev);
	/* pgoutput sends the content unconverted, in the database's encoding;
	 * content that is not text in it stays as sent (base64 in the event). */
	if (d->convert_messages) {
		int rc = catalog_to_utf8(d->cat, d->encoding, ev.content, ev.content_len,
		                         &d->converted, e);

		if (rc < 0)
			return -1;
		if (rc > 0) {
			ev.content = (const uint8_t *)d->converted.data;
			ev.content_len = (uint32_t)d->converted.len;
		}
	}
	switch (backfill_on_message(d->bf, ev.prefix, ev.content, ev.content_len, lsn, e)) {
	case -1:
		return -1;
	case BACKFILL_CONSUMED:
		return 0;
	case BACKFILL_EMIT:
		return emit_backfill(d, lsn, e);
	}
	return daemon_emit(d, &ev, e);
}

/* A transaction's events begin (at BEGIN, or at a streamed transaction's
 * commit). False if it committed after --end-lsn: it is not ours, and the
 * run ends instead. */
static bool begin_txn(struct daemon *d, uint32_t xid, uint64_t commit_lsn, int64_t commit_time,
                      uint64_t lsn)
{
	if (d->cfg->end_lsn && commit_lsn > d->cfg->end_lsn) {
		d->reached_end = true;
		return false;
	}
	d->in_txn = true;
	d->txn_begin_lsn = lsn;
	d->txn_opened = false;
	d->txn_events = 0;
	d->txn.xid = xid;
	d->txn.commit_lsn = commit_lsn;
	d->txn.commit_time = commit_time;
	return true;
}

/* The transaction's events are all out: its end may be acknowledged once
 * they are confirmed. Reaching --end-lsn ends the run. */
static int end_txn(struct daemon *d, uint64_t end_lsn, uint64_t lsn, struct err *e)
{
	if (daemon_emit_commit(d, lsn, e) < 0)
		return -1;
	d->in_txn = false;
	backfill_on_commit(d->bf, d->txn.xid);
	metrics_commit(&d->metrics, d->txn.commit_time);
	if (mark(d, end_lsn, e) < 0)
		return -1;
	if (d->cfg->end_lsn && end_lsn >= d->cfg->end_lsn)
		d->reached_end = true;
	return 0;
}

/* ---- streamed transactions (protocol v2) -------------------------------- */

static int stream_start(struct daemon *d, const struct pgo_msg *m, struct err *e)
{
	return spool_set_start(&d->spools, m->u.stream_start.xid, m->u.stream_start.first_segment,
	                       e);
}

/* A message inside a stream: park it until the transaction's fate is known. */
static int spool_frame(struct daemon *d, const struct stream_frame *f, struct err *e)
{
	uint32_t subxid;

	if (d->spools.current == NULL)
		return err_set(e, "could not follow stream: data outside a stream");
	if (pgoutput_peek_stream_xid(f->payload, f->payload_len, &subxid, e) < 0)
		return -1;
	return spool_append(d->spools.current, f->wal_start, subxid, f->payload, f->payload_len, e);
}

static int handle_pgoutput(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e);

/* The streamed transaction committed: emit what was spooled, as one
 * transaction, exactly as if it had been sent at commit. */
static int stream_commit(struct daemon *d, const struct pgo_msg *m, uint64_t at, struct err *e)
{
	struct spool *sp = spool_set_find(&d->spools, m->u.stream_commit.xid);
	const uint8_t *msg;
	uint64_t lsn;
	size_t len;
	int rc;

	if (sp == NULL)
		return err_set(e, "could not follow stream: commit of unknown transaction %u",
		               m->u.stream_commit.xid);
	if (!begin_txn(d, m->u.stream_commit.xid, m->u.stream_commit.commit_lsn,
	               m->u.stream_commit.commit_time, at))
		return 0;
	if (spool_rewind(sp, e) < 0)
		return -1;
	while ((rc = spool_next(sp, &lsn, &msg, &len, e)) > 0) {
		struct pgo_msg sm;

		/* A slow reader must not make a large replay grow memory. */
		if (sink_blocked(d->sink) && wait_for_sink(d, e) < 0)
			return -1;
		if (pgoutput_decode_spooled(d->dec, msg, len, &sm, e) < 0 ||
		    handle_pgoutput(d, &sm, lsn, e) < 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	spool_set_drop(&d->spools, sp);
	return end_txn(d, m->u.stream_commit.end_lsn, at, e);
}

static int stream_abort(struct daemon *d, const struct pgo_msg *m, struct err *e)
{
	struct spool *sp = spool_set_find(&d->spools, m->u.stream_abort.xid);

	if (sp == NULL)
		return 0; /* nothing of it was spooled */
	if (m->u.stream_abort.subxid == m->u.stream_abort.xid) {
		spool_set_drop(&d->spools, sp);
		return 0;
	}
	return spool_abort_subxact(sp, m->u.stream_abort.subxid, e);
}

static int prepare_relation(struct daemon *d, uint32_t relid, uint64_t lsn, struct err *e)
{
	const struct relation *rel = relcache_get(pgoutput_relcache(d->dec), relid);

	if (rel == NULL)
		return 0;
	return daemon_refine_relation(d, d->rels, rel, lsn, e) ? 0 : -1;
}

/* One pgoutput message at WAL position lsn (its XLogData start). */
static int handle_pgoutput(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e)
{
	uint64_t end = d->cfg->end_lsn;

	switch (m->type) {
	case PGO_BEGIN:
		begin_txn(d, m->u.begin.xid, m->u.begin.final_lsn, m->u.begin.commit_time, lsn);
		return 0;
	case PGO_COMMIT:
		return end_txn(d, m->u.commit.end_lsn, lsn, e);
	case PGO_INSERT:
	case PGO_UPDATE:
	case PGO_DELETE:
		return handle_change(d, m, lsn, e);
	case PGO_TRUNCATE:
		return handle_truncate(d, m, lsn, e);
	case PGO_MESSAGE:
		if (end && !d->in_txn && lsn > end) {
			d->reached_end = true;
			return 0;
		}
		if (strcmp(m->u.message.prefix, CATALOG_HEARTBEAT_PREFIX) == 0)
			return 0; /* a pgstream's --heartbeat-interval, no event */
		return handle_message(d, m, lsn, e);
	case PGO_RELATION:
		return prepare_relation(d, m->u.relation.rel->oid, lsn, e);
	case PGO_TYPE:
	case PGO_ORIGIN:
		return 0; /* the decoder keeps what matters */
	case PGO_STREAM_START:
		return stream_start(d, m, e);
	case PGO_STREAM_STOP:
		spool_set_stop(&d->spools);
		return 0;
	case PGO_STREAM_COMMIT:
		return stream_commit(d, m, lsn, e);
	case PGO_STREAM_ABORT:
		return stream_abort(d, m, e);
	default:
		return err_set(e, "could not handle pgoutput message '%c': not requested",
		               (char)m->type);
	}
}

static int handle_keepalive(struct daemon *d, const struct stream_frame *f, struct err *e)
{
	if (f->reply_requested)
		d->reply_now = true;
	if (d->in_txn)
		return 0;
	/* Everything before the server's WAL end has been sent and handled:
	 * acknowledging it lets an idle slot release WAL. */
	if (f->wal_end > d->written_lsn)
		d->written_lsn = f->wal_end;
	metrics_caught_up(&d->metrics);
	if (mark(d, f->wal_end, e) < 0)
		return -1;
	if (d->cfg->end_lsn && f->wal_end >= d->cfg->end_lsn)
		d->reached_end = true;
	return 0;
}

static int handle_frame(struct daemon *d, const uint8_t *data, size_t len, struct err *e)
{
	struct stream_frame f;
	struct pgo_msg m;

	if (stream_parse_frame(data, len, &f, e) < 0)
		return -1;
	metrics_frame(&d->metrics, f.type == FRAME_KEEPALIVE ? f.wal_end : f.wal_start, f.wal_end);
	if (f.type == FRAME_KEEPALIVE)
		return handle_keepalive(d, &f, e);
	if (pgoutput_in_stream(d->dec) && f.payload_len > 0 && f.payload[0] != PGO_STREAM_STOP)
		return spool_frame(d, &f, e);
	if (pgoutput_decode(d->dec, f.payload, f.payload_len, &m, e) < 0)
		return err_wrap(e, "at WAL position %X/%X", (unsigned)(f.wal_start >> 32),
		                (unsigned)f.wal_start);
	if (handle_pgoutput(d, &m, f.wal_start, e) < 0)
		return -1;
	if (!d->reached_end && f.wal_start > d->written_lsn)
		d->written_lsn = f.wal_start;
	return 0;
}

/* ---- feedback ---------------------------------------------------------- */

/* The loop's positions to the metrics (published about once a second, and
 * at every status update). */
static void tick(struct daemon *d, bool force)
{
	metrics_tick(&d->metrics, d->written_lsn, d->cp.flush_lsn, d->reported_flush,
	             d->cp.count > 0 || d->cp.flush_lsn > d->reported_flush, force);
}

/* With --metrics-addr, what the server holds for the slot, asked of the
 * catalog connection at most every SLOT_CHECK_MS, at a status update:
 * never per event. A failure is only a missing figure. */
#define SLOT_CHECK_MS 10000
static void check_slot(struct daemon *d)
{
	struct catalog_slot_info si;
	struct err ce;
	int64_t t0;

	if (d->http == NULL || clock_ms() < d->next_slot_check_ms)
		return;
	t0 = clock_us();
	d->next_slot_check_ms = clock_ms() + SLOT_CHECK_MS;
	if (catalog_slot_info(d->cat, d->cfg->slot, &si, &ce) < 0)
		log_debug("metrics: %s", ce.msg);
	else if (si.found)
		metrics_slot(&d->metrics, si.wal_lsn, si.restart_lsn, si.confirmed_lsn, si.active);
	log_debug("metrics: slot checked in %lld us", (long long)(clock_us() - t0));
}

/* --heartbeat-interval: a logical message in this database, so that the
 * walsender has something of ours to send and we to acknowledge even when
 * only unpublished tables or other databases write. At a status update,
 * so never more often than those; a failure is warned about, not fatal. */
static void heartbeat(struct daemon *d)
{
	struct err ce;

	if (d->cfg->heartbeat_interval_ms == 0 || clock_ms() < d->next_heartbeat_ms)
		return;
	d->next_heartbeat_ms = clock_ms() + d->cfg->heartbeat_interval_ms;
	if (catalog_heartbeat(d->cat, &ce) < 0) {
		if (!d->heartbeat_failing)
			log_warn("%s; trying again every %d s", ce.msg,
			         d->cfg->heartbeat_interval_ms / 1000);
		d->heartbeat_failing = true;
	} else if (d->heartbeat_failing) {
		log_info("heartbeat messages written again");
		d->heartbeat_failing = false;
	}
}

static int send_status(struct daemon *d, struct err *e)
{
	uint64_t flush;

	if (daemon_confirm(d, true, e) < 0)
		return -1;
	flush = d->cp.flush_lsn;
	/* Between transactions, ask for a keepalive back: its WAL end is the
	 * next position we may acknowledge, so an idle slot keeps moving at
	 * every status interval instead of every wal_sender_timeout / 2. */
	if (stream_send_status(d->conn, d->written_lsn > flush ? d->written_lsn : flush, flush,
	                       !d->in_txn, e) < 0)
		return -1;
	if (flush != d->reported_flush) {
		char s[LSN_STR_MAX];
		lsn_format(flush, s);
		log_debug("acknowledged %s", s);
	}
	d->reported_flush = flush;
	d->reply_now = false;
	d->next_status_ms = clock_ms() + d->cfg->status_interval_ms;
	check_slot(d);
	heartbeat(d);
	tick(d, true);
	return 0;
}

static bool status_due(const struct daemon *d)
{
	return d->reply_now || clock_ms() >= d->next_status_ms;
}

/* ---- back-pressure ------------------------------------------------------ */

/* Warn once the sink has refused data for this long. */
#define SINK_STALL_WARN_MS 5000

/*
 * The sink is full (nobody reads our stdout pipe). Decoding more would only
 * grow memory, so stop reading from the server - TCP flow control then
 * holds the walsender back - but keep sending status updates so the server
 * does not time the connection out. Nothing unwritten is acknowledged.
 * The hold's small receive buffer would not survive a long wait (conn.c):
 * it is given up first.
 */
static int wait_for_sink(struct daemon *d, struct err *e)
{
	int64_t since = clock_ms();
	bool warned = false;

	conn_release_hold(d->conn);
	while (sink_blocked(d->sink) && !*d->stop) {
		int64_t now = clock_ms();

		if (!warned && now - since >= SINK_STALL_WARN_MS) {
			log_warn("output is not being read; pausing replication (nothing unwritten "
			         "is acknowledged)");
			metrics_state(&d->metrics, METRICS_SINK_BLOCKED,
			              kafka_sink(d->cfg)
			                  ? "Kafka's producer queue is full (brokers away?)"
			                  : "output is not being read");
			warned = true;
		}
		if (status_due(d) && send_status(d, e) < 0)
			return -1;
		switch (sink_wait(d->sink, (int)(d->next_status_ms - clock_ms()), e)) {
		case -1:
			return -1;
		case 1:
			if (daemon_confirm(d, false, e) < 0)
				return -1;
		}
	}
	if (warned) {
		log_info("output is being read again; resuming replication");
		metrics_state(&d->metrics, METRICS_STREAMING, NULL);
	}
	return 0;
}

/* At shutdown, give a slow reader a bounded time to take what is buffered,
 * so the final status update can acknowledge it. */
#define SINK_DRAIN_MS 5000

static void drain_sink(struct daemon *d)
{
	int64_t deadline = clock_ms() + SINK_DRAIN_MS;
	struct err ignored;

	/* A sink that confirms later (a webhook's reply) gets the same time
	 * to confirm what it was given. */
	while ((sink_blocked(d->sink) || !sink_idle(d->sink)) && clock_ms() < deadline)
		if (sink_wait(d->sink, (int)(deadline - clock_ms()), &ignored) < 0 ||
		    sink_flush(d->sink, !sink_blocked(d->sink), &ignored) < 0)
			break;
}

/* ---- SIGHUP: reopen the output file ------------------------------------ */

static volatile sig_atomic_t reopen_requested;

void daemon_request_reopen(void)
{
	reopen_requested = 1;
}

/* The old file gets every event so far, durably (sink.h), so what it
 * confirmed may be released now; the next event starts the new file. */
static int reopen_output(struct daemon *d, struct err *e)
{
	int rc;

	reopen_requested = 0;
	rc = sink_reopen(d->sink, e);
	if (rc < 0)
		return -1;
	if (rc > 0 && !d->cfg->rotate_bytes && !d->cfg->rotate_ms) /* a series logs its own */
		log_info("reopened %s (SIGHUP)", d->cfg->output);
	else if (d->cfg->output == NULL)
		log_info("SIGHUP: nothing to reopen (events go to %s)",
		         kafka_sink(d->cfg) ? "Kafka" : "stdout");
	checkpoint_confirm(&d->cp, sink_confirmed(d->sink));
	return 0;
}

/* ---- the loop's timers and its one wait (Redis ae.c's model) ------------ */

/* The earliest moment something is due, as ae.c's usUntilEarliestTimer():
 * the next status update, and the moment a silent server counts as gone.
 * The sink adds its own when it needs a turn (wait_for_input). */
static int64_t next_deadline(const struct daemon *d)
{
	int64_t dead_at = d->last_recv_ms + d->cfg->receiver_timeout_ms;

	return d->next_status_ms < dead_at ? d->next_status_ms : dead_at;
}

/* What ae.c's beforesleep hook is to Redis: before waiting, deliver what
 * was decoded, so a consumer sees each change as soon as it is decoded
 * rather than when the next batch fills, and send a status update if one
 * is due. */
static int before_sleep(struct daemon *d, struct err *e)
{
	if (reopen_requested && reopen_output(d, e) < 0)
		return -1;
	if (daemon_confirm(d, false, e) < 0)
		return -1;
	tick(d, false);
	if (status_due(d) && send_status(d, e) < 0)
		return -1;
	return 0;
}

/*
 * The loop's one wait: for the server's data and whatever the sink waits on
 * (its sockets, its delivery reports), until the earliest deadline; then
 * the sink's turn. A server that has sent nothing at all - not even the
 * keepalive each status update asks for between transactions - for
 * --wal-receiver-timeout is presumed gone: a cut network can leave a TCP
 * connection looking open for many minutes.
 */
static int wait_for_input(struct daemon *d, struct err *e)
{
	int64_t now = clock_ms();
	int64_t dead_at = d->last_recv_ms + d->cfg->receiver_timeout_ms;
	int64_t until = next_deadline(d);
	struct sink_pollset ps;
	struct pollfd fds[SINK_POLL_MAX + 1];
	unsigned n;
	int got;

	if (now >= dead_at)
		return err_setk(e, ERR_TRANSIENT,
		                "could not read replication stream: nothing received for %d s, "
		                "connection presumed lost",
		                d->cfg->receiver_timeout_ms / 1000);
	sink_adjust_pollset(d->sink, &ps);
	if (ps.timeout_ms >= 0 && now + ps.timeout_ms < until)
		until = now + ps.timeout_ms;
	memcpy(fds, ps.fds, ps.nfds * sizeof *fds);
	n = wake_add(fds, ps.nfds);
	/* until may have passed since the caller checked: poll must not get a
	 * negative timeout, which means forever. */
	got = stream_wait(d->conn, until > now ? (int)(until - now) : 0, fds, n, e);
	if (got < 0)
		return -1;
	for (unsigned i = 0; i < ps.nfds; i++)
		ps.fds[i].revents = fds[i].revents;
	wake_drain(&fds[ps.nfds]);
	if (got > 0)
		d->last_recv_ms = clock_ms();
	return sink_process(d->sink, &ps, e);
}

/* ---- one session: connect, stream until stop, end or error -------------- */

static int stream_loop(struct daemon *d, struct err *e)
{
	unsigned frames = 0;

	while (!*d->stop && !d->reached_end) {
		uint8_t *data;
		size_t len;
		int n;

		if (sink_blocked(d->sink)) {
			if (wait_for_sink(d, e) < 0)
				return -1;
			d->last_recv_ms = clock_ms(); /* we were not listening */
			continue;
		}
		n = stream_recv(d->conn, &data, &len, e);

		if (n < 0)
			return -1;
		if (n > 0) {
			int rc;

			if (++frames % FRAMES_PER_CLOCK_CHECK == 0) {
				d->last_recv_ms = clock_ms();
				tick(d, false); /* metrics stay fresh under load */
			}
			rc = handle_frame(d, data, len, e);
			stream_free(data);
			if (rc < 0)
				return -1;
			if (frames % FRAMES_PER_CLOCK_CHECK == 0 && status_due(d) &&
			    send_status(d, e) < 0)
				return -1;
			if (d->reply_now && send_status(d, e) < 0)
				return -1;
			continue;
		}
		/* Nothing buffered: read on at once if more is probably there;
		 * else deliver what was decoded, then wait. */
		n = stream_read_on(d->conn, e);
		if (n < 0)
			return -1;
		if (n > 0) {
			d->last_recv_ms = clock_ms();
			continue;
		}
		if (before_sleep(d, e) < 0 || wait_for_input(d, e) < 0)
			return -1;
	}
	return 0;
}

static void session_end(struct daemon *d)
{
	backfill_session_end(d->bf);
	spool_set_reset(&d->spools); /* the server sends unfinished ones again */
	catalog_disconnect(d->cat);
	relmap_clear(d->rels); /* its relations go with the decoder */
	pgoutput_free(d->dec);
	d->dec = NULL;
	conn_close(d->conn);
	d->conn = NULL;
	d->in_txn = false;
	d->txn_opened = false; /* the server sends the transaction again, begin and all */
}

/* A pattern that matches nothing is most likely a typo: say so once, at
 * the first start, against the publication's tables as they are then. */
static void warn_unmatched(struct daemon *d)
{
	struct buf tables, columns;
	struct err ce;

	if (!filter_has_columns(&d->filter) && d->filter.include.n == 0 && d->filter.exclude.n == 0)
		return;
	buf_init(&tables, 0);
	buf_init(&columns, 0);
	if (catalog_publication_names(d->cat, d->cfg->publication, &tables, &columns, &ce) < 0)
		log_warn("%s; the filter's patterns are not checked", ce.msg);
	else
		filter_warn_unmatched(&d->filter, tables.data, tables.len, columns.data,
		                      columns.len);
	buf_reset(&tables);
	buf_reset(&columns);
}

/* What --start-lsn does against the slot's position, said once at start:
 * the server never goes below the slot, and starting above it skips what
 * lies between for good once pgstream acknowledges past it. */
static void say_start_lsn(uint64_t start, uint64_t slot_at)
{
	char want[LSN_STR_MAX], at[LSN_STR_MAX];

	lsn_format(start, want);
	lsn_format(slot_at, at);
	if (start < slot_at)
		log_warn("--start-lsn %s is before the slot's confirmed position %s: the server "
		         "starts at %s (what lies before was acknowledged already)",
		         want, at, at);
	else if (start > slot_at)
		log_warn("--start-lsn %s is ahead of the slot's confirmed position %s: changes "
		         "committed between them are skipped, and gone from the slot once pgstream "
		         "acknowledges past %s",
		         want, at, want);
	else
		log_info("--start-lsn %s is the slot's confirmed position", want);
}

static int run_session(struct daemon *d, struct err *e)
{
	struct conn_info info;
	uint64_t start;
	char s[LSN_STR_MAX];
	int rc;

	d->session_streamed = false;
	metrics_state(&d->metrics, METRICS_CONNECTING, NULL);
	if (!d->waiting_for_slot)
		log_info("connecting to postgres...");
	d->conn = conn_open(&d->params, &info, e);
	if (d->conn == NULL)
		return -1;
	if (!d->waiting_for_slot)
		log_info("connected!");
	if (conn_prepare(d->conn, &d->params, &info, e) < 0) {
		session_end(d);
		return -1;
	}
	log_debug("server %s, version %d, encoding %s", info.description, info.server_version,
	          info.server_encoding);
	snprintf(d->encoding, sizeof d->encoding, "%s", info.server_encoding);
	snprintf(d->dbname, sizeof d->dbname, "%s", info.dbname);
	d->sql_ascii = strcmp(d->encoding, "SQL_ASCII") == 0;
	d->convert_messages = !d->sql_ascii && strcmp(d->encoding, "UTF8") != 0;
	if (d->sql_ascii)
		log_info("database encoding SQL_ASCII: text is sent as stored, bytes that are not "
		         "UTF-8 are %s",
		         d->utf8.policy == UTF8_FAIL ? "refused (--invalid-utf8=fail)"
		                                     : "replaced with U+FFFD and warned about");

	if (info.snapshot[0]) {
		rc = daemon_initial_snapshot(d, &info, e);
		if (rc != 0 || d->cfg->snapshot == SNAPSHOT_INITIAL_ONLY) {
			session_end(d); /* the temporary slot goes with it */
			return rc < 0 ? -1 : 0;
		}
		if (!d->cfg->temporary_slot) {
			/* The snapshot is complete and confirmed: only now does the
			 * slot exist, so a start after a crash before this point
			 * snapshots again instead of streaming without the rows. */
			rc = catalog_copy_slot(d->cat, info.snapshot_slot, d->cfg->slot, e);
			session_end(d);
			if (rc < 0)
				return -1;
			log_info("replication slot created: %s, at the snapshot's consistent point",
			         d->cfg->slot);
			d->params.export_snapshot = false;
			d->session_snapshotted = true;
			return run_session(d, e);
		}
	}
	if (sink_resume_lsn(d->sink) > info.xlogpos) {
		char at[LSN_STR_MAX], wal[LSN_STR_MAX];

		lsn_format(sink_resume_lsn(d->sink), at);
		lsn_format(info.xlogpos, wal);
		session_end(d);
		return err_set(
		    e,
		    "could not resume: the sink's checkpoint is at a transaction committed "
		    "at %s, but this server's WAL ends at %s: it was written for another "
		    "database (or before a restore); give this one another "
		    "--kafka-transactional-id",
		    at, wal);
	}
	if (d->params.export_snapshot && !d->session_snapshotted)
		log_info("no snapshot: slot %s exists (a snapshot is taken only when pgstream "
		         "creates the slot)",
		         d->cfg->slot);
	d->params.export_snapshot = false;
	backfill_session_start(d->bf, info.server_version);
	d->dec = pgoutput_new(info.proto_version);
	if (d->dec == NULL) {
		session_end(d);
		return err_set(e, "could not create decoder: out of memory");
	}
	/* Resume where our sink confirmed, which may be ahead of what the
	 * server last heard from us; the server never goes below its slot. */
	start = d->cp.flush_lsn ? d->cp.flush_lsn : d->cfg->start_lsn;
	lsn_format(start, s);
	if (!d->ever_streamed && d->cfg->start_lsn)
		say_start_lsn(d->cfg->start_lsn, info.slot_confirmed_lsn);
	log_info("starting replication...");
	if (log_get_level() <= LOG_DEBUG) {
		char slot_at[LSN_STR_MAX], wal_at[LSN_STR_MAX];

		lsn_format(info.slot_confirmed_lsn, slot_at);
		lsn_format(info.xlogpos, wal_at);
		log_debug("start_replication at %s (slot confirmed at %s, server WAL at %s), "
		          "server %d: proto_version %d, messages %s, streaming %s, origin %s",
		          s, slot_at, wal_at, info.server_version, info.proto_version,
		          info.messages ? "on" : "off", info.streaming ? "on" : "off",
		          d->params.origin ? d->params.origin : "not sent");
	}
	if (conn_start_replication(d->conn, &d->params, &info, start, e) < 0) {
		session_end(d);
		return -1;
	}
	if (!d->ever_streamed)
		warn_unmatched(d);
	if (d->waiting_for_slot)
		log_info("replication slot %s was released", d->cfg->slot);
	d->waiting_for_slot = false;
	d->ever_streamed = d->session_streamed = true;
	d->params.slot_must_exist = true;
	log_info("listening for changes...");
	metrics_state(&d->metrics, METRICS_STREAMING, NULL);
	d->next_status_ms = clock_ms() + d->cfg->status_interval_ms;
	d->last_recv_ms = clock_ms();
	rc = stream_loop(d, e);
	if (rc == 0) {
		/* Clean stop: everything durable, acknowledged, copy ended. */
		drain_sink(d);
		rc = send_status(d, e);
		if (rc == 0)
			stream_end(d->conn);
	}
	session_end(d);
	return rc;
}

/* Sleep ms in slices so a signal ends the wait promptly. */
static void backoff_sleep(struct daemon *d, int ms)
{
	int64_t until = clock_ms() + ms;

	while (!*d->stop && clock_ms() < until) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* One debug line at exit, for operators and for the memory tests. VmHWM,
 * not getrusage(): Linux carries ru_maxrss over from before execve(), so it
 * would report the parent's size. */
static void log_peak_memory(const struct daemon *d)
{
	char line[128];
	long peak_kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &peak_kb) == 1)
			break;
	if (f)
		fclose(f);
	log_debug("exiting after %llu events, peak RSS %ld kB", (unsigned long long)d->seq,
	          peak_kb);
}

/* Pretty only for a person reading stdout: never for a broker or server. */
static const char *pick_format(const struct config *cfg)
{
	bool to_stdout = cfg->sink ? strcmp(cfg->sink, "stdout") == 0 : true;

	if (cfg->format)
		return cfg->format;
	if (to_stdout && (cfg->output == NULL || strcmp(cfg->output, "-") == 0) &&
	    isatty(STDOUT_FILENO))
		return "pretty";
	return "json";
}

/* The sink's settings, borrowed from cfg: what every sink may read, and
 * the values of the sinks' own options, which only the sink interprets. */
static struct sink_config sink_config_of(const struct config *cfg)
{
	return (struct sink_config){
	    .sink = cfg->sink,
	    .output = cfg->output,
	    .fsync = cfg->fsync,
	    .rotate_bytes = cfg->rotate_bytes,
	    .rotate_ms = cfg->rotate_ms,
	    .rotate_compress = cfg->rotate_compress,
	    .prefix = cfg->topic_prefix ? cfg->topic_prefix : cfg->slot,
	    .slot = cfg->slot,
	    .tx_events = cfg->tx_events,
	    .format = cfg->format,
	    .values = cfg->sink_values,
	    .nvalues = cfg->nsink_values,
	};
}

/* backfill.h's prepare hook: its tables' relations made ready as the
 * stream's are. */
static struct relinfo *prepare_backfill_relation(void *ctx, struct relmap *map,
                                                 const struct relation *rel, struct err *e)
{
	return daemon_refine_relation(ctx, map, rel, 0, e);
}

int daemon_request_snapshot(const struct config *cfg, struct err *e)
{
	return backfill_request(cfg->database_url, cfg->slot, cfg->snapshot_tables, e);
}

static struct filter_config filter_config_of(const struct config *cfg)
{
	return (struct filter_config){
	    .include_tables = cfg->include_tables,
	    .exclude_tables = cfg->exclude_tables,
	    .exclude_columns = cfg->exclude_columns,
	    .mask_columns = cfg->mask_columns,
	    .mask_secret = cfg->mask_secret,
	    .allow_key = cfg->allow_key_filter,
	};
}

int daemon_check_config(const struct config *cfg, struct err *e)
{
	struct sink_config scfg = sink_config_of(cfg);
	struct filter_config fcfg = filter_config_of(cfg);
	struct filter f;

	if (filter_init(&f, &fcfg, e) < 0)
		return -1;
	filter_reset(&f);
	if (cfg->metrics_addr && ops_http_check_addr(cfg->metrics_addr, e) < 0)
		return -1;
	return sink_check_config(&scfg, e);
}

static int run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e)
{
	struct sink_config scfg = sink_config_of(cfg);
	struct daemon d = {
	    .cfg = cfg,
	    .stop = stop,
	    .params =
	        {
	            .database_url = cfg->database_url,
	            .slot = cfg->slot,
	            .publication = cfg->publication,
	            .tables = cfg->tables,
	            .temporary_slot = cfg->temporary_slot,
	            .create_publication = cfg->create_publication,
	            .allow_no_identity = cfg->allow_no_identity,
	            .failover_slot = cfg->failover_slot,
	            .streaming = cfg->streaming,
	            .origin = cfg->origin == ORIGIN_NONE  ? "none"
	                      : cfg->origin == ORIGIN_ANY ? "any"
	                                                  : NULL,
	            .read_delay_us = cfg->read_delay_us,
	            .read_hold = cfg->read_hold,
	            .export_snapshot = cfg->snapshot != SNAPSHOT_NEVER,
	            .snapshot_only = cfg->snapshot == SNAPSHOT_INITIAL_ONLY,
	        },
	};
	struct filter_config fcfg = filter_config_of(cfg);
	int backoff = RECONNECT_INITIAL_MS;
	int busy_waited_ms = 0;
	int rc;

	if (filter_init(&d.filter, &fcfg, e) < 0)
		return -1;
	utf8guard_init(&d.utf8, cfg->invalid_utf8);
	txmeta_init(&d.txmeta);
	buf_init(&d.converted, 0);
	buf_init(&d.key, 0);
	buf_init(&d.old_key, 0);
	if (metrics_init(&d.metrics, cfg->slot, cfg->publication, cfg->status_interval_ms, e) < 0) {
		filter_reset(&d.filter);
		return -1;
	}
	d.sink = sink_open(&scfg, e);
	if (d.sink == NULL) {
		filter_reset(&d.filter);
		metrics_reset(&d.metrics);
		return -1;
	}
	if (cfg->metrics_addr &&
	    (d.http = ops_http_start(cfg->metrics_addr, &d.metrics, e)) == NULL) {
		sink_close(d.sink);
		filter_reset(&d.filter);
		metrics_reset(&d.metrics);
		return -1;
	}
	d.records = sink_wants_records(d.sink);
	d.keys = sink_wants_keys(d.sink);
	struct encoder_options eopt = {
	    .topic_prefix = cfg->topic_prefix ? cfg->topic_prefix : cfg->slot,
	    .database = d.dbname,
	    .decimal = cfg->debezium_decimal,
	    .connect_times = cfg->debezium_connect_times,
	    .interval_iso = cfg->debezium_interval_iso,
	    .schemas = cfg->debezium_schemas,
	    .postgres_times = cfg->postgres_times,
	    .numeric_strings = cfg->numeric_strings,
	    .toast = cfg->unchanged_toast,
	    .placeholder = cfg->toast_placeholder,
	};

	d.enc = encoder_new(pick_format(cfg), &eopt);
	/* Kafka keys are json's: its options, and a key column is never an
	 * unchanged TOAST value in the tuple the key is taken from (key.h). */
	d.key_opts = encoder_row_opts(&eopt, false);
	d.rels = relmap_new();
	d.cat = catalog_new(cfg->database_url);
	d.bf = backfill_new(&(struct backfill_config){
	    .database_url = cfg->database_url,
	    .publication = cfg->publication,
	    .slot = cfg->slot,
	    .chunk_rows = cfg->snapshot_chunk_rows,
	    .prepare = prepare_backfill_relation,
	    .ctx = &d,
	});
	if (d.enc == NULL || d.rels == NULL || d.cat == NULL || d.bf == NULL ||
	    checkpoint_init(&d.cp, CHECKPOINT_MARKS, 0) < 0) {
		backfill_free(d.bf);
		catalog_free(d.cat);
		relmap_free(d.rels);
		encoder_free(d.enc);
		ops_http_stop(d.http);
		sink_close(d.sink);
		filter_reset(&d.filter);
		metrics_reset(&d.metrics);
		return err_set(e, "could not start: out of memory");
	}
	for (;;) {
		rc = run_session(&d, e);
		if (rc == 0 || *stop)
			break;
		/* A slot still held by the walsender of a client that just died
		 * (a crash, then a quick restart by a supervisor) is released as
		 * soon as the server notices: worth a short wait even at start. */
		if (e->kind == ERR_BUSY && !d.ever_streamed &&
		    busy_waited_ms < SLOT_BUSY_GRACE_MS) {
			if (busy_waited_ms == 0)
				log_info("%s; waiting up to %d s for it to be released", e->msg,
				         SLOT_BUSY_GRACE_MS / 1000);
			metrics_state(&d.metrics, METRICS_CONNECTING, e->msg);
			d.waiting_for_slot = true;
			backoff_sleep(&d, SLOT_BUSY_POLL_MS);
			busy_waited_ms += SLOT_BUSY_POLL_MS;
			if (*stop)
				break;
			continue;
		}
		/* The sink dropped every event after the last it confirmed (an
		 * aborted Kafka transaction): number them again from there, forget
		 * the acknowledgements they would have earned, and have the server
		 * send them again from the last acknowledged position. */
		if (e->kind == ERR_REPLAY) {
			d.seq = sink_confirmed(d.sink);
			checkpoint_discard(&d.cp, d.seq);
		}
		/* Retry only what a retry can cure, and only once we have streamed:
		 * a first connection that fails is a configuration problem to
		 * report, not to hide behind retries. */
		metrics_error(&d.metrics, e,
		              (e->kind == ERR_TRANSIENT || e->kind == ERR_BUSY) && d.ever_streamed);
		if ((e->kind != ERR_TRANSIENT && e->kind != ERR_BUSY && e->kind != ERR_REPLAY) ||
		    !d.ever_streamed)
			break;
		if (d.session_streamed)
			backoff = RECONNECT_INITIAL_MS; /* it worked for a while */
		log_msg(e->kind == ERR_REPLAY ? LOG_WARN : LOG_INFO, "reconnecting in %d s: %s",
		        (backoff + 999) / 1000, e->msg);
		backoff_sleep(&d, backoff);
		if (*stop) {
			rc = 0;
			break;
		}
		backoff = backoff * 2 > cfg->reconnect_max_ms ? cfg->reconnect_max_ms : backoff * 2;
	}
	if (*stop)
		rc = 0;
	metrics_state(&d.metrics, METRICS_STOPPING, rc < 0 ? e->msg : NULL);
	if (rc == 0 || e->kind != ERR_SINK) {
		struct err ignored;
		/* Whatever was decoded reaches the sink even if it cannot be
		 * acknowledged any more: repeats are allowed, losses are not. */
		drain_sink(&d);
		if (daemon_confirm(&d, true, &ignored) < 0)
			log_warn("%s", ignored.msg);
	}
	utf8guard_log_summary(&d.utf8);
	buf_reset(&d.converted);
	buf_reset(&d.key);
	buf_reset(&d.old_key);
	checkpoint_reset(&d.cp);
	backfill_free(d.bf);
	catalog_free(d.cat);
	relmap_free(d.rels);
	encoder_free(d.enc);
	ops_http_stop(d.http);
	sink_close(d.sink);
	filter_reset(&d.filter);
	txmeta_reset(&d.txmeta);
	metrics_reset(&d.metrics);
	log_peak_memory(&d);
	return rc;
}

int daemon_run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e)
{
	int rc;

	if (wake_open(e) < 0)
		return -1;
	rc = run(cfg, stop, e);
	wake_close();
	return rc;
}
