/*
 * test_copytext.c — COPY text rows split into values: every escape COPY FROM
 * accepts, \N against a value that merely starts like it, the delimiter
 * inside a value, the final newline, and rows with too few or too many
 * fields, which must be errors rather than values shifted into the wrong
 * columns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg/copytext.h"

/* Split a copy of text (writable, as the reader's row buffer is). */
static int split(const char *text, struct pgo_value *vals, uint16_t ncols, struct err *e)
{
	static char row[256];
	size_t len = strlen(text);

	assert_true(len < sizeof row);
	memcpy(row, text, len);
	return copytext_split(row, len, vals, ncols, e);
}

static void assert_text(const struct pgo_value *v, const char *want, size_t len)
{
	assert_int_equal(v->kind, PGO_COL_TEXT);
	assert_int_equal(v->len, len);
	assert_memory_equal(v->data, want, len);
}

static void test_plain_fields_and_newline(void **state)
{
	struct pgo_value v[3];
	struct err e = {0};

	(void)state;
	assert_int_equal(split("1\tabc\t\n", v, 3, &e), 0);
	assert_text(&v[0], "1", 1);
	assert_text(&v[1], "abc", 3);
	assert_text(&v[2], "", 0); /* an empty string, not NULL */
}

static void test_null_and_lookalikes(void **state)
{
	struct pgo_value v[4];
	struct err e = {0};

	(void)state;
	/* \N alone is NULL; \\N is the text \N; \Nx is "Nx" (an escaped N). */
	assert_int_equal(split("\\N\t\\\\N\t\\Nx\tN", v, 4, &e), 0);
	assert_int_equal(v[0].kind, PGO_COL_NULL);
	assert_text(&v[1], "\\N", 2);
	assert_text(&v[2], "Nx", 2);
	assert_text(&v[3], "N", 1);
}

static void test_escapes(void **state)
{
	struct pgo_value v[2];
	struct err e = {0};

	(void)state;
	assert_int_equal(split("a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh\t\\101\\x41\\x4a\\7\\q", v, 2, &e),
	                 0);
	assert_text(&v[0], "a\tb\nc\rd\\e\bf\fg\vh", 15);
	assert_text(&v[1], "AAJ\aq", 5);
}

static void test_escaped_tab_is_not_a_delimiter(void **state)
{
	struct pgo_value v[2];
	struct err e = {0};

	(void)state;
	assert_int_equal(split("x\\\ty\tz", v, 2, &e), 0);
	assert_text(&v[0], "x\ty", 3);
	assert_text(&v[1], "z", 1);
}

static void test_wrong_field_counts(void **state)
{
	struct pgo_value v[3];
	struct err e = {0};

	(void)state;
	assert_int_equal(split("1\t2", v, 3, &e), -1);
	assert_non_null(strstr(e.msg, "2 columns, expected 3"));
	assert_int_equal(split("1\t2\t3\t4", v, 3, &e), -1);
	assert_non_null(strstr(e.msg, "more than 3"));
	assert_int_equal(split("1\t2\\", v, 2, &e), -1);
	assert_non_null(strstr(e.msg, "backslash"));
	/* A table with no columns: COPY writes an empty line per row. */
	assert_int_equal(split("\n", v, 0, &e), 0);
	assert_int_equal(split("x", v, 0, &e), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_fields_and_newline),
	    cmocka_unit_test(test_null_and_lookalikes),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_escaped_tab_is_not_a_delimiter),
	    cmocka_unit_test(test_wrong_field_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
