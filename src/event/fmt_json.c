/*
 * fmt_json.c — the JSONL format: one JSON object per event, keys in a fixed
 * order (README, "Event format"). The rows are row.h's; this file writes
 * the envelope around them.
 *
 * The path avoids printf: it runs once per event and parses its format
 * string twice. The member writers are inline so that strlen() of their
 * literal keys folds away (callgrind showed it per event otherwise).
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

/* The transaction fragment: 94 bytes at most (format_txn). */
#define TXN_JSON_MAX 112

/* The encoder's state: the members of the transaction its last event was in. */
struct json_state {
	uint32_t xid;
	uint64_t commit_lsn;
	int64_t commit_time;
	size_t len; /* 0: nothing cached */
	char txn[TXN_JSON_MAX];
	struct row_opts rows; /* from the encoder's options */
};

/* ,"key": */
static inline void json_key(struct buf *out, const char *key)
{
	buf_append(out, ",\"", 2);
	buf_puts(out, key);
	buf_append(out, "\":", 2);
}

static inline void json_bool_member(struct buf *out, const char *key, bool v)
{
	json_key(out, key);
	buf_puts(out, v ? "true" : "false");
}

/* ,"key":"0/16C752F8" */
static inline void json_lsn_member(struct buf *out, const char *key, uint64_t lsn)
{
	char s[LSN_STR_MAX];
	int n = lsn_format(lsn, s);

	json_key(out, key);
	buf_putc(out, '"');
	buf_append(out, s, (size_t)n);
	buf_putc(out, '"');
}

/* Append src[0..n) at out[*len], for the fixed-size transaction fragment. */
static void put(char *out, size_t *len, const char *src, size_t n)
{
	memcpy(out + *len, src, n);
	*len += n;
}
#define PUT_LIT(out, len, lit) put(out, len, lit, sizeof(lit) - 1)

/* ',"commit_lsn":"X/X","xid":N,"commit_time":"..."' into out, which must
 * hold TXN_JSON_MAX bytes: 15 + 17 + 8 + 10 + 16 + 27 + 1 = 94 at most.
 * Fixed storage, so caching a transaction allocates nothing. Returns the
 * length. */
static size_t format_txn(const struct event_txn *txn, char *out)
{
	char digits[10];
	size_t len = 0, n = 0;
	uint32_t xid = txn->xid;

	PUT_LIT(out, &len, ",\"commit_lsn\":\"");
	len += (size_t)lsn_format(txn->commit_lsn, out + len);
	PUT_LIT(out, &len, "\",\"xid\":");
	do {
		digits[sizeof digits - ++n] = (char)('0' + xid % 10);
		xid /= 10;
	} while (xid);
	put(out, &len, digits + sizeof digits - n, n);
	PUT_LIT(out, &len, ",\"commit_time\":\"");
	len += (size_t)pgtime_format(txn->commit_time, out + len);
	PUT_LIT(out, &len, "\"");
	return len;
}

/* The transaction's members, formatted once per transaction: the commit
 * time costs a gmtime and digits, for every event otherwise. */
static void json_txn_members(struct json_state *st, struct buf *out, const struct event_txn *txn)
{
	if (txn == NULL) {
		buf_puts(out, ",\"commit_lsn\":null,\"xid\":null,\"commit_time\":null");
		return;
	}
	if (st->len == 0 || st->xid != txn->xid || st->commit_lsn != txn->commit_lsn ||
	    st->commit_time != txn->commit_time) {
		st->xid = txn->xid;
		st->commit_lsn = txn->commit_lsn;
		st->commit_time = txn->commit_time;
		st->len = format_txn(txn, st->txn);
	}
	buf_append(out, st->txn, st->len);
}

static bool json_row_member(struct buf *out, const char *key, const struct rowsel *rs)
{
	json_key(out, key);
	return row_write(out, rs, &ROW_COMPACT);
}

/* ,"unchanged_toast":["col",...] for the columns whose value was not sent. */
static void json_unchanged_toast(struct buf *out, const struct event *ev)
{
	bool any = false;

	const struct relation *rel = ev->rel->remote;

	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (!row_is_toast(ev->newtup, i) && !row_is_toast(ev->oldtup, i))
			continue;
		buf_puts(out, any ? "," : ",\"unchanged_toast\":[");
		json_write_string(out, rel->cols[i].name, strlen(rel->cols[i].name));
		any = true;
	}
	if (any)
		buf_putc(out, ']');
}

static void json_change_members(const struct json_state *st, struct buf *out,
                                const struct event *ev)
{
	struct rowsel oldrow = {ev->rel, ev->oldtup, NULL, ev->old_kind == 'K' ? ROW_KEYS : ROW_ALL,
	                        &st->rows};
	struct rowsel newrow = {ev->rel, ev->newtup, NULL, ROW_ALL, &st->rows};
	bool toast = false;

	if (ev->op != EVENT_INSERT && ev->op != EVENT_READ && ev->oldtup != NULL)
		toast |= json_row_member(out, "old", &oldrow);
	if (ev->op != EVENT_DELETE && ev->newtup != NULL)
		toast |= json_row_member(out, "new", &newrow);
	if (toast)
		json_unchanged_toast(out, ev);
}

static void json_message_members(struct buf *out, const struct event *ev)
{
	const char *content = (const char *)ev->content;
	bool utf8 = json_utf8_valid(content, ev->content_len);

	json_bool_member(out, "transactional", ev->transactional);
	json_key(out, "prefix");
	json_write_string(out, ev->prefix, strlen(ev->prefix));
	json_key(out, "content");
	if (utf8) {
		json_write_string(out, content, ev->content_len);
	} else {
		json_write_base64(out, ev->content, ev->content_len);
		buf_puts(out, ",\"content_encoding\":\"base64\"");
	}
}

static void json_u64(struct buf *out, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[sizeof digits - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_append(out, digits + sizeof digits - n, n);
}

/* --tx-events: {"op":"begin",..} and {"op":"commit",..,"events":N,
 * "tables":{"schema.table":N,..}} around a transaction's events. */
static void json_write_tx(struct json_state *st, struct buf *out, const struct event *ev)
{
	buf_puts(out, ev->op == EVENT_BEGIN ? "{\"op\":\"begin\"" : "{\"op\":\"commit\"");
	json_lsn_member(out, "lsn", ev->lsn);
	json_txn_members(st, out, ev->txn);
	if (ev->op == EVENT_COMMIT && ev->tx) {
		json_key(out, "events");
		json_u64(out, ev->tx->count);
		json_key(out, "tables");
		buf_putc(out, '{');
		for (size_t i = 0; i < ev->tx->n; i++) {
			const char *name = txmeta_table_name(ev->tx, i);

			if (i)
				buf_putc(out, ',');
			json_write_string(out, name, strlen(name));
			buf_putc(out, ':');
			json_u64(out, ev->tx->tables[i].count);
		}
		buf_putc(out, '}');
	}
	buf_puts(out, "}\n");
}

/* '{"op":"insert"' and its siblings, indexed by enum event_op. */
static const struct lit OP_HEAD[] = {
    [EVENT_INSERT] = LIT("{\"op\":\"insert\""),   [EVENT_UPDATE] = LIT("{\"op\":\"update\""),
    [EVENT_DELETE] = LIT("{\"op\":\"delete\""),   [EVENT_TRUNCATE] = LIT("{\"op\":\"truncate\""),
    [EVENT_MESSAGE] = LIT("{\"op\":\"message\""), [EVENT_READ] = LIT("{\"op\":\"read\""),
};

static void json_write(void *state, struct buf *out, const struct event *ev)
{
	if (ev->op == EVENT_BEGIN || ev->op == EVENT_COMMIT) {
		json_write_tx(state, out, ev);
		return;
	}
	buf_append(out, OP_HEAD[ev->op].s, OP_HEAD[ev->op].n);
	if (ev->op != EVENT_MESSAGE) {
		const struct rowcache *rc = row_cache(ev->rel);

		if (rc && rc->head.s)
			buf_append(out, rc->head.s, rc->head.n);
		else
			row_relation_members(out, ev->rel->remote);
	}
	json_lsn_member(out, "lsn", ev->lsn);
	json_txn_members(state, out, ev->txn);
	if (ev->tx_order) {
		json_key(out, "tx_order");
		json_u64(out, ev->tx_order);
	}
	switch (ev->op) {
	case EVENT_INSERT:
	case EVENT_UPDATE:
	case EVENT_DELETE:
	case EVENT_READ:
		json_change_members(state, out, ev);
		break;
	case EVENT_TRUNCATE:
		json_bool_member(out, "cascade", ev->cascade);
		json_bool_member(out, "restart_identity", ev->restart_identity);
		break;
	case EVENT_MESSAGE:
		json_message_members(out, ev);
		break;
	case EVENT_BEGIN:
	case EVENT_COMMIT:
		break; /* json_write_tx */
	}
	buf_puts(out, "}\n");
}

static void json_init(void *state, const struct encoder_options *opt)
{
	struct json_state *st = state;

	st->rows = encoder_row_opts(opt, false);
}

static void json_prepare_relation(void *state, struct relinfo *ri)
{
	const struct json_state *st = state;

	row_prepare(ri, &st->rows);
}

const struct encoder_ops ENCODER_JSON = {
    .name = "json",
    .state_size = sizeof(struct json_state),
    .init = json_init,
    .prepare_relation = json_prepare_relation,
    .write = json_write,
};
