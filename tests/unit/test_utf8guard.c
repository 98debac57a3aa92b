/*
 * test_utf8guard.c — invalid UTF-8 in a SQL_ASCII database: every place it
 * can hide (values of the old and new row, arrays as text, names, a
 * message's prefix) is found; each place is warned about once and each
 * value counted; the fail policy names the column and its position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "event/event.h"
#include "event/utf8guard.h"

#include "tuples.h"

static struct relcol cols[] = {
    {"id", 23, -1, 1}, {"note", 25, -1, 0}, {"caf\xc3\xa9", 25, -1, 0}, /* valid UTF-8 name */
};
static struct relation rel = {16384, "public", "t", 'f', 3, cols};
static struct relinfo rel_ri = {.remote = &rel};

static struct relcol bad_cols[] = {{"c_\xe9", 25, -1, 0}};
static struct relation bad_rel = {16385, "public", "n_\xff", 'd', 1, bad_cols};
static struct relinfo bad_ri = {.remote = &bad_rel};

static const struct pgo_value good_vals[] = {TXT("1"), TXT("caf\xc3\xa9 \xe2\x9c\x93"), NUL};
static const struct pgo_value bad_vals[] = {TXT("2"), TXT("caf\xe9"), TXT("\xc3")};
static const struct pgo_value toast_vals[] = {TXT("3"), TOAST, TXT("{\"\xfe\"}")};
static const struct pgo_tuple good = {3, good_vals};
static const struct pgo_tuple bad = {3, bad_vals};
static const struct pgo_tuple toast = {3, toast_vals};

static struct event change(enum event_op op, const struct pgo_tuple *oldtup,
                           const struct pgo_tuple *newtup)
{
	struct event ev = {.op = op, .lsn = 0x16B3748, .rel = &rel_ri};

	ev.oldtup = oldtup;
	ev.newtup = newtup;
	return ev;
}

static void test_valid_text_passes(void **state)
{
	struct utf8guard g;
	struct err e = {0};
	struct event ev = change(EVENT_INSERT, NULL, &good);

	(void)state;
	utf8guard_init(&g, UTF8_FAIL);
	assert_int_equal(utf8guard_check_relation(&g, &rel, 0, &e), 0);
	assert_int_equal(utf8guard_check_event(&g, &ev, &e), 0);
	ev = change(EVENT_UPDATE, &good, &good);
	assert_int_equal(utf8guard_check_event(&g, &ev, &e), 0);
	assert_int_equal(g.values, 0);
	assert_int_equal(g.columns, 0);
}

static void test_replace_counts_values_warns_columns(void **state)
{
	struct utf8guard g;
	struct err e = {0};
	struct event ins = change(EVENT_INSERT, NULL, &bad);
	struct event upd = change(EVENT_UPDATE, &bad, &toast);
	struct event del = change(EVENT_DELETE, &toast, NULL);

	(void)state;
	utf8guard_init(&g, UTF8_REPLACE);
	assert_int_equal(utf8guard_check_event(&g, &ins, &e), 0);
	assert_int_equal(g.values, 2); /* note, café */
	assert_int_equal(g.columns, 2);
	/* The old row holds the same two columns again; the new row's third
	 * column (an unchanged TOAST value is skipped) is still café. */
	assert_int_equal(utf8guard_check_event(&g, &upd, &e), 0);
	assert_int_equal(g.values, 5);
	assert_int_equal(g.columns, 2);
	assert_int_equal(utf8guard_check_event(&g, &del, &e), 0);
	assert_int_equal(g.values, 6);
	assert_int_equal(g.columns, 2);
}

static void test_names_and_prefix(void **state)
{
	struct utf8guard g;
	struct err e = {0};
	struct event msg = {.op = EVENT_MESSAGE, .lsn = 1, .prefix = "p\xe9"};
	struct event tr = {.op = EVENT_TRUNCATE, .lsn = 1, .rel = &bad_ri};

	(void)state;
	utf8guard_init(&g, UTF8_REPLACE);
	assert_int_equal(utf8guard_check_relation(&g, &bad_rel, 0, &e), 0);
	assert_int_equal(utf8guard_check_relation(&g, &bad_rel, 0, &e), 0);
	assert_int_equal(utf8guard_check_event(&g, &tr, &e), 0); /* names: at the relation */
	assert_int_equal(utf8guard_check_event(&g, &msg, &e), 0);
	assert_int_equal(g.values, 3);
	assert_int_equal(g.columns, 2);
	msg.prefix = "plain";
	assert_int_equal(utf8guard_check_event(&g, &msg, &e), 0);
	assert_int_equal(g.values, 3);
}

static void test_fail_names_the_place(void **state)
{
	struct utf8guard g;
	struct err e = {0};
	struct event ins = change(EVENT_INSERT, NULL, &bad);
	struct event msg = {.op = EVENT_MESSAGE, .lsn = 0x10, .prefix = "\x80"};

	(void)state;
	utf8guard_init(&g, UTF8_FAIL);
	assert_int_equal(utf8guard_check_event(&g, &ins, &e), -1);
	assert_string_equal(e.msg, "could not encode column public.t.note at 0/16B3748: not valid "
	                           "UTF-8 (a SQL_ASCII database stores bytes unconverted; "
	                           "--invalid-utf8=replace writes U+FFFD instead)");
	assert_int_equal(utf8guard_check_relation(&g, &bad_rel, 0, &e), -1);
	assert_non_null(strstr(e.msg, "could not encode the names of table public.n_\\xff: not "));
	assert_int_equal(utf8guard_check_event(&g, &msg, &e), -1);
	assert_non_null(strstr(e.msg, "a logical message's prefix at 0/10:"));
	assert_int_equal(g.values, 0);
}

/* Past UTF8GUARD_MAX_WARNED places the guard stops naming them but keeps
 * counting, and never reads or writes past its table. */
static void test_many_columns_bounded(void **state)
{
	static const struct pgo_value vals[] = {TXT("\xff")};
	static const struct pgo_tuple tup = {1, vals};
	struct relcol one = {"c", 25, -1, 0};
	struct relation r = {0, "s", "t", 'd', 1, &one};
	struct relinfo ri = {.remote = &r};
	struct event ev = {.op = EVENT_INSERT, .lsn = 1, .rel = &ri, .newtup = &tup};
	struct utf8guard g;
	struct err e = {0};

	(void)state;
	utf8guard_init(&g, UTF8_REPLACE);
	for (uint32_t oid = 1; oid <= UTF8GUARD_MAX_WARNED + 10; oid++) {
		r.oid = oid;
		assert_int_equal(utf8guard_check_event(&g, &ev, &e), 0);
		assert_int_equal(utf8guard_check_event(&g, &ev, &e), 0);
	}
	assert_int_equal(g.values, 2 * (UTF8GUARD_MAX_WARNED + 10));
	/* The places past the table are counted as one "more". */
	assert_int_equal(g.columns, UTF8GUARD_MAX_WARNED + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_text_passes),
	    cmocka_unit_test(test_replace_counts_values_warns_columns),
	    cmocka_unit_test(test_names_and_prefix),
	    cmocka_unit_test(test_fail_names_the_place),
	    cmocka_unit_test(test_many_columns_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
