/* key.c — an event's key (see key.h). */
#include "event/key.h"

#include <stdio.h>
#include <string.h>

#include "event/jstring.h"
#include "event/row.h"

static bool has_key_columns(const struct relinfo *rel)
{
	for (uint16_t i = 0; i < rel->remote->ncols; i++)
		if (relinfo_is_key(rel, i))
			return true;
	return false;
}

/* Whether a key column of tup is an unchanged TOAST value: its value was
 * not sent, and the old key (which Postgres then sends) holds it. */
static bool key_toasted(const struct relinfo *rel, const struct pgo_tuple *tup)
{
	for (uint16_t i = 0; i < rel->remote->ncols && i < tup->ncols; i++)
		if (relinfo_is_key(rel, i) && row_is_toast(tup, i))
			return true;
	return false;
}

static void write_row_key(struct buf *out, const struct relinfo *rel, const struct pgo_tuple *tup,
                          const struct row_opts *opt)
{
	struct rowsel rs = {rel, tup, NULL, ROW_ROUTE, opt};

	row_write(out, &rs, &ROW_COMPACT);
}

bool key_write(struct buf *out, const struct event *ev, const struct row_opts *opt)
{
	const struct pgo_tuple *tup;

	switch (ev->op) {
	case EVENT_MESSAGE:
		buf_puts(out, "{\"prefix\":");
		json_write_string(out, ev->prefix, strlen(ev->prefix));
		buf_putc(out, '}');
		return true;
	case EVENT_TRUNCATE:
		return false;
	case EVENT_BEGIN:
	case EVENT_COMMIT: {
		/* --tx-events: a transaction's two boundaries share a key, so a
		 * topic's partitions keep them in order. */
		char x[32];

		snprintf(x, sizeof x, "{\"xid\":%u}", ev->txn ? (unsigned)ev->txn->xid : 0u);
		buf_puts(out, x);
		return true;
	}
	default:
		break;
	}
	if ((tup = key_tuple(ev, false)) == NULL)
		return false;
	write_row_key(out, ev->rel, tup, opt);
	return true;
}

const struct pgo_tuple *key_tuple(const struct event *ev, bool old)
{
	const struct pgo_tuple *tup = NULL;

	switch (ev->op) {
	case EVENT_DELETE:
		tup = old ? NULL : ev->oldtup;
		break;
	case EVENT_INSERT:
	case EVENT_UPDATE:
	case EVENT_READ:
		if (old)
			tup = ev->op == EVENT_UPDATE ? ev->oldtup : NULL;
		else if ((tup = ev->newtup) != NULL && ev->oldtup && key_toasted(ev->rel, tup))
			tup = ev->oldtup;
		break;
	case EVENT_TRUNCATE:
	case EVENT_MESSAGE:
	case EVENT_BEGIN:
	case EVENT_COMMIT:
		return NULL;
	}
	return tup && has_key_columns(ev->rel) ? tup : NULL;
}

bool key_write_old(struct buf *out, const struct event *ev, const char *key, size_t key_len,
                   const struct row_opts *opt)
{
	size_t start = out->len;

	if (ev->op != EVENT_UPDATE || ev->oldtup == NULL || !has_key_columns(ev->rel))
		return false;
	write_row_key(out, ev->rel, ev->oldtup, opt);
	if (key != NULL && out->len - start == key_len &&
	    memcmp(out->data + start, key, key_len) == 0) {
		buf_truncate(out, start);
		return false;
	}
	return true;
}
