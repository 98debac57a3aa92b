/*
 * test_pgoutput.c — the pgoutput decoder and the relation cache.
 *
 * Every vector is built by hand from the documented wire layout, decoded
 * whole (every field checked), cut at every byte (each proper prefix must
 * fail cleanly and leave the decoder's state alone) and extended by one byte
 * (trailing garbage must fail). Inputs are decoded from exact-size heap
 * copies so the sanitizers catch any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg/pgoutput.h"
#include "pg/relcache.h"

/* ---- a byte-vector builder ---- */

struct bld {
	uint8_t b[8192];
	size_t n;
};

static void put_u8(struct bld *b, uint8_t v)
{
	assert_true(b->n < sizeof b->b);
	b->b[b->n++] = v;
}

static void put_be(struct bld *b, uint64_t v, int nbytes)
{
	for (int i = nbytes - 1; i >= 0; i--)
		put_u8(b, (uint8_t)(v >> (8 * i)));
}

static void put_u16(struct bld *b, uint16_t v)
{
	put_be(b, v, 2);
}

static void put_u32(struct bld *b, uint32_t v)
{
	put_be(b, v, 4);
}

static void put_u64(struct bld *b, uint64_t v)
{
	put_be(b, v, 8);
}

static void put_bytes(struct bld *b, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_u8(b, ((const uint8_t *)p)[i]);
}

static void put_cstr(struct bld *b, const char *s)
{
	put_bytes(b, s, strlen(s) + 1);
}

/* A 't' or 'b' column value. */
static void put_val(struct bld *b, char kind, const void *p, uint32_t n)
{
	put_u8(b, (uint8_t)kind);
	put_u32(b, n);
	put_bytes(b, p, n);
}

static void put_text(struct bld *b, const char *s)
{
	put_val(b, 't', s, (uint32_t)strlen(s));
}

struct col {
	const char *name;
	uint32_t typoid;
	int32_t typmod;
	uint8_t flags;
};

static void put_relation(struct bld *b, uint32_t oid, const char *nsp, const char *name, char ident,
                         const struct col *cols, uint16_t ncols)
{
	put_u8(b, 'R');
	put_u32(b, oid);
	put_cstr(b, nsp);
	put_cstr(b, name);
	put_u8(b, (uint8_t)ident);
	put_u16(b, ncols);
	for (uint16_t i = 0; i < ncols; i++) {
		put_u8(b, cols[i].flags);
		put_cstr(b, cols[i].name);
		put_u32(b, cols[i].typoid);
		put_u32(b, (uint32_t)cols[i].typmod);
	}
}

/* ---- fixture ---- */

struct fx {
	struct pgo_decoder *d;
	uint8_t *held; /* the input the last good message borrows from */
	struct pgo_msg m;
	struct err e;
};

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);

	assert_non_null(fx);
	fx->d = pgoutput_new(1);
	assert_non_null(fx->d);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	pgoutput_free(fx->d);
	free(fx->held);
	free(fx);
	return 0;
}

static void fx_version(struct fx *fx, int version)
{
	pgoutput_free(fx->d);
	fx->d = pgoutput_new(version);
	assert_non_null(fx->d);
}

static uint8_t *copy_of(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	assert_non_null(c);
	memcpy(c, p, n);
	return c;
}

static int decode_n(struct fx *fx, const uint8_t *p, size_t n)
{
	uint8_t *c = copy_of(p, n);
	int rc;

	err_clear(&fx->e);
	rc = pgoutput_decode(fx->d, c, n, &fx->m, &fx->e);
	free(c);
	return rc;
}

static void assert_err_form(const struct fx *fx)
{
	assert_true(strncmp(fx->e.msg, "could not decode ", 17) == 0);
	assert_non_null(strstr(fx->e.msg, " at offset "));
}

/* Decode b whole; the message stays valid until the next expect_ok(). */
static const struct pgo_msg *expect_ok(struct fx *fx, const struct bld *b)
{
	free(fx->held);
	fx->held = copy_of(b->b, b->n);
	err_clear(&fx->e);
	if (pgoutput_decode(fx->d, fx->held, b->n, &fx->m, &fx->e) != 0)
		fail_msg("unexpected error: %s", fx->e.msg);
	return &fx->m;
}

static void expect_fail(struct fx *fx, const struct bld *b, const char *needle)
{
	assert_int_equal(decode_n(fx, b->b, b->n), -1);
	assert_err_form(fx);
	if (strstr(fx->e.msg, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", fx->e.msg, needle);
}

/* Every proper prefix of b fails, except one of length `valid` (0: none). */
static void check_prefixes_except(struct fx *fx, const struct bld *b, size_t valid)
{
	for (size_t cut = 0; cut < b->n; cut++) {
		if (valid != 0 && cut == valid)
			continue;
		if (decode_n(fx, b->b, cut) != -1)
			fail_msg("prefix of %zu/%zu bytes decoded", cut, b->n);
		assert_err_form(fx);
	}
}

/* Cut at every byte, then one byte of trailing garbage: all must fail. */
static void check_malformed(struct fx *fx, const struct bld *b)
{
	struct bld longer = *b;

	check_prefixes_except(fx, b, 0);
	put_u8(&longer, 0x42);
	expect_fail(fx, &longer, "1 trailing bytes");
}

/* ---- shared relations ---- */

#define T_OID 16384

static const struct col t_cols[] = {
    {"id", 23, -1, RELCACHE_COL_KEY},
    {"name", 25, -1, 0},
    {"doc", 3802, -1, 0},
    {"note", 1043, 36, 0},
    {"raw", 17, -1, 0},
};
#define T_NCOLS 5

static void define_t(struct fx *fx)
{
	struct bld b = {0};

	put_relation(&b, T_OID, "public", "t", 'd', t_cols, T_NCOLS);
	expect_ok(fx, &b);
}

static void assert_val(const struct pgo_value *v, char kind, const void *data, uint32_t len)
{
	assert_int_equal(v->kind, kind);
	assert_int_equal(v->len, len);
	if (kind == 't' || kind == 'b') {
		assert_non_null(v->data);
		assert_memory_equal(v->data, data, len);
	} else {
		assert_null(v->data);
	}
}

/* A full row for t: id, NULL name, unchanged doc, empty note, binary raw. */
static const uint8_t raw_bytes[] = {0x00, 0x01, 0xfe, 0xff};

static void put_t_row(struct bld *b)
{
	put_u16(b, T_NCOLS);
	put_text(b, "42");
	put_u8(b, 'n');
	put_u8(b, 'u');
	put_text(b, "");
	put_val(b, 'b', raw_bytes, sizeof raw_bytes);
}

/* Replace b with an INSERT of a full row into t. */
static void put_t_insert(struct bld *b)
{
	b->n = 0;
	put_u8(b, 'I');
	put_u32(b, T_OID);
	put_u8(b, 'N');
	put_t_row(b);
}

static void assert_t_row(const struct pgo_tuple *t)
{
	assert_int_equal(t->ncols, T_NCOLS);
	assert_val(&t->cols[0], 't', "42", 2);
	assert_val(&t->cols[1], 'n', NULL, 0);
	assert_val(&t->cols[2], 'u', NULL, 0);
	assert_val(&t->cols[3], 't', "", 0);
	assert_val(&t->cols[4], 'b', raw_bytes, sizeof raw_bytes);
}

/* A key tuple for t: the key column, the others NULL. */
static void put_t_key(struct bld *b, const char *id)
{
	put_u16(b, T_NCOLS);
	put_text(b, id);
	for (int i = 1; i < T_NCOLS; i++)
		put_u8(b, 'n');
}

static void assert_t_key(const struct pgo_tuple *t, const char *id)
{
	assert_int_equal(t->ncols, T_NCOLS);
	assert_val(&t->cols[0], 't', id, (uint32_t)strlen(id));
	for (int i = 1; i < T_NCOLS; i++)
		assert_val(&t->cols[i], 'n', NULL, 0);
}

/* ---- transaction control ---- */

static void test_begin(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	put_u8(&b, 'B');
	put_u64(&b, 0x16B3748ULL);
	put_u64(&b, 0x0002A1B2C3D4E5F6ULL);
	put_u32(&b, 0xDEADBEEF);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_BEGIN);
	assert_int_equal(m->stream_xid, 0);
	assert_int_equal(m->u.begin.final_lsn, 0x16B3748ULL);
	assert_int_equal(m->u.begin.commit_time, 0x0002A1B2C3D4E5F6LL);
	assert_int_equal(m->u.begin.xid, 0xDEADBEEF);
}

static void test_begin_lsn_not_set(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	put_u8(&b, 'B');
	put_u64(&b, 0);
	put_u64(&b, 1);
	put_u32(&b, 700);
	expect_fail(fx, &b, "final LSN not set");
}

static void test_commit(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	put_u8(&b, 'C');
	put_u8(&b, 0);
	put_u64(&b, 0x100000010ULL);
	put_u64(&b, 0x100000040ULL);
	put_u64(&b, (uint64_t)-5); /* before 2000: negative timestamps are valid */
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_COMMIT);
	assert_int_equal(m->u.commit.flags, 0);
	assert_int_equal(m->u.commit.commit_lsn, 0x100000010ULL);
	assert_int_equal(m->u.commit.end_lsn, 0x100000040ULL);
	assert_int_equal(m->u.commit.commit_time, -5);

	b.b[1] = 0x01; /* flags are unused and must be 0 */
	expect_fail(fx, &b, "could not decode COMMIT: unrecognized flags 0x01 at offset 2");
}

static void test_origin(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	put_u8(&b, 'O');
	put_u64(&b, 0xABCDEF0123ULL);
	put_cstr(&b, "pg_16390");
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_ORIGIN);
	assert_int_equal(m->u.origin.commit_lsn, 0xABCDEF0123ULL);
	assert_string_equal(m->u.origin.name, "pg_16390");
}

/* ---- relations and types ---- */

static void test_relation(void **state)
{
	struct fx *fx = *state;
	struct relcache *rc = pgoutput_relcache(fx->d);
	struct bld b = {0};
	const struct pgo_msg *m;
	const struct relation *rel;

	put_relation(&b, T_OID, "app", "users", 'i', t_cols, T_NCOLS);
	check_malformed(fx, &b);
	assert_null(relcache_get(rc, T_OID)); /* failed decodes left no trace */

	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_RELATION);
	assert_int_equal(m->stream_xid, 0);
	rel = m->u.relation.rel;
	assert_ptr_equal(rel, relcache_get(rc, T_OID));
	assert_int_equal(rel->oid, T_OID);
	assert_string_equal(rel->nspname, "app");
	assert_string_equal(rel->relname, "users");
	assert_int_equal(rel->replident, 'i');
	assert_int_equal(rel->ncols, T_NCOLS);
	for (int i = 0; i < T_NCOLS; i++) {
		assert_string_equal(rel->cols[i].name, t_cols[i].name);
		assert_int_equal(rel->cols[i].typoid, t_cols[i].typoid);
		assert_int_equal(rel->cols[i].typmod, t_cols[i].typmod);
		assert_int_equal(rel->cols[i].flags, t_cols[i].flags);
	}
}

static void test_relation_pg_catalog_and_no_columns(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	put_relation(&b, 99, "", "empty", 'n', NULL, 0);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_string_equal(m->u.relation.rel->nspname, "pg_catalog");
	assert_int_equal(m->u.relation.rel->replident, 'n');
	assert_int_equal(m->u.relation.rel->ncols, 0);

	/* A row of a relation without columns is an empty tuple. */
	b.n = 0;
	put_u8(&b, 'I');
	put_u32(&b, 99);
	put_u8(&b, 'N');
	put_u16(&b, 0);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->u.change.newtup.ncols, 0);
}

static void test_relation_bad_fields(void **state)
{
	struct fx *fx = *state;
	struct col bad = {"c", 23, -1, 0x02};
	struct bld b = {0};

	put_relation(&b, 1, "s", "r", 'x', t_cols, 1);
	expect_fail(fx, &b, "unrecognized replica identity 0x78");
	b.n = 0;
	put_relation(&b, 1, "s", "r", 'f', &bad, 1);
	expect_fail(fx, &b, "unrecognized flags 0x02");
	assert_null(relcache_get(pgoutput_relcache(fx->d), 1));
}

static void test_type(void **state)
{
	struct fx *fx = *state;
	struct relcache *rc = pgoutput_relcache(fx->d);
	struct bld b = {0};
	const struct pgo_msg *m;

	put_u8(&b, 'Y');
	put_u32(&b, 16401);
	put_cstr(&b, "public");
	put_cstr(&b, "mood");
	check_malformed(fx, &b);
	assert_null(relcache_type_name(rc, 16401));
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_TYPE);
	assert_int_equal(m->u.type.oid, 16401);
	assert_string_equal(m->u.type.nspname, "public");
	assert_string_equal(m->u.type.typname, "mood");
	assert_string_equal(relcache_type_name(rc, 16401), "public.mood");

	b.n = 0;
	put_u8(&b, 'Y');
	put_u32(&b, 16401);
	put_cstr(&b, "");
	put_cstr(&b, "int4");
	m = expect_ok(fx, &b);
	assert_string_equal(m->u.type.nspname, "pg_catalog");
	assert_string_equal(relcache_type_name(rc, 16401), "pg_catalog.int4");
}

/* ---- row changes ---- */

static void test_insert(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	define_t(fx);
	put_t_insert(&b);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_INSERT);
	assert_int_equal(m->stream_xid, 0);
	assert_ptr_equal(m->u.change.rel, relcache_get(pgoutput_relcache(fx->d), T_OID));
	assert_int_equal(m->u.change.old_kind, 0);
	assert_int_equal(m->u.change.oldtup.ncols, 0);
	assert_t_row(&m->u.change.newtup);

	b.b[5] = 'K'; /* INSERT carries only a new tuple */
	expect_fail(fx, &b, "unexpected tuple tag 0x4b");
}

static void test_update_with_key(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	define_t(fx);
	put_u8(&b, 'U');
	put_u32(&b, T_OID);
	put_u8(&b, 'K');
	put_t_key(&b, "41");
	put_u8(&b, 'N');
	put_t_row(&b);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_UPDATE);
	assert_int_equal(m->u.change.old_kind, 'K');
	assert_t_key(&m->u.change.oldtup, "41");
	assert_t_row(&m->u.change.newtup);
}

static void test_update_with_old_row(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	define_t(fx);
	put_u8(&b, 'U');
	put_u32(&b, T_OID);
	put_u8(&b, 'O');
	put_t_row(&b);
	put_u8(&b, 'N');
	put_t_key(&b, "43");
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->u.change.old_kind, 'O');
	assert_t_row(&m->u.change.oldtup);
	assert_t_key(&m->u.change.newtup, "43");
}

static void test_update_without_old(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	define_t(fx);
	put_u8(&b, 'U');
	put_u32(&b, T_OID);
	put_u8(&b, 'N');
	put_t_row(&b);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->u.change.old_kind, 0);
	assert_int_equal(m->u.change.oldtup.ncols, 0);
	assert_null(m->u.change.oldtup.cols);
	assert_t_row(&m->u.change.newtup);
}

static void test_update_needs_new_tuple(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	define_t(fx);
	put_u8(&b, 'U');
	put_u32(&b, T_OID);
	put_u8(&b, 'K');
	put_t_key(&b, "1");
	put_u8(&b, 'K');
	put_t_key(&b, "1");
	expect_fail(fx, &b, "could not decode UPDATE: unexpected tuple tag 0x4b");
}

static void test_delete(void **state)
{
	struct fx *fx = *state;
	const char kinds[] = {'K', 'O'};

	define_t(fx);
	for (int i = 0; i < 2; i++) {
		struct bld b = {0};
		const struct pgo_msg *m;

		put_u8(&b, 'D');
		put_u32(&b, T_OID);
		put_u8(&b, (uint8_t)kinds[i]);
		put_t_key(&b, "7");
		check_malformed(fx, &b);
		m = expect_ok(fx, &b);
		assert_int_equal(m->type, PGO_DELETE);
		assert_int_equal(m->u.change.old_kind, kinds[i]);
		assert_t_key(&m->u.change.oldtup, "7");
		assert_int_equal(m->u.change.newtup.ncols, 0);

		b.b[5] = 'N'; /* DELETE carries only the old tuple */
		expect_fail(fx, &b, "could not decode DELETE: unexpected tuple tag 0x4e");
	}
}

static void test_truncate(void **state)
{
	struct fx *fx = *state;
	const uint8_t options[] = {0, PGO_TRUNCATE_CASCADE, PGO_TRUNCATE_RESTART_IDENTITY,
	                           PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY};

	for (size_t i = 0; i < sizeof options; i++) {
		struct bld b = {0};
		const struct pgo_msg *m;

		put_u8(&b, 'T');
		put_u32(&b, 2);
		put_u8(&b, options[i]);
		put_u32(&b, 16384);
		put_u32(&b, 0xFFFFFFF0u);
		check_malformed(fx, &b);
		m = expect_ok(fx, &b);
		assert_int_equal(m->type, PGO_TRUNCATE);
		assert_int_equal(m->u.truncate.options, options[i]);
		assert_int_equal(m->u.truncate.nrels, 2);
		assert_int_equal(m->u.truncate.relids[0], 16384);
		assert_int_equal(m->u.truncate.relids[1], 0xFFFFFFF0u);
	}
}

static void test_truncate_unknown_option(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	put_u8(&b, 'T');
	put_u32(&b, 1);
	put_u8(&b, 0x04);
	put_u32(&b, 16384);
	expect_fail(fx, &b, "could not decode TRUNCATE: unrecognized flags 0x04 at offset 6");
}

static void test_message(void **state)
{
	struct fx *fx = *state;
	const uint8_t content[] = {'a', 0x00, 0xff, 0x10, 0x00};
	struct bld b = {0};
	const struct pgo_msg *m;

	put_u8(&b, 'M');
	put_u8(&b, PGO_MESSAGE_TRANSACTIONAL);
	put_u64(&b, 0x3000028ULL);
	put_cstr(&b, "audit");
	put_u32(&b, sizeof content);
	put_bytes(&b, content, sizeof content);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_MESSAGE);
	assert_int_equal(m->u.message.flags, PGO_MESSAGE_TRANSACTIONAL);
	assert_int_equal(m->u.message.lsn, 0x3000028ULL);
	assert_string_equal(m->u.message.prefix, "audit");
	assert_int_equal(m->u.message.len, sizeof content);
	assert_memory_equal(m->u.message.content, content, sizeof content);

	b.n = 0;
	put_u8(&b, 'M');
	put_u8(&b, 0);
	put_u64(&b, 0x3000100ULL);
	put_cstr(&b, "");
	put_u32(&b, 0);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->u.message.flags, 0);
	assert_int_equal(m->u.message.lsn, 0x3000100ULL);
	assert_string_equal(m->u.message.prefix, "");
	assert_int_equal(m->u.message.len, 0);

	b.b[1] = 0x02;
	expect_fail(fx, &b, "could not decode MESSAGE: unrecognized flags 0x02");
	b.b[1] = 0;
	b.n -= 4;
	put_u32(&b, 0xFFFFFFFFu);
	expect_fail(fx, &b, "negative content length -1");
}

/* ---- streaming (v2+) ---- */

static void put_stream_start(struct bld *b, uint32_t xid, uint8_t first)
{
	put_u8(b, 'S');
	put_u32(b, xid);
	put_u8(b, first);
}

/* Insert the Int32 xid of a streamed transaction after the type byte. */
static void with_xid(struct bld *b, uint32_t xid)
{
	struct bld body = *b;

	b->n = 1;
	put_u32(b, xid);
	put_bytes(b, body.b + 1, body.n - 1);
}

static void test_stream_needs_v2(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	put_stream_start(&b, 900, 1);
	expect_fail(fx, &b,
	            "could not decode STREAM START: message needs protocol version 2 but "
	            "version 1 is in use at offset 1");
}

static void test_stream_transaction(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	fx_version(fx, 2);
	put_stream_start(&b, 900, 1);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_STREAM_START);
	assert_int_equal(m->u.stream_start.xid, 900);
	assert_int_equal(m->u.stream_start.first_segment, 1);
	assert_int_equal(m->stream_xid, 900);

	/* Inside the stream, RELATION and changes lead with an xid. */
	b.n = 0;
	put_relation(&b, T_OID, "public", "t", 'd', t_cols, T_NCOLS);
	with_xid(&b, 901);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_RELATION);
	assert_int_equal(m->stream_xid, 901);
	assert_int_equal(m->u.relation.rel->ncols, T_NCOLS);

	put_t_insert(&b);
	with_xid(&b, 902); /* a subtransaction's xid */
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_INSERT);
	assert_int_equal(m->stream_xid, 902);
	assert_t_row(&m->u.change.newtup);

	b.n = 0;
	put_u8(&b, 'E');
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_STREAM_STOP);
	assert_int_equal(m->stream_xid, 900);

	/* Outside a stream changes carry no xid, so it would be read as the OID. */
	put_t_insert(&b);
	with_xid(&b, 902);
	expect_fail(fx, &b, "relation OID 902 not seen");
	put_t_insert(&b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->stream_xid, 0);
	assert_t_row(&m->u.change.newtup);
}

static void test_stream_state_errors(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	fx_version(fx, 2);
	put_u8(&b, 'E');
	expect_fail(fx, &b, "could not decode STREAM STOP: no transaction is streaming");

	b.n = 0;
	put_stream_start(&b, 5, 0);
	expect_ok(fx, &b);
	expect_fail(fx, &b, "transaction 5 is already streaming");

	b.n = 0;
	put_u8(&b, 'E');
	expect_ok(fx, &b);

	b.n = 0;
	put_stream_start(&b, 6, 2);
	expect_fail(fx, &b, "unrecognized first segment value 2");
}

static void test_stream_commit(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	fx_version(fx, 2);
	put_u8(&b, 'c');
	put_u32(&b, 900);
	put_u8(&b, 0);
	put_u64(&b, 0x5000000ULL);
	put_u64(&b, 0x5000030ULL);
	put_u64(&b, 777777);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_STREAM_COMMIT);
	assert_int_equal(m->stream_xid, 900);
	assert_int_equal(m->u.stream_commit.xid, 900);
	assert_int_equal(m->u.stream_commit.flags, 0);
	assert_int_equal(m->u.stream_commit.commit_lsn, 0x5000000ULL);
	assert_int_equal(m->u.stream_commit.end_lsn, 0x5000030ULL);
	assert_int_equal(m->u.stream_commit.commit_time, 777777);
}

static void put_stream_abort(struct bld *b, bool parallel)
{
	put_u8(b, 'A');
	put_u32(b, 900);
	put_u32(b, 905);
	if (parallel) {
		put_u64(b, 0x6000000ULL);
		put_u64(b, 888888);
	}
}

static void test_stream_abort_v2(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	fx_version(fx, 2);
	put_stream_abort(&b, false);
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_STREAM_ABORT);
	assert_int_equal(m->stream_xid, 900);
	assert_int_equal(m->u.stream_abort.xid, 900);
	assert_int_equal(m->u.stream_abort.subxid, 905);
	assert_int_equal(m->u.stream_abort.abort_lsn, 0);
	assert_int_equal(m->u.stream_abort.abort_time, 0);

	b.n = 0; /* the v4 fields are trailing garbage before v4 */
	put_stream_abort(&b, true);
	expect_fail(fx, &b, "16 trailing bytes at offset 9");
}

static void test_stream_abort_v4(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0}, longer;
	const struct pgo_msg *m;

	fx_version(fx, 4);
	put_stream_abort(&b, true);
	/* The 9-byte prefix is the abort without the parallel-apply fields. */
	check_prefixes_except(fx, &b, 9);
	longer = b;
	put_u8(&longer, 0);
	expect_fail(fx, &longer, "1 trailing bytes");
	m = expect_ok(fx, &b);
	assert_int_equal(m->u.stream_abort.xid, 900);
	assert_int_equal(m->u.stream_abort.subxid, 905);
	assert_int_equal(m->u.stream_abort.abort_lsn, 0x6000000ULL);
	assert_int_equal(m->u.stream_abort.abort_time, 888888);

	b.n = 0;
	put_stream_abort(&b, false);
	m = expect_ok(fx, &b);
	assert_int_equal(m->u.stream_abort.subxid, 905);
	assert_int_equal(m->u.stream_abort.abort_lsn, 0);
	put_u8(&b, 0);
	expect_fail(fx, &b, "STREAM ABORT: message truncated at offset 9");
}

/* ---- two-phase (v3+) ---- */

static void put_prepare_body(struct bld *b, const char *gid)
{
	put_u64(b, 0x7000000ULL);
	put_u64(b, 0x7000050ULL);
	put_u64(b, 123456789);
	put_u32(b, 1001);
	put_cstr(b, gid);
}

static void assert_prepare(const struct pgo_msg *m, const char *gid)
{
	assert_int_equal(m->u.prepare.flags, 0);
	assert_int_equal(m->u.prepare.prepare_lsn, 0x7000000ULL);
	assert_int_equal(m->u.prepare.end_lsn, 0x7000050ULL);
	assert_int_equal(m->u.prepare.prepare_time, 123456789);
	assert_int_equal(m->u.prepare.xid, 1001);
	assert_string_equal(m->u.prepare.gid, gid);
}

static void test_begin_prepare(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	fx_version(fx, 3);
	put_u8(&b, 'b');
	put_prepare_body(&b, "gid-1");
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_BEGIN_PREPARE);
	assert_prepare(m, "gid-1");

	fx_version(fx, 2);
	expect_fail(fx, &b, "BEGIN PREPARE: message needs protocol version 3");
}

static void test_prepare_and_stream_prepare(void **state)
{
	struct fx *fx = *state;
	const char types[] = {'P', 'p'};

	fx_version(fx, 3);
	for (int i = 0; i < 2; i++) {
		struct bld b = {0};
		const struct pgo_msg *m;

		put_u8(&b, (uint8_t)types[i]);
		put_u8(&b, 0);
		put_prepare_body(&b, "");
		check_malformed(fx, &b);
		m = expect_ok(fx, &b);
		assert_int_equal(m->type, types[i]);
		assert_prepare(m, "");

		b.b[1] = 0x80;
		expect_fail(fx, &b, "unrecognized flags 0x80");
		b.b[1] = 0;
		memset(b.b + 2, 0, 8);
		expect_fail(fx, &b, "prepare LSN not set");
	}
}

static void test_commit_prepared(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	fx_version(fx, 3);
	put_u8(&b, 'K');
	put_u8(&b, 0);
	put_u64(&b, 0x8000000ULL);
	put_u64(&b, 0x8000040ULL);
	put_u64(&b, 42);
	put_u32(&b, 1002);
	put_cstr(&b, "tx-2");
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_COMMIT_PREPARED);
	assert_int_equal(m->u.commit_prepared.flags, 0);
	assert_int_equal(m->u.commit_prepared.commit_lsn, 0x8000000ULL);
	assert_int_equal(m->u.commit_prepared.end_lsn, 0x8000040ULL);
	assert_int_equal(m->u.commit_prepared.commit_time, 42);
	assert_int_equal(m->u.commit_prepared.xid, 1002);
	assert_string_equal(m->u.commit_prepared.gid, "tx-2");
}

static void test_rollback_prepared(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};
	const struct pgo_msg *m;

	fx_version(fx, 4);
	put_u8(&b, 'r');
	put_u8(&b, 0);
	put_u64(&b, 0x9000000ULL);
	put_u64(&b, 0x9000060ULL);
	put_u64(&b, 11);
	put_u64(&b, 22);
	put_u32(&b, 1003);
	put_cstr(&b, "tx-3");
	check_malformed(fx, &b);
	m = expect_ok(fx, &b);
	assert_int_equal(m->type, PGO_ROLLBACK_PREPARED);
	assert_int_equal(m->u.rollback_prepared.flags, 0);
	assert_int_equal(m->u.rollback_prepared.prepare_end_lsn, 0x9000000ULL);
	assert_int_equal(m->u.rollback_prepared.rollback_end_lsn, 0x9000060ULL);
	assert_int_equal(m->u.rollback_prepared.prepare_time, 11);
	assert_int_equal(m->u.rollback_prepared.rollback_time, 22);
	assert_int_equal(m->u.rollback_prepared.xid, 1003);
	assert_string_equal(m->u.rollback_prepared.gid, "tx-3");
}

/* ---- schema changes and malformed input ---- */

static void test_relation_replacement(void **state)
{
	struct fx *fx = *state;
	const struct col v1[] = {{"a", 23, -1, 1}, {"b", 25, -1, 0}};
	const struct col v2[] = {{"a", 20, -1, 1}, {"c", 16, -1, 0}, {"d", 1700, 655366, 0}};
	struct bld b = {0};
	const struct pgo_msg *m;

	put_relation(&b, 500, "s", "evolving", 'd', v1, 2);
	expect_ok(fx, &b);
	b.n = 0;
	put_u8(&b, 'I');
	put_u32(&b, 500);
	put_u8(&b, 'N');
	put_u16(&b, 2);
	put_text(&b, "1");
	put_text(&b, "x");
	m = expect_ok(fx, &b);
	assert_string_equal(m->u.change.rel->cols[1].name, "b");

	/* ALTER TABLE: the next RELATION replaces the entry (ASan: old one freed). */
	b.n = 0;
	put_relation(&b, 500, "s", "evolved", 'f', v2, 3);
	m = expect_ok(fx, &b);
	assert_ptr_equal(m->u.relation.rel, relcache_get(pgoutput_relcache(fx->d), 500));

	b.n = 0;
	put_u8(&b, 'I');
	put_u32(&b, 500);
	put_u8(&b, 'N');
	put_u16(&b, 3);
	put_text(&b, "1");
	put_text(&b, "t");
	put_text(&b, "3.14");
	m = expect_ok(fx, &b);
	assert_string_equal(m->u.change.rel->relname, "evolved");
	assert_int_equal(m->u.change.rel->ncols, 3);
	assert_string_equal(m->u.change.rel->cols[1].name, "c");
	assert_int_equal(m->u.change.rel->cols[2].typmod, 655366);
	assert_val(&m->u.change.newtup.cols[2], 't', "3.14", 4);

	/* A row in the old shape no longer fits. */
	b.n = 0;
	put_u8(&b, 'I');
	put_u32(&b, 500);
	put_u8(&b, 'N');
	put_u16(&b, 2);
	put_text(&b, "1");
	put_text(&b, "x");
	expect_fail(fx, &b, "tuple has 2 columns but relation s.evolved has 3");
}

static void test_unknown_relation(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	put_u8(&b, 'I');
	put_u32(&b, 1234);
	put_u8(&b, 'N');
	put_u16(&b, 0);
	expect_fail(fx, &b,
	            "could not decode INSERT: relation OID 1234 not seen in a Relation "
	            "message at offset 5");
}

static void test_column_count_mismatch(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	define_t(fx);
	put_u8(&b, 'D');
	put_u32(&b, T_OID);
	put_u8(&b, 'O');
	put_u16(&b, T_NCOLS + 1); /* more columns than the relation: never indexed */
	for (int i = 0; i < T_NCOLS + 1; i++)
		put_u8(&b, 'n');
	expect_fail(fx, &b,
	            "could not decode DELETE: tuple has 6 columns but relation public.t "
	            "has 5 at offset 8");
}

static void test_bad_column_values(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	define_t(fx);
	put_u8(&b, 'I');
	put_u32(&b, T_OID);
	put_u8(&b, 'N');
	put_u16(&b, T_NCOLS);
	put_u8(&b, 't');
	put_u32(&b, 0x80000000u);
	expect_fail(fx, &b, "negative length -2147483648 of column 1 at offset 13");

	b.n = 8;
	put_u8(&b, 'b');
	put_u32(&b, 0xFFFFFFFFu);
	expect_fail(fx, &b, "negative length -1 of column 1");

	b.n = 8;
	put_u8(&b, 'n');
	put_u8(&b, 'x');
	expect_fail(fx, &b, "unrecognized kind 0x78 of column 2 at offset 10");

	b.n = 8; /* a length far beyond the message */
	put_u8(&b, 't');
	put_u32(&b, 0x7FFFFFFFu);
	put_text(&b, "x");
	expect_fail(fx, &b, "message truncated at offset 13");
}

static void test_unknown_type_and_empty(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	put_u8(&b, 'Z');
	put_u32(&b, 0);
	expect_fail(fx, &b, "could not decode message: unknown message type 0x5a at offset 0");
	b.b[0] = 0xff;
	expect_fail(fx, &b, "unknown message type 0xff");
	b.b[0] = 'w'; /* the XLogData frame byte is not a pgoutput message */
	expect_fail(fx, &b, "unknown message type 0x77");
	b.n = 0;
	expect_fail(fx, &b, "could not decode message: empty message at offset 0");
}

static void test_huge_counts(void **state)
{
	struct fx *fx = *state;
	struct bld b = {0};

	put_u8(&b, 'T');
	put_u32(&b, 0xFFFFFFFFu);
	put_u8(&b, 0);
	put_u32(&b, 1);
	expect_fail(fx, &b, "4294967295 relations exceed the maximum");

	b.n = 0;
	put_u8(&b, 'T');
	put_u32(&b, 100000);
	put_u8(&b, 0);
	put_u32(&b, 1);
	expect_fail(fx, &b, "100000 relations declared but only 4 bytes left");

	b.n = 0;
	put_relation(&b, 1, "s", "r", 'd', NULL, 0);
	b.n -= 2;
	put_u16(&b, 0xFFFF);
	expect_fail(fx, &b, "65535 columns exceed the maximum of 1664");

	b.n -= 2;
	put_u16(&b, 1000);
	put_u8(&b, 0);
	put_cstr(&b, "c");
	expect_fail(fx, &b, "1000 columns declared but only 3 bytes left");

	b.n = 0;
	put_u8(&b, 'M');
	put_u8(&b, 0);
	put_u64(&b, 1);
	put_cstr(&b, "p");
	put_u32(&b, 0x7FFFFFFFu);
	put_bytes(&b, "abc", 3);
	expect_fail(fx, &b, "MESSAGE: message truncated at offset 16");
}

static void test_type_names_and_versions(void **state)
{
	(void)state;
	assert_string_equal(pgoutput_type_name(PGO_INSERT), "INSERT");
	assert_string_equal(pgoutput_type_name(PGO_STREAM_PREPARE), "STREAM PREPARE");
	assert_string_equal(pgoutput_type_name((enum pgo_type)'Z'), "UNKNOWN");
	assert_string_equal(pgoutput_type_name((enum pgo_type)200), "UNKNOWN");
	assert_null(pgoutput_new(0));
	assert_null(pgoutput_new(5));
	pgoutput_free(NULL);
}

/* ---- relcache ---- */

static struct relation *make_rel(uint32_t oid, const char *name, uint16_t ncols)
{
	struct relation *rel = calloc(1, sizeof *rel);

	assert_non_null(rel);
	rel->oid = oid;
	rel->nspname = strdup("public");
	rel->relname = strdup(name);
	rel->replident = 'd';
	if (ncols > 0) {
		rel->cols = calloc(ncols, sizeof *rel->cols);
		assert_non_null(rel->cols);
		for (uint16_t i = 0; i < ncols; i++)
			rel->cols[i].name = strdup("c");
	}
	rel->ncols = ncols;
	return rel;
}

static void test_relcache_replace(void **state)
{
	struct relcache *rc = relcache_new();
	struct relation *a = make_rel(7, "first", 2), *b = make_rel(7, "second", 1);

	(void)state;
	assert_non_null(rc);
	assert_null(relcache_get(rc, 7));
	assert_int_equal(relcache_put(rc, a), 0);
	assert_ptr_equal(relcache_get(rc, 7), a);
	assert_int_equal(relcache_put(rc, a), 0); /* the same entry again: kept */
	assert_ptr_equal(relcache_get(rc, 7), a);
	assert_int_equal(relcache_put(rc, b), 0); /* frees a */
	assert_ptr_equal(relcache_get(rc, 7), b);
	assert_string_equal(relcache_get(rc, 7)->relname, "second");
	assert_null(relcache_get(rc, 8));

	assert_int_equal(relcache_put(rc, make_rel(0, "invalid-oid", 0)), 0);
	assert_string_equal(relcache_get(rc, 0)->relname, "invalid-oid");
	relcache_free(rc);
}

static void test_relcache_growth(void **state)
{
	struct relcache *rc = relcache_new();
	char name[32];

	(void)state;
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "r%u", i);
		/* sequential OIDs and a spread of high ones */
		assert_int_equal(relcache_put(rc, make_rel(16384 + i, name, 1)), 0);
		assert_int_equal(relcache_put(rc, make_rel(i * 2654435761u, name, 0)), 0);
	}
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "r%u", i);
		assert_string_equal(relcache_get(rc, 16384 + i)->relname, name);
		assert_string_equal(relcache_get(rc, i * 2654435761u)->relname, name);
	}
	assert_null(relcache_get(rc, 16384 + 5000));
	relcache_free(rc);
}

static void test_relcache_types_and_null(void **state)
{
	struct relcache *rc = relcache_new();
	char nsp[32];

	(void)state;
	assert_null(relcache_type_name(rc, 16401));
	assert_int_equal(relcache_put_type(rc, 16401, "public", "mood"), 0);
	assert_string_equal(relcache_type_name(rc, 16401), "public.mood");
	assert_int_equal(relcache_put_type(rc, 16401, "app", "feeling"), 0);
	assert_string_equal(relcache_type_name(rc, 16401), "app.feeling");
	for (uint32_t i = 0; i < 100; i++) {
		snprintf(nsp, sizeof nsp, "n%u", i);
		assert_int_equal(relcache_put_type(rc, 20000 + i, nsp, "t"), 0);
	}
	assert_string_equal(relcache_type_name(rc, 20099), "n99.t");
	relcache_free(rc);
	relcache_free(NULL);
	relation_free(NULL);
}

#define FX(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    FX(test_begin),
	    FX(test_begin_lsn_not_set),
	    FX(test_commit),
	    FX(test_origin),
	    FX(test_relation),
	    FX(test_relation_pg_catalog_and_no_columns),
	    FX(test_relation_bad_fields),
	    FX(test_type),
	    FX(test_insert),
	    FX(test_update_with_key),
	    FX(test_update_with_old_row),
	    FX(test_update_without_old),
	    FX(test_update_needs_new_tuple),
	    FX(test_delete),
	    FX(test_truncate),
	    FX(test_truncate_unknown_option),
	    FX(test_message),
	    FX(test_stream_needs_v2),
	    FX(test_stream_transaction),
	    FX(test_stream_state_errors),
	    FX(test_stream_commit),
	    FX(test_stream_abort_v2),
	    FX(test_stream_abort_v4),
	    FX(test_begin_prepare),
	    FX(test_prepare_and_stream_prepare),
	    FX(test_commit_prepared),
	    FX(test_rollback_prepared),
	    FX(test_relation_replacement),
	    FX(test_unknown_relation),
	    FX(test_column_count_mismatch),
	    FX(test_bad_column_values),
	    FX(test_unknown_type_and_empty),
	    FX(test_huge_counts),
	    cmocka_unit_test(test_type_names_and_versions),
	    cmocka_unit_test(test_relcache_replace),
	    cmocka_unit_test(test_relcache_growth),
	    cmocka_unit_test(test_relcache_types_and_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
