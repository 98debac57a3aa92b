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
 * only what it confirmed is reported as flushed.
 */
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "event/encoder.h"
#include "event/key.h"
#include "event/map.h"
#include "event/relinfo.h"
#include "event/utf8guard.h"
#include "pg/catalog.h"
#include "pg/conn.h"
#include "pg/pgoutput.h"
#include "pg/stream.h"
#include "sink/sink.h"
#include "spool.h"
#include "util/log.h"
#include "util/lsn.h"

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

struct daemon {
	const struct config *cfg;
	struct conn_params params;
	volatile sig_atomic_t *stop;
	struct encoder *enc;
	char dbname[64]; /* the encoder's options.database, filled on connecting */

	struct sink *sink;
	struct catalog *cat;
	struct checkpoint cp;
	uint64_t seq;            /* number of the last event handed to the sink */
	uint64_t written_lsn;    /* highest WAL position processed */
	uint64_t reported_flush; /* last flush LSN sent to the server */
	struct utf8guard utf8;   /* SQL_ASCII databases only (utf8guard.h) */
	struct buf converted;    /* message content converted to UTF-8 */
	bool records;            /* the sink routes by table and key (Kafka) */
	bool keys;               /* ... and reads the keys (not the webhook, files) */
	struct buf key, old_key; /* ... the current event's keys */

	/* Per session. */
	struct pg_conn *conn;
	struct pgo_decoder *dec;
	struct relmap *rels;   /* what we derive from the decoder's relations */
	char encoding[32];     /* the database's, as the server names it */
	bool sql_ascii;        /* ... and it is SQL_ASCII (utf8guard.h) */
	bool convert_messages; /* ... neither that nor UTF8: message content is converted */
	bool in_txn;
	struct event_txn txn;
	bool reached_end;
	bool reply_now;
	/* Streamed transactions not yet committed or aborted (--streaming). */
	struct spool_set spools;
	int64_t next_status_ms;
	int64_t last_recv_ms; /* when the server was last heard from */

	bool ever_streamed;    /* some session reached START_REPLICATION */
	bool session_streamed; /* the last session did */
};

/* ---- events ------------------------------------------------------------ */

/* What a routing sink needs of ev besides its bytes (sink.h): names, keys
 * (rendered into d's buffers, valid until the next event) and positions. */
static int emit_routed(struct daemon *d, const struct event *ev, struct err *e)
{
	struct sink_record rec = {
	    .delete = ev->op == EVENT_DELETE,
	    .transactional = ev->txn != NULL,
	    .lsn = ev->lsn,
	    .commit_lsn = ev->txn ? ev->txn->commit_lsn : 0,
	    .xid = ev->txn ? ev->txn->xid : 0,
	};

	if (ev->op != EVENT_MESSAGE) {
		rec.schema = ev->rel->remote->nspname;
		rec.table = ev->rel->remote->relname;
	}
	buf_clear(&d->key);
	buf_clear(&d->old_key);
	if (!d->keys)
		return sink_event_done(d->sink, ++d->seq, &rec, e);
	if (key_write(&d->key, ev)) {
		rec.key = d->key.data;
		rec.key_len = d->key.len;
	}
	if (key_write_old(&d->old_key, ev, rec.key, rec.key_len)) {
		rec.old_key = d->old_key.data;
		rec.old_key_len = d->old_key.len;
	}
	if (!buf_ok(&d->key) || !buf_ok(&d->old_key))
		return err_setk(e, ERR_SINK, "could not encode the key of the event at %X/%X: %s",
		                (unsigned)(ev->lsn >> 32), (unsigned)ev->lsn,
		                d->key.nomem || d->old_key.nomem ? "out of memory"
		                                                 : "key larger than 1 GiB");
	return sink_event_done(d->sink, ++d->seq, &rec, e);
}

static int emit(struct daemon *d, const struct event *ev, struct err *e)
{
	if (d->sql_ascii && utf8guard_check_event(&d->utf8, ev, e) < 0)
		return -1;
	encoder_write(d->enc, sink_buf(d->sink), ev);
	if (d->records)
		return emit_routed(d, ev, e);
	return sink_event_done(d->sink, ++d->seq, NULL, e);
}

/* Make the sink durable and release what it confirmed. */
static int confirm(struct daemon *d, bool durable, struct err *e)
{
	if (sink_flush(d->sink, durable, e) < 0)
		return -1;
	checkpoint_confirm(&d->cp, sink_confirmed(d->sink));
	return 0;
}

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
		if (confirm(d, true, e) < 0)
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
	return emit(d, &ev, e);
}

static int handle_truncate(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e)
{
	for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
		struct event ev;

		if (map_truncate(m, i, lsn, current_txn(d), d->rels, &ev, e) < 0 ||
		    emit(d, &ev, e) < 0)
			return -1;
	}
	return 0;
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
	return emit(d, &ev, e);
}

/* A transaction's events begin (at BEGIN, or at a streamed transaction's
 * commit). False if it committed after --end-lsn: it is not ours, and the
 * run ends instead. */
static bool begin_txn(struct daemon *d, uint32_t xid, uint64_t commit_lsn, int64_t commit_time)
{
	if (d->cfg->end_lsn && commit_lsn > d->cfg->end_lsn) {
		d->reached_end = true;
		return false;
	}
	d->in_txn = true;
	d->txn.xid = xid;
	d->txn.commit_lsn = commit_lsn;
	d->txn.commit_time = commit_time;
	return true;
}

/* The transaction's events are all out: its end may be acknowledged once
 * they are confirmed. Reaching --end-lsn ends the run. */
static int end_txn(struct daemon *d, uint64_t end_lsn, struct err *e)
{
	d->in_txn = false;
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
static int stream_commit(struct daemon *d, const struct pgo_msg *m, struct err *e)
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
	               m->u.stream_commit.commit_time))
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
	return end_txn(d, m->u.stream_commit.end_lsn, e);
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

/* Under REPLICA IDENTITY FULL pgoutput flags every column as the key, so a
 * key made of them changes with every update and moves the row between
 * partitions: key such a table by its primary key (or replica identity
 * index) from the catalog instead. Without either, or when the catalog
 * cannot be asked (warned), the whole row stays the key. */
static int full_identity_key(struct daemon *d, struct relinfo *ri, struct err *e)
{
	const struct relation *rel = ri->remote;
	struct buf names;
	struct err ce;
	int n, found = 0;

	buf_init(&names, 0);
	n = catalog_primary_key(d->cat, rel->oid, &names, &ce);
	if (n < 0)
		log_warn("%s; the Kafka key of %s.%s (REPLICA IDENTITY FULL) is the whole row",
		         ce.msg, rel->nspname, rel->relname);
	if (n > 0 && rel->ncols > 0 && (ri->key = calloc(rel->ncols, sizeof *ri->key)) == NULL) {
		buf_reset(&names);
		return err_set(e, "could not follow stream: out of memory");
	}
	for (size_t off = 0; n > 0 && off < names.len; off += strlen(names.data + off) + 1)
		for (uint16_t i = 0; i < rel->ncols; i++)
			if (strcmp(rel->cols[i].name, names.data + off) == 0) {
				ri->key[i] = true;
				found++;
				break;
			}
	/* A key column the stream does not carry (a column list leaving it
	 * out) would make rows of different keys look alike: keep the row. */
	if (n > 0 && found != n) {
		free(ri->key);
		ri->key = NULL;
	}
	buf_reset(&names);
	return 0;
}

/* A Relation message arrived: domains and arrays of user types render like
 * their base types, so ask the catalog (a failed lookup leaves those
 * columns text, loudly); then let the encoder derive what it needs once.
 * Fails only for names that are not UTF-8 under --invalid-utf8=fail, or
 * out of memory. */
static int prepare_relation(struct daemon *d, uint32_t relid, uint64_t lsn, struct err *e)
{
	const struct relation *rel = relcache_get(pgoutput_relcache(d->dec), relid);
	struct relinfo *ri;
	struct err ce;

	if (rel == NULL)
		return 0;
	if (d->sql_ascii && utf8guard_check_relation(&d->utf8, rel, lsn, e) < 0)
		return -1;
	ri = relmap_update(d->rels, rel);
	if (ri == NULL)
		return err_set(e, "could not follow stream: out of memory");
	for (uint16_t i = 0; i < rel->ncols; i++) {
		struct coltype *t = &ri->types[i];

		if (t->base < CATALOG_FIRST_USER_OID)
			continue;
		if (catalog_type_base(d->cat, t->base, &t->base, &t->array, &ce) < 0) {
			log_warn("%s; user-defined types of %s.%s are emitted as strings", ce.msg,
			         rel->nspname, rel->relname);
			for (; i < rel->ncols; i++)
				if (ri->types[i].base >= CATALOG_FIRST_USER_OID)
					ri->types[i] = (struct coltype){0, false};
			break;
		}
	}
	if (d->keys && rel->replident == 'f' && full_identity_key(d, ri, e) < 0)
		return -1;
	encoder_prepare_relation(d->enc, ri);
	return 0;
}

/* One pgoutput message at WAL position lsn (its XLogData start). */
static int handle_pgoutput(struct daemon *d, const struct pgo_msg *m, uint64_t lsn, struct err *e)
{
	uint64_t end = d->cfg->end_lsn;

	switch (m->type) {
	case PGO_BEGIN:
		begin_txn(d, m->u.begin.xid, m->u.begin.final_lsn, m->u.begin.commit_time);
		return 0;
	case PGO_COMMIT:
		return end_txn(d, m->u.commit.end_lsn, e);
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
		return stream_commit(d, m, e);
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

static int send_status(struct daemon *d, struct err *e)
{
	uint64_t flush;

	if (confirm(d, true, e) < 0)
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
			warned = true;
		}
		if (status_due(d) && send_status(d, e) < 0)
			return -1;
		switch (sink_wait(d->sink, (int)(d->next_status_ms - clock_ms()), e)) {
		case -1:
			return -1;
		case 1:
			if (confirm(d, false, e) < 0)
				return -1;
		}
	}
	if (warned)
		log_info("output is being read again; resuming replication");
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
	if (confirm(d, false, e) < 0)
		return -1;
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
	int got;

	if (now >= dead_at)
		return err_setk(e, ERR_TRANSIENT,
		                "could not read replication stream: nothing received for %d s, "
		                "connection presumed lost",
		                d->cfg->receiver_timeout_ms / 1000);
	sink_adjust_pollset(d->sink, &ps);
	if (ps.timeout_ms >= 0 && now + ps.timeout_ms < until)
		until = now + ps.timeout_ms;
	/* until may have passed since the caller checked: poll must not get a
	 * negative timeout, which means forever. */
	got = stream_wait(d->conn, until > now ? (int)(until - now) : 0, ps.fds, ps.nfds, e);
	if (got < 0)
		return -1;
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

			if (++frames % FRAMES_PER_CLOCK_CHECK == 0)
				d->last_recv_ms = clock_ms();
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
	spool_set_reset(&d->spools); /* the server sends unfinished ones again */
	catalog_disconnect(d->cat);
	relmap_clear(d->rels); /* its relations go with the decoder */
	pgoutput_free(d->dec);
	d->dec = NULL;
	conn_close(d->conn);
	d->conn = NULL;
	d->in_txn = false;
}

static int run_session(struct daemon *d, struct err *e)
{
	struct conn_info info;
	uint64_t start;
	char s[LSN_STR_MAX];
	int rc;

	d->session_streamed = false;
	log_info("connecting to postgres...");
	d->conn = conn_open(&d->params, &info, e);
	if (d->conn == NULL)
		return -1;
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

	d->dec = pgoutput_new(info.proto_version);
	if (d->dec == NULL) {
		session_end(d);
		return err_set(e, "could not create decoder: out of memory");
	}
	/* Resume where our sink confirmed, which may be ahead of what the
	 * server last heard from us; the server never goes below its slot. */
	start = d->cp.flush_lsn ? d->cp.flush_lsn : d->cfg->start_lsn;
	lsn_format(start, s);
	log_info("starting replication...");
	if (log_get_level() <= LOG_DEBUG) {
		char slot_at[LSN_STR_MAX], wal_at[LSN_STR_MAX];

		lsn_format(info.slot_confirmed_lsn, slot_at);
		lsn_format(info.xlogpos, wal_at);
		log_debug("start_replication at %s (slot confirmed at %s, server WAL at %s), "
		          "server %d: proto_version %d, messages %s, streaming %s",
		          s, slot_at, wal_at, info.server_version, info.proto_version,
		          info.messages ? "on" : "off", info.streaming ? "on" : "off");
	}
	if (conn_start_replication(d->conn, &d->params, &info, start, e) < 0) {
		session_end(d);
		return -1;
	}
	d->ever_streamed = d->session_streamed = true;
	d->params.slot_must_exist = true;
	log_info("listening for changes...");
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

/* The sink's settings, borrowed from cfg. */
static struct sink_config sink_config_of(const struct config *cfg)
{
	struct sink_config scfg = {.output = cfg->output,
	                           .fsync = cfg->fsync,
	                           .rotate_bytes = cfg->rotate_bytes,
	                           .rotate_ms = cfg->rotate_ms};
	const char *library;

	/* config.c accepted only names this build has. */
	if (cfg->sink == NULL || sink_kind_named(cfg->sink, &scfg.kind, &library) != 1)
		scfg.kind = SINK_KIND_DEFAULT;
	scfg.kafka = (struct sink_kafka_config){
	    .brokers = cfg->kafka_brokers,
	    .prefix = cfg->topic_prefix ? cfg->topic_prefix : cfg->slot,
	    .topic = cfg->kafka_topic ? cfg->kafka_topic : "{prefix}.{schema}.{table}",
	    .messages_topic =
	        cfg->kafka_messages_topic ? cfg->kafka_messages_topic : "{prefix}.messages",
	    .properties = cfg->kafka_properties,
	    .tombstones = cfg->kafka_tombstones,
	};
	scfg.webhook = (struct sink_webhook_config){
	    .url = cfg->webhook_url,
	    .secret = cfg->webhook_secret,
	    .headers = cfg->webhook_headers,
	    .prefix = scfg.kafka.prefix,
	    .body = cfg->webhook_body,
	    .batch_events = cfg->webhook_batch_size,
	    .batch_bytes = cfg->webhook_batch_bytes,
	    .linger_ms = cfg->webhook_linger_ms,
	    .timeout_ms = cfg->webhook_timeout_ms,
	    .retry_max_ms = cfg->webhook_retry_max_ms,
	};
	scfg.redis = (struct sink_redis_config){
	    .url = cfg->redis_url,
	    .prefix = scfg.kafka.prefix,
	    .maxlen = cfg->redis_maxlen,
	};
	return scfg;
}

int daemon_check_config(const struct config *cfg, struct err *e)
{
	struct sink_config scfg = sink_config_of(cfg);

	return sink_check_config(&scfg, e);
}

int daemon_run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e)
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
	            .streaming = cfg->streaming,
	            .read_delay_us = cfg->read_delay_us,
	            .read_hold = cfg->read_hold,
	        },
	};
	int backoff = RECONNECT_INITIAL_MS;
	int busy_waited_ms = 0;
	int rc;

	utf8guard_init(&d.utf8, cfg->invalid_utf8);
	buf_init(&d.converted, 0);
	buf_init(&d.key, 0);
	buf_init(&d.old_key, 0);
	d.sink = sink_open(&scfg, e);
	if (d.sink == NULL)
		return -1;
	d.records = sink_wants_records(d.sink);
	d.keys = sink_wants_keys(d.sink);
	d.enc = encoder_new(pick_format(cfg),
	                    &(struct encoder_options){
	                        .topic_prefix = cfg->topic_prefix ? cfg->topic_prefix : cfg->slot,
	                        .database = d.dbname,
	                        .decimal = cfg->debezium_decimal,
	                    });
	d.rels = relmap_new();
	d.cat = catalog_new(cfg->database_url);
	if (d.enc == NULL || d.rels == NULL || d.cat == NULL ||
	    checkpoint_init(&d.cp, CHECKPOINT_MARKS, 0) < 0) {
		catalog_free(d.cat);
		relmap_free(d.rels);
		encoder_free(d.enc);
		sink_close(d.sink);
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
			backoff_sleep(&d, SLOT_BUSY_POLL_MS);
			busy_waited_ms += SLOT_BUSY_POLL_MS;
			if (*stop)
				break;
			continue;
		}
		/* Retry only what a retry can cure, and only once we have streamed:
		 * a first connection that fails is a configuration problem to
		 * report, not to hide behind retries. */
		if ((e->kind != ERR_TRANSIENT && e->kind != ERR_BUSY) || !d.ever_streamed)
			break;
		if (d.session_streamed)
			backoff = RECONNECT_INITIAL_MS; /* it worked for a while */
		log_info("reconnecting in %d s: %s", (backoff + 999) / 1000, e->msg);
		backoff_sleep(&d, backoff);
		if (*stop) {
			rc = 0;
			break;
		}
		backoff = backoff * 2 > cfg->reconnect_max_ms ? cfg->reconnect_max_ms : backoff * 2;
	}
	if (*stop)
		rc = 0;
	if (rc == 0 || e->kind != ERR_SINK) {
		struct err ignored;
		/* Whatever was decoded reaches the sink even if it cannot be
		 * acknowledged any more: repeats are allowed, losses are not. */
		drain_sink(&d);
		if (confirm(&d, true, &ignored) < 0)
			log_warn("%s", ignored.msg);
	}
	utf8guard_log_summary(&d.utf8);
	buf_reset(&d.converted);
	buf_reset(&d.key);
	buf_reset(&d.old_key);
	checkpoint_reset(&d.cp);
	catalog_free(d.cat);
	relmap_free(d.rels);
	encoder_free(d.enc);
	sink_close(d.sink);
	log_peak_memory(&d);
	return rc;
}
