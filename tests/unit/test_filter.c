/*
 * test_filter.c — event/filter.c and util/hmac.c: SHA-256 and HMAC-SHA-256
 * against FIPS 180-4's and RFC 4231's published vectors (and Python's
 * hashlib for the padding boundaries, as noted), the patterns' parsing,
 * the table and column decisions, and the projection of tuples onto a
 * relation's view.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event/filter.h"
#include "event/relinfo.h"
#include "util/hmac.h"

#include "tuples.h"

static void hex(const uint8_t *d, char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check_sha(const char *data, size_t len, const char *want)
{
	struct sha256 s;
	uint8_t d[SHA256_LEN];
	char h[65];

	sha256_init(&s);
	sha256_update(&s, data, len);
	sha256_final(&s, d);
	hex(d, h);
	assert_string_equal(h, want);
	/* The same bytes fed one at a time. */
	sha256_init(&s);
	for (size_t i = 0; i < len; i++)
		sha256_update(&s, data + i, 1);
	sha256_final(&s, d);
	hex(d, h);
	assert_string_equal(h, want);
}

static void test_sha256(void **state)
{
	char a[64];

	(void)state;
	memset(a, 'a', sizeof a);
	/* FIPS 180-4 examples. */
	check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	/* Padding boundaries (hashlib.sha256(b"a" * n)): 55 fits one block,
	 * 56 needs a second, 64 is a whole block. */
	check_sha(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
	check_sha(a, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
	check_sha(a, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_hmac(void **state)
{
	uint8_t key1[20], key6[131];
	struct hmac_key k;
	char h[65] = {0};
	static const char msg6[] = "Test Using Larger Than Block-Size Key - Hash Key First";

	(void)state;
	/* RFC 4231 test case 1: a short key. */
	memset(key1, 0x0b, sizeof key1);
	hmac_sha256_key(&k, key1, sizeof key1);
	hmac_sha256_hex(&k, "Hi There", 8, h);
	assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* Test case 6: a key longer than a block is hashed first. */
	memset(key6, 0xaa, sizeof key6);
	hmac_sha256_key(&k, key6, sizeof key6);
	hmac_sha256_hex(&k, msg6, sizeof msg6 - 1, h);
	assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	/* The key's midstates are reused: a second value hashes the same. */
	hmac_sha256_hex(&k, msg6, sizeof msg6 - 1, h);
	assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void refused(struct filter_config c, const char *mention)
{
	struct filter f;
	struct err e = {0};

	assert_int_equal(filter_init(&f, &c, &e), -1);
	assert_non_null(strstr(e.msg, mention));
	assert_null(strchr(e.msg, '\n'));
}

static void test_patterns(void **state)
{
	(void)state;
	refused((struct filter_config){.include_tables = "users"},
	        "\"users\" is not a schema.table pattern");
	refused((struct filter_config){.exclude_tables = "public.a,,public.b"}, "\"\" is not");
	refused((struct filter_config){.exclude_columns = "users.pw"}, "schema.table.column");
	refused((struct filter_config){.mask_columns = "a.b.c"}, "MASK_SECRET");
	refused((struct filter_config){.mask_columns = "a.b.c", .mask_secret = ""}, "MASK_SECRET");
}

/* public.users(id key, email, password, name) and app.full (FULL). */
static struct relcol users_cols[] = {
    {"id", 23, -1, RELCACHE_COL_KEY},
    {"email", 25, -1, 0},
    {"password", 25, -1, 0},
    {"name", 1043, 20, 0},
};
static struct relation users = {1, "public", "users", 'd', 4, users_cols};

static struct relinfo *fresh(struct relmap *m, const struct relation *rel)
{
	struct relinfo *ri = relmap_update(m, rel);

	assert_non_null(ri);
	return ri;
}

static void test_tables(void **state)
{
	static struct relation a = {2, "audit", "log", 'd', 0, NULL};
	static struct relation s = {3, "public", "skip_me", 'd', 0, NULL};
	struct relmap *m = relmap_new();
	struct filter f;
	struct err e;

	(void)state;
	assert_int_equal(filter_init(&f,
	                             &(struct filter_config){.include_tables = " public.* ",
	                                                     .exclude_tables = "public.skip_?e"},
	                             &e),
	                 0);
	assert_false(filter_table(&f, fresh(m, &users)));
	assert_true(filter_table(&f, fresh(m, &a)));
	assert_true(filter_table(&f, fresh(m, &s)));
	filter_reset(&f);
	/* No pattern: nothing excluded. */
	assert_int_equal(filter_init(&f, &(struct filter_config){0}, &e), 0);
	assert_false(filter_table(&f, fresh(m, &a)));
	assert_false(filter_has_columns(&f));
	filter_reset(&f);
	relmap_free(m);
}

static void test_columns(void **state)
{
	static const struct pgo_value newv[] = {TXT("7"), TXT("a@b"), TXT("pw"), TXT("Ann")};
	static const struct pgo_value oldv[] = {TXT("6"), NUL, NUL, NUL};
	static const struct pgo_value toastv[] = {TXT("7"), TOAST, TXT("pw"), TXT("Ann")};
	static const struct pgo_tuple newt = {4, newv}, oldt = {4, oldv}, toastt = {4, toastv};
	struct relmap *m = relmap_new();
	struct hmac_key k;
	struct relinfo *ri;
	struct filter f;
	struct err e;
	char want[65] = {0};

	(void)state;
	assert_int_equal(filter_init(&f,
	                             &(struct filter_config){.exclude_columns = "*.*.password",
	                                                     .mask_columns = "public.users.email",
	                                                     .mask_secret = "k"},
	                             &e),
	                 0);
	ri = fresh(m, &users);
	ri->types[3] = (struct coltype){1043, false};
	assert_false(filter_table(&f, ri));
	assert_int_equal(filter_columns(&f, ri, &e), 0);
	/* The view: id, email (text now), name; the decoder's relation as it was. */
	assert_ptr_equal(ri->remote, ri->view);
	assert_int_equal(ri->remote->ncols, 3);
	assert_string_equal(ri->remote->cols[2].name, "name");
	assert_int_equal(ri->remote->cols[1].typoid, 25);
	assert_int_equal(ri->remote->cols[0].flags, RELCACHE_COL_KEY);
	assert_int_equal(ri->types[2].base, 1043);
	assert_int_equal(ri->types[1].base, 0);
	assert_int_equal(users.ncols, 4);
	assert_int_equal(ri->src[2], 3);

	struct event ev = {.op = EVENT_UPDATE, .rel = ri, .oldtup = &oldt, .newtup = &newt};

	assert_true(filter_event(&f, &ev));
	assert_int_equal(ev.newtup->ncols, 3);
	hmac_sha256_key(&k, "k", 1);
	hmac_sha256_hex(&k, "a@b", 3, want);
	assert_int_equal(ev.newtup->cols[1].len, 64);
	assert_memory_equal(ev.newtup->cols[1].data, want, 64);
	assert_memory_equal(ev.newtup->cols[2].data, "Ann", 3);
	/* The old key tuple's nulls stay null. */
	assert_int_equal(ev.oldtup->cols[1].kind, PGO_COL_NULL);
	assert_memory_equal(ev.oldtup->cols[0].data, "6", 1);
	/* An unchanged TOAST value stays unsent: there is no value to hash. */
	ev = (struct event){.op = EVENT_INSERT, .rel = ri, .newtup = &toastt};
	assert_true(filter_event(&f, &ev));
	assert_int_equal(ev.newtup->cols[1].kind, PGO_COL_UNCHANGED_TOAST);
	/* A message passes untouched. */
	ev = (struct event){.op = EVENT_MESSAGE};
	assert_true(filter_event(&f, &ev));
	filter_reset(&f);
	relmap_free(m);
}

static void test_key_columns(void **state)
{
	static struct relcol full_cols[] = {{"id", 23, -1, RELCACHE_COL_KEY},
	                                    {"v", 25, -1, RELCACHE_COL_KEY}};
	static struct relation full = {4, "app", "full", 'f', 2, full_cols};
	struct relmap *m = relmap_new();
	struct relinfo *ri;
	struct filter f;
	struct err e;

	(void)state;
	assert_int_equal(filter_init(&f, &(struct filter_config){.exclude_columns = "*.*.id"}, &e),
	                 0);
	assert_int_equal(filter_columns(&f, fresh(m, &users), &e), -1);
	assert_non_null(strstr(e.msg, "--exclude-columns matches public.users.id, a key column"));
	assert_non_null(strstr(e.msg, "--allow-key-filter"));
	/* REPLICA IDENTITY FULL flags every column: without a primary key
	 * found, the whole row is the key and no one column is refused... */
	assert_int_equal(filter_columns(&f, fresh(m, &full), &e), 0);
	/* ...with one, its columns are. */
	ri = fresh(m, &full);
	ri->key = calloc(2, sizeof *ri->key);
	ri->key[0] = true;
	assert_int_equal(filter_columns(&f, ri, &e), -1);
	filter_reset(&f);

	assert_int_equal(
	    filter_init(&f, &(struct filter_config){.exclude_columns = "*.*.id", .allow_key = true},
	                &e),
	    0);
	ri = fresh(m, &users);
	assert_int_equal(filter_columns(&f, ri, &e), 0);
	assert_int_equal(ri->remote->ncols, 3);
	assert_string_equal(ri->remote->cols[0].name, "email");
	filter_reset(&f);
	relmap_free(m);
}

static void test_unmatched(void **state)
{
	static const char tables[] = "public.users\0audit.log";
	static const char columns[] = "public.users.id\0public.users.email\0audit.log.msg";
	struct filter f;
	struct err e;

	(void)state;
	assert_int_equal(filter_init(&f,
	                             &(struct filter_config){.include_tables = "public.*,nope.*",
	                                                     .exclude_columns = "*.*.msg,*.*.pw",
	                                                     .mask_columns = "public.users",
	                                                     .mask_secret = "k"},
	                             &e),
	                 -1); /* "public.users" has one dot: not a column pattern */
	assert_int_equal(filter_init(&f,
	                             &(struct filter_config){.include_tables = "public.*,nope.*",
	                                                     .exclude_columns = "*.*.msg,*.*.pw"},
	                             &e),
	                 0);
	assert_int_equal(filter_warn_unmatched(&f, tables, sizeof tables, columns, sizeof columns),
	                 2);
	filter_reset(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256),    cmocka_unit_test(test_hmac),
	    cmocka_unit_test(test_patterns),  cmocka_unit_test(test_tables),
	    cmocka_unit_test(test_columns),   cmocka_unit_test(test_key_columns),
	    cmocka_unit_test(test_unmatched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
