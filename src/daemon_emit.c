/*
 * daemon_emit.c — an event from the daemon to the sink: filtered, checked
 * (SQL_ASCII databases), numbered within its transaction (--tx-events,
 * opening the transaction's begin event first), routed by table and key for
 * the sinks that route, encoded into the sink's buffer, counted in the
 * metrics; and what the sink has confirmed taken into the checkpoint.
 */
#include "daemon_int.h"

#include "event/key.h"
#include "sink/sink.h"
#include "util/lsn.h"

/* metrics_event's operation for an event (ops/ sees no events). */
static int metrics_op(enum event_op op)
{
	switch (op) {
	case EVENT_INSERT:
		return METRICS_INSERT;
	case EVENT_UPDATE:
		return METRICS_UPDATE;
	case EVENT_DELETE:
		return METRICS_DELETE;
	case EVENT_TRUNCATE:
		return METRICS_TRUNCATE;
	case EVENT_READ:
		return METRICS_READ;
	case EVENT_MESSAGE:
		return METRICS_MESSAGE;
	case EVENT_BEGIN:
	case EVENT_COMMIT:
		break;
	}
	return METRICS_BYTES_ONLY;
}

/* What a routing sink needs of ev besides its bytes (sink.h): names, keys
 * (rendered into d's buffers, valid until the next event) and positions. */
static int emit_routed(struct daemon *d, const struct event *ev, struct err *e)
{
	struct sink_record rec = {
	    .delete = ev->op == EVENT_DELETE,
	    .boundary = ev->op == EVENT_BEGIN || ev->op == EVENT_COMMIT,
	    .transactional = ev->txn != NULL,
	    .lsn = ev->lsn,
	    .commit_lsn = ev->txn ? ev->txn->commit_lsn : 0,
	    .xid = ev->txn ? ev->txn->xid : 0,
	    /* A snapshot's rows share one position (its consistent point): their
	     * number tells them apart for exactly-once's skip of what Kafka
	     * has. A message outside a transaction is alone at its LSN. */
	    .index = ev->txn                ? ++d->txn_events
	             : ev->op == EVENT_READ ? ++d->reads_emitted
	                                    : 1,
	};

	if (ev->rel) { /* not a message, nor a transaction boundary */
		rec.schema = ev->rel->remote->nspname;
		rec.table = ev->rel->remote->relname;
	}
	buf_clear(&d->key);
	buf_clear(&d->old_key);
	rec.second = encoder_second_record(d->enc);
	if (!d->keys)
		return sink_event_done(d->sink, ++d->seq, &rec, e);
	if (encoder_has_keys(d->enc)) {
		/* the format's own keys (debezium's); an old one only if it differs */
		if (encoder_write_key(d->enc, &d->key, ev, false)) {
			rec.key = d->key.data;
			rec.key_len = d->key.len;
		}
		if (encoder_write_key(d->enc, &d->old_key, ev, true) &&
		    (rec.key == NULL || d->old_key.len != rec.key_len ||
		     memcmp(d->old_key.data, rec.key, rec.key_len) != 0)) {
			rec.old_key = d->old_key.data;
			rec.old_key_len = d->old_key.len;
		}
	} else {
		if (key_write(&d->key, ev, &d->key_opts)) {
			rec.key = d->key.data;
			rec.key_len = d->key.len;
		}
		if (key_write_old(&d->old_key, ev, rec.key, rec.key_len, &d->key_opts)) {
			rec.old_key = d->old_key.data;
			rec.old_key_len = d->old_key.len;
		}
	}
	if (!buf_ok(&d->key) || !buf_ok(&d->old_key))
		return err_setk(e, ERR_SINK, "could not encode the key of the event at %X/%X: %s",
		                (unsigned)(ev->lsn >> 32), (unsigned)ev->lsn,
		                d->key.nomem || d->old_key.nomem ? "out of memory"
		                                                 : "key larger than 1 GiB");
	return sink_event_done(d->sink, ++d->seq, &rec, e);
}

/* Encode ev into the sink and number it. */
static int emit_one(struct daemon *d, const struct event *ev, struct err *e)
{
	size_t before = sink_buf(d->sink)->len;

	encoder_write(d->enc, sink_buf(d->sink), ev);
	metrics_event(&d->metrics, ev->rel ? ev->rel->remote->oid : 0, metrics_op(ev->op),
	              sink_buf(d->sink)->len - before);
	if (d->records)
		return emit_routed(d, ev, e);
	return sink_event_done(d->sink, ++d->seq, NULL, e);
}

/* --tx-events: the begin event before a transaction's first event. */
static int open_txn(struct daemon *d, struct err *e)
{
	struct event begin = {.op = EVENT_BEGIN, .lsn = d->txn_begin_lsn, .txn = &d->txn};

	d->txn_opened = true;
	txmeta_begin(&d->txmeta);
	return emit_one(d, &begin, e);
}

int daemon_emit(struct daemon *d, struct event *ev, struct err *e)
{
	/* Dropped events are not numbered: the transaction's end is marked
	 * all the same, so an excluded table's changes are acknowledged. */
	if (!filter_event(&d->filter, ev))
		return 0;
	if (d->sql_ascii && utf8guard_check_event(&d->utf8, ev, e) < 0)
		return -1;
	if (d->cfg->tx_events && ev->txn) {
		if (!d->txn_opened && open_txn(d, e) < 0)
			return -1;
		if (ev->op != EVENT_MESSAGE && txmeta_number(&d->txmeta, ev) < 0)
			return err_set(e, "could not follow stream: out of memory");
	}
	return emit_one(d, ev, e);
}

int daemon_emit_commit(struct daemon *d, uint64_t lsn, struct err *e)
{
	struct event commit = {.op = EVENT_COMMIT, .lsn = lsn, .txn = &d->txn, .tx = &d->txmeta};

	if (!d->txn_opened)
		return 0;
	d->txn_opened = false;
	return emit_one(d, &commit, e);
}

/* Make the sink durable and release what it confirmed. */
int daemon_confirm(struct daemon *d, bool durable, struct err *e)
{
	bool work = durable || sink_buf(d->sink)->len > 0; /* else nothing to time */
	int64_t t0 = work ? clock_us() : 0;

	if (sink_flush(d->sink, durable, e) < 0)
		return -1;
	if (work)
		metrics_sink_flush(&d->metrics, clock_us() - t0);
	checkpoint_confirm(&d->cp, sink_confirmed(d->sink));
	return 0;
}
