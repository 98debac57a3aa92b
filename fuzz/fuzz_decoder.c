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
 * of the next message. Every decoded message becomes events through the
 * daemon's own mapping (event/map.h, with its rules: a change outside a
 * transaction is an error there too) and is encoded in every format
 * (debezium with --debezium-schemas, its Kafka keys too), and each JSON
 * line must pass the independent validator in tests/common/jsoncheck.c:
 * the decoder may reject input, but what it accepts must always render as
 * valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/encoder.h"
#include "event/event.h"
#include "event/map.h"
#include "event/relinfo.h"
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
	struct relmap *rels;
	struct encoder *json, *pretty, *dbz;
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

/* One debezium write: a line, or two (a key change's delete and create,
 * the second at encoder_second_record). */
static void check_dbz(struct session *s, const struct event *ev)
{
	size_t second = encoder_second_record(s->dbz);

	if (!buf_ok(&s->out))
		return;
	if (second == 0) {
		check_line(&s->out, ev);
		return;
	}
	if (second >= s->out.len || !jsoncheck_line(s->out.data, second) ||
	    !jsoncheck_line(s->out.data + second, s->out.len - second)) {
		fprintf(stderr, "invalid JSON for a key change: %s\n", s->out.data);
		abort();
	}
}

/* A debezium Kafka key, new or old: one JSON text when there is one. */
static void check_key(struct session *s, const struct event *ev, bool old)
{
	buf_clear(&s->out);
	if (!encoder_write_key(s->dbz, &s->out, ev, old)) {
		if (s->out.len)
			abort(); /* no key, nothing written */
		return;
	}
	if (buf_ok(&s->out) && !jsoncheck_text(s->out.data, s->out.len)) {
		fprintf(stderr, "invalid JSON key for %s event: %s\n", event_op_name(ev->op),
		        s->out.data);
		abort();
	}
}

/* Encode one event in every format; the JSON ones must be valid. */
static void encode(struct session *s, const struct event *ev)
{
	buf_clear(&s->out);
	encoder_write(s->json, &s->out, ev);
	check_line(&s->out, ev);
	buf_clear(&s->out);
	encoder_write(s->pretty, &s->out, ev);
	buf_clear(&s->out);
	encoder_write(s->dbz, &s->out, ev);
	check_dbz(s, ev);
	check_key(s, ev, false);
	check_key(s, ev, true);
}

/* A Relation message, as daemon.c's prepare_relation takes it: the daemon
 * asks the catalog what user-defined types look like (domains like their
 * base type, arrays like arrays); stand in for it with an answer derived
 * from the OID, so every rendering meets fuzzed column text. Half the
 * relations are prepared for the encoders, half are left to their slow
 * path, which must write the same. */
static void relation(struct session *s, uint32_t relid)
{
	const struct relation *rel = relcache_get(pgoutput_relcache(s->dec), relid);
	struct relinfo *ri = rel ? relmap_update(s->rels, rel) : NULL;

	if (ri == NULL)
		return;
	for (uint16_t i = 0; i < rel->ncols; i++) {
		if (ri->types[i].base < 16384)
			continue;
		/* 0x3fff stands for hstore, a type the daemon knows by name */
		ri->types[i] = (struct coltype){(ri->types[i].base & 0x3fff) == 0x3fff
		                                    ? COLTYPE_HSTORE
		                                    : ri->types[i].base & 0x3fff,
		                                (ri->types[i].base & 0x4000) != 0};
	}
	if (relid % 2 == 0) {
		encoder_prepare_relation(s->json, ri);
		encoder_prepare_relation(s->pretty, ri);
		encoder_prepare_relation(s->dbz, ri);
	}
}

static void handle(struct session *s, const struct pgo_msg *m, uint64_t lsn)
{
	const struct event_txn *txn = s->in_txn ? &s->txn : NULL;
	struct err e = {.msg = ""};
	struct event ev;

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
		relation(s, m->u.relation.rel->oid);
		return;
	case PGO_INSERT:
	case PGO_UPDATE:
	case PGO_DELETE:
		if (map_change(m, lsn, txn, s->rels, &ev, &e) == 0)
			encode(s, &ev);
		else if (e.msg[0] == '\0')
			abort(); /* every refusal must say why */
		return;
	case PGO_TRUNCATE:
		for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
			if (map_truncate(m, i, lsn, txn, s->rels, &ev, &e) == 0)
				encode(s, &ev);
			else if (e.msg[0] == '\0')
				abort();
		}
		return;
	case PGO_MESSAGE:
		map_message(m, lsn, txn, &ev);
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
	s.rels = relmap_new();
	s.json = encoder_new("json", NULL);
	s.pretty = encoder_new("pretty", NULL);
	s.dbz = encoder_new("debezium", &(struct encoder_options){.schemas = true});
	if (s.dec == NULL || s.rels == NULL || s.json == NULL || s.pretty == NULL || s.dbz == NULL)
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
	encoder_free(s.dbz);
	encoder_free(s.pretty);
	encoder_free(s.json);
	relmap_free(s.rels);
	pgoutput_free(s.dec);
	return 0;
}
