/*
 * fuzz_decoder.c — libFuzzer target: pgoutput bytes → decoder → JSON events.
 *
 * Input layout (so that one input is a whole session and relation state
 * carries from message to message, as on a real connection):
 *
 *   Byte      protocol version selector: 1 + (byte % 4)
 *   then, repeated until the input ends:
 *   Int16     length N of the next message (big-endian)
 *   Byte[N]   one pgoutput message, the payload of one XLogData frame
 *             (cut short if the input ends first)
 *
 * Each message is copied into a heap block of exactly its size, so a read
 * one byte past it is an AddressSanitizer report rather than a silent read
 * of the next message. Every decoded change is encoded the way daemon.c
 * does it, in both formats, and each JSON line must pass the independent
 * validator in tests/common/jsoncheck.c: the decoder may reject input, but
 * what it accepts must always render as valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "event/json.h"
#include "pg/pgoutput.h"
#include "pg/relcache.h"
#include "util/buf.h"
#include "util/err.h"

#include "jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lines beyond this are dropped by the buf (overflow), which exercises the
 * encoder's cap without spending the fuzzer's time on huge outputs. */
#define OUT_LIMIT (1u << 20)

struct session {
	struct pgo_decoder *dec;
	struct event_txn txn;
	bool in_txn;
	struct buf out;
};

static void check_line(const struct buf *b, const struct event *ev)
{
	if (!buf_ok(b))
		return; /* over the cap: the sink reports that, nothing to check */
	if (!jsoncheck_line(b->data, b->len)) {
		fprintf(stderr, "invalid JSON for %s event: %s\n", event_op_name(ev->op), b->data);
		abort();
	}
}

/* Encode one event in both formats; the JSONL one must be valid. */
static void encode(struct session *s, const struct event *ev)
{
	buf_clear(&s->out);
	json_write_event(&s->out, ev, FORMAT_JSON);
	check_line(&s->out, ev);
	buf_clear(&s->out);
	json_write_event(&s->out, ev, FORMAT_PRETTY);
}

/* The daemon asks the catalog how user-defined types render (domains like
 * their base type, arrays like arrays); stand in for it with a rendering
 * derived from the OID, so every valtype kind meets fuzzed column text. */
static void resolve_types(struct session *s, uint32_t relid)
{
	struct relation *rel = relcache_get(pgoutput_relcache(s->dec), relid);

	for (uint16_t i = 0; rel && i < rel->ncols; i++)
		if (rel->cols[i].typoid >= 16384)
			rel->cols[i].vt = valtype_for_oid(rel->cols[i].typoid & 0x3fff);
}

static void handle(struct session *s, const struct pgo_msg *m, uint64_t lsn)
{
	struct relcache *rc = pgoutput_relcache(s->dec);
	struct event ev = {.lsn = lsn, .txn = &s->txn};

	switch (m->type) {
	case PGO_BEGIN:
		s->in_txn = true;
		s->txn.xid = m->u.begin.xid;
		s->txn.commit_lsn = m->u.begin.final_lsn;
		s->txn.commit_time = m->u.begin.commit_time;
		return;
	case PGO_COMMIT:
		s->in_txn = false;
		return;
	case PGO_RELATION:
		resolve_types(s, m->u.relation.rel->oid);
		return;
	case PGO_INSERT:
	case PGO_UPDATE:
	case PGO_DELETE:
		/* The daemon refuses changes outside a transaction; encoding
		 * them anyway only widens what the encoder is shown. */
		ev.op = m->type == PGO_INSERT   ? EVENT_INSERT
		        : m->type == PGO_UPDATE ? EVENT_UPDATE
		                                : EVENT_DELETE;
		ev.rel = m->u.change.rel;
		ev.old_kind = m->u.change.old_kind;
		if (m->type != PGO_DELETE)
			ev.newtup = &m->u.change.newtup;
		if (m->type == PGO_DELETE || m->u.change.old_kind)
			ev.oldtup = &m->u.change.oldtup;
		encode(s, &ev);
		return;
	case PGO_TRUNCATE:
		ev.op = EVENT_TRUNCATE;
		ev.cascade = m->u.truncate.options & PGO_TRUNCATE_CASCADE;
		ev.restart_identity = m->u.truncate.options & PGO_TRUNCATE_RESTART_IDENTITY;
		for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
			ev.rel = relcache_get(rc, m->u.truncate.relids[i]);
			if (ev.rel)
				encode(s, &ev);
		}
		return;
	case PGO_MESSAGE:
		ev.op = EVENT_MESSAGE;
		ev.transactional = m->u.message.flags & PGO_MESSAGE_TRANSACTIONAL;
		ev.txn = ev.transactional && s->in_txn ? &s->txn : NULL;
		ev.prefix = m->u.message.prefix;
		ev.content = m->u.message.content;
		ev.content_len = m->u.message.len;
		encode(s, &ev);
		return;
	default:
		/* Stream and two-phase control messages carry no rows; the
		 * decoder's own bookkeeping of them is what is under test. */
		(void)pgoutput_type_name(m->type);
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s = {0};
	size_t pos = 1;
	uint64_t lsn = 0x1000000;

	if (size < 1)
		return 0;
	s.dec = pgoutput_new(1 + data[0] % 4);
	if (s.dec == NULL)
		abort(); /* versions 1..4 are all valid: only OOM gets here */
	buf_init(&s.out, OUT_LIMIT);
	while (pos + 2 <= size) {
		size_t n = (size_t)data[pos] << 8 | data[pos + 1];
		struct pgo_msg m;
		struct err e = {.msg = ""};
		uint8_t *msg;

		pos += 2;
		if (n > size - pos)
			n = size - pos;
		/* malloc(0) may return NULL; one spare byte keeps it a real
		 * block while ASan still guards everything past n. */
		msg = malloc(n ? n : 1);
		if (msg == NULL)
			abort();
		memcpy(msg, data + pos, n);
		pos += n;
		if (pgoutput_decode(s.dec, msg, n, &m, &e) == 0)
			handle(&s, &m, lsn);
		else if (e.msg[0] == '\0')
			abort(); /* every failure must say why */
		free(msg);
		lsn += n + 1;
	}
	buf_reset(&s.out);
	pgoutput_free(s.dec);
	return 0;
}
