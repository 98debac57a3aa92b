/*
 * fmt_pretty.c — the seed's format for people: "[INSERT] table=users
 * lsn=0/16C752F8" and then data={...} with one column per line. Not JSON as
 * a whole, but each row and value in it is (row.h), so nothing a value holds
 * can fake a line of its own.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "event/binary.h"
#include "event/encoder_int.h"
#include "event/jstring.h"
#include "event/row.h"
#include "event/txmeta.h"
#include "util/lsn.h"

/* A name in a header line: raw when it is one visible word, else quoted so
 * spaces, '=' or control characters cannot fake another field. */
static void pretty_name(struct buf *out, const char *s)
{
	size_t len = strlen(s);
	bool bare = len > 0 && json_utf8_valid(s, len);

	for (size_t i = 0; bare && i < len; i++)
		bare = (uint8_t)s[i] > ' ' && s[i] != '"' && s[i] != '\\' && s[i] != '=' &&
		       s[i] != 0x7F;
	if (bare)
		buf_append(out, s, len);
	else
		json_write_string(out, s, len);
}

/* "[INSERT] table=users lsn=0/16C752F8" without the newline. */
static void pretty_header(struct buf *out, const char *tag, const struct event *ev)
{
	char lsn[LSN_STR_MAX];

	buf_printf(out, "[%s] ", tag);
	if (ev->op == EVENT_MESSAGE) {
		buf_puts(out, "prefix=");
		pretty_name(out, ev->prefix);
	} else {
		buf_puts(out, "table=");
		const struct relation *rel = ev->rel->remote;

		if (strcmp(rel->nspname, "public") != 0) {
			pretty_name(out, rel->nspname);
			buf_putc(out, '.');
		}
		pretty_name(out, rel->relname);
	}
	lsn_format(ev->lsn, lsn);
	buf_printf(out, " lsn=%s", lsn);
}

/* label={...}\n */
static void pretty_row(struct buf *out, const char *label, const struct rowsel *rs)
{
	buf_printf(out, "%s=", label);
	row_write(out, rs, &ROW_INDENTED);
	buf_putc(out, '\n');
}

/* With the whole old row, show only what changed; otherwise show the key
 * (as sent, or taken from the new row) and the whole new row. */
static void pretty_update(struct buf *out, const struct event *ev, const struct row_opts *opt)
{
	struct rowsel newrow = {ev->rel, ev->newtup, NULL, ROW_ALL, opt};
	struct rowsel key = {ev->rel, ev->newtup, NULL, ROW_KEYS, opt};

	if (ev->old_kind == 'O' && ev->oldtup != NULL && ev->newtup != NULL) {
		struct rowsel oldrow = {ev->rel, ev->oldtup, ev->newtup, ROW_CHANGED, opt};

		newrow.other = ev->oldtup;
		newrow.filter = ROW_CHANGED;
		pretty_row(out, "old", &oldrow);
		pretty_row(out, "new", &newrow);
		return;
	}
	if (ev->old_kind == 'K' && ev->oldtup != NULL)
		key.tup = ev->oldtup;
	pretty_row(out, "key", &key);
	pretty_row(out, "new", &newrow);
}

static void pretty_message(struct buf *out, const struct event *ev)
{
	const char *content = (const char *)ev->content;

	if (json_utf8_valid(content, ev->content_len)) {
		buf_puts(out, "content=");
		json_write_string(out, content, ev->content_len);
	} else {
		buf_puts(out, "content_base64=");
		json_write_base64(out, ev->content, ev->content_len);
	}
	buf_putc(out, '\n');
}

/* --tx-events: "[BEGIN] xid=745 lsn=0/16C752F8" and "[COMMIT] xid=745
 * events=3 lsn=0/16C75500". */
static void pretty_tx(struct buf *out, const struct event *ev)
{
	char lsn[LSN_STR_MAX];

	lsn_format(ev->lsn, lsn);
	buf_printf(out, "[%s] xid=%u", ev->op == EVENT_BEGIN ? "BEGIN" : "COMMIT",
	           ev->txn ? (unsigned)ev->txn->xid : 0u);
	if (ev->op == EVENT_COMMIT && ev->tx)
		buf_printf(out, " events=%llu", (unsigned long long)ev->tx->count);
	buf_printf(out, " lsn=%s\n", lsn);
}

/* The format's state: its options. */
struct pretty_state {
	struct row_opts rows;
};

static void pretty_init(void *state, const struct encoder_options *opt)
{
	struct pretty_state *st = state;

	st->rows = encoder_row_opts(opt, false);
}

static void pretty_write(void *state, struct buf *out, const struct event *ev)
{
	/* By op, whatever the enum's order (begin and commit are pretty_tx's). */
	static const char *const TAGS[] = {
	    [EVENT_INSERT] = "INSERT",     [EVENT_UPDATE] = "UPDATE",   [EVENT_DELETE] = "DELETE",
	    [EVENT_TRUNCATE] = "TRUNCATE", [EVENT_MESSAGE] = "MESSAGE", [EVENT_READ] = "READ",
	};
	const struct pretty_state *st = state;
	struct rowsel data = {ev->rel, NULL, NULL, ROW_ALL, &st->rows};

	if (ev->op == EVENT_BEGIN || ev->op == EVENT_COMMIT) {
		pretty_tx(out, ev);
		return;
	}
	pretty_header(out, TAGS[ev->op], ev);
	switch (ev->op) {
	case EVENT_INSERT:
	case EVENT_READ:
		data.tup = ev->newtup;
		buf_putc(out, '\n');
		pretty_row(out, "data", &data);
		break;
	case EVENT_UPDATE:
		buf_putc(out, '\n');
		pretty_update(out, ev, &st->rows);
		break;
	case EVENT_DELETE:
		data.tup = ev->oldtup;
		data.filter = ev->old_kind == 'K' ? ROW_KEYS : ROW_ALL;
		buf_putc(out, '\n');
		pretty_row(out, "data", &data);
		break;
	case EVENT_TRUNCATE:
		buf_printf(out, " cascade=%s restart_identity=%s\n", ev->cascade ? "true" : "false",
		           ev->restart_identity ? "true" : "false");
		break;
	case EVENT_MESSAGE:
		buf_putc(out, '\n');
		pretty_message(out, ev);
		break;
	case EVENT_BEGIN:
	case EVENT_COMMIT:
		break; /* pretty_tx */
	}
}

static void pretty_prepare_relation(void *state, struct relinfo *ri)
{
	const struct pretty_state *st = state;

	row_prepare(ri, &st->rows);
}

const struct encoder_ops ENCODER_PRETTY = {
    .name = "pretty",
    .state_size = sizeof(struct pretty_state),
    .init = pretty_init,
    .prepare_relation = pretty_prepare_relation,
    .write = pretty_write,
};
