/*
 * test_json.c — the JSON encoder: type OIDs, typed values, strings, arrays,
 * whole events in both formats.
 *
 * Every JSON text the encoder produces here also goes through jsoncheck_text(), a
 * strict RFC 8259 + UTF-8 validator written independently of the encoder, so
 * a rendering bug that yields invalid JSON fails even where no exact output
 * is asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event/event.h"
#include "event/encoder.h"
#include "event/txmeta.h"
#include "event/jstring.h"
#include "event/key.h"
#include "event/relinfo.h"
#include "event/row.h"
#include "event/value.h"
#include "event/valtype.h"
#include "util/buf.h"

#include "jsoncheck.h"
#include "tuples.h"

static void test_validator_self_check(void **state)
{
	static const char *const good[] = {
	    "0",
	    "-0",
	    "1.5e+3",
	    "\"\"",
	    "\"\\u00e9\\n\"",
	    "[]",
	    "{}",
	    " [1, {\"a\": null}] ",
	    "\"\xf0\x9f\x98\x80\"",
	    "true",
	};
	static const char *const bad[] = {
	    "",
	    "01",
	    "1.",
	    ".5",
	    "+1",
	    "[1,]",
	    "{\"a\"}",
	    "{\"a\":1,}",
	    "\"\x01\"",
	    "\"\\x\"",
	    "\"\xc0\x80\"",
	    "\"\xed\xa0\x80\"",
	    "\"\xf4\x90\x80\x80\"",
	    "\"\xe2\x82\"",
	    "[1] 2",
	    "NaN",
	    "tru",
	    "\"abc",
	};

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(jsoncheck_text(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(jsoncheck_text(bad[i], strlen(bad[i])));
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static struct valtype vt_of(uint32_t oid)
{
	return valtype_for_oid(oid);
}

/* Render one value (explicit length) and compare; the result must be valid. */
static void check_value_n(struct valtype vt, const char *in, size_t len, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	json_write_value(&b, &vt, in, len);
	assert_true(buf_ok(&b));
	assert_non_null(b.data);
	assert_string_equal(b.data, want);
	assert_int_equal(b.len, strlen(want));
	assert_true(jsoncheck_text(b.data, b.len));
	buf_reset(&b);
}

static void check_value(struct valtype vt, const char *in, const char *want)
{
	check_value_n(vt, in, strlen(in), want);
}

static void check_string_n(const char *in, size_t len, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	json_write_string(&b, in, len);
	assert_true(buf_ok(&b));
	assert_string_equal(b.data, want);
	assert_true(jsoncheck_text(b.data, b.len));
	buf_reset(&b);
}

static void check_string(const char *in, const char *want)
{
	check_string_n(in, strlen(in), want);
}

/* ------------------------------------------------------------------------
 * valtype and event
 * ------------------------------------------------------------------------ */

static void assert_vt(uint32_t oid, int kind, int elem, char delim)
{
	struct valtype vt = valtype_for_oid(oid);

	assert_int_equal(vt.kind, kind);
	if (kind == VK_ARRAY)
		assert_int_equal(vt.elem, elem);
	assert_int_equal(vt.delim, delim);
}

static void test_valtype_scalars(void **state)
{
	static const uint32_t numbers[] = {20, 21, 23, 26, 700, 701};
	static const uint32_t strings[] = {25,   1043, 1042, 19,  18,  17, 1083,
	                                   1186, 2950, 869,  650, 829, 0,  99999};

	(void)state;
	assert_vt(16, VK_BOOL, 0, ',');
	for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
		assert_vt(numbers[i], VK_NUMBER, 0, ',');
	assert_vt(1700, VK_DECIMAL, 0, ',');
	assert_vt(114, VK_JSON, 0, ',');
	assert_vt(3802, VK_JSON, 0, ',');
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
		assert_vt(strings[i], VK_STRING, 0, ',');
	/* RFC 3339 unless --time-format postgres (time is one already) */
	assert_vt(1082, VK_DATE, 0, ',');
	assert_vt(1114, VK_TIMESTAMP, 0, ',');
	assert_vt(1184, VK_TIMESTAMPTZ, 0, ',');
	assert_vt(1266, VK_TIMETZ, 0, ',');
	assert_int_equal(valtype_adjust(vt_of(1184), true, false).kind, VK_STRING);
	assert_int_equal(valtype_adjust(vt_of(1184), false, false).kind, VK_TIMESTAMPTZ);
	assert_int_equal(valtype_adjust(vt_of(1185), true, false).elem, VK_STRING);
	assert_int_equal(valtype_adjust(vt_of(1185), true, false).kind, VK_ARRAY);
	assert_int_equal(valtype_adjust(vt_of(23), true, false).kind, VK_NUMBER);
	/* --numeric string: numeric only (int8 and floats stay numbers) */
	assert_int_equal(valtype_adjust(vt_of(1700), false, true).kind, VK_STRING);
	assert_int_equal(valtype_adjust(vt_of(1231), false, true).elem, VK_STRING);
	assert_int_equal(valtype_adjust(vt_of(20), false, true).kind, VK_NUMBER);
	assert_int_equal(valtype_adjust(vt_of(1184), false, true).kind, VK_TIMESTAMPTZ);
}

static void test_valtype_arrays(void **state)
{
	static const struct {
		uint32_t oid;
		int elem;
	} typed[] = {
	    {1000, VK_BOOL},        {1005, VK_NUMBER}, {1007, VK_NUMBER}, {1016, VK_NUMBER},
	    {1028, VK_NUMBER},      {1021, VK_NUMBER}, {1022, VK_NUMBER}, {1231, VK_DECIMAL},
	    {199, VK_JSON},         {3807, VK_JSON},   {1182, VK_DATE},   {1115, VK_TIMESTAMP},
	    {1185, VK_TIMESTAMPTZ}, {1270, VK_TIMETZ},
	};
	static const uint32_t text[] = {1009, 1015, 1014, 1003, 1002, 1001, 1183,
	                                1187, 2951, 1041, 651,  1040, 143,  3905};

	(void)state;
	for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++)
		assert_vt(typed[i].oid, VK_ARRAY, typed[i].elem, ',');
	for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
		assert_vt(text[i], VK_ARRAY, VK_STRING, ',');
	assert_vt(1020, VK_ARRAY, VK_STRING, ';');
}

static void test_valtype_array_of(void **state)
{
	struct valtype vt;

	(void)state;
	vt = valtype_array_of(vt_of(23));
	assert_int_equal(vt.kind, VK_ARRAY);
	assert_int_equal(vt.elem, VK_NUMBER);
	assert_int_equal(vt.delim, ',');
	vt = valtype_array_of(vt_of(603)); /* box: the element type owns the delimiter */
	assert_int_equal(vt.elem, VK_STRING);
	assert_int_equal(vt.delim, ';');
	vt = valtype_array_of(vt_of(1007)); /* no arrays of arrays: text elements */
	assert_int_equal(vt.kind, VK_ARRAY);
	assert_int_equal(vt.elem, VK_STRING);
}

static void test_event_op_name(void **state)
{
	(void)state;
	assert_string_equal(event_op_name(EVENT_INSERT), "insert");
	assert_string_equal(event_op_name(EVENT_UPDATE), "update");
	assert_string_equal(event_op_name(EVENT_DELETE), "delete");
	assert_string_equal(event_op_name(EVENT_TRUNCATE), "truncate");
	assert_string_equal(event_op_name(EVENT_MESSAGE), "message");
}

/* ------------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------------ */

static void test_string_plain(void **state)
{
	(void)state;
	check_string("", "\"\"");
	check_string("hello world", "\"hello world\"");
	check_string("say \"hi\"", "\"say \\\"hi\\\"\"");
	check_string("back\\slash", "\"back\\\\slash\"");
	check_string("a/b\x7f", "\"a/b\x7f\""); /* '/' and DEL need no escape */
	check_string_n(NULL, 0, "\"\"");
}

static void test_string_control_chars(void **state)
{
	static const char *const want[32] = {
	    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
	    "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
	    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
	    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
	};

	(void)state;
	for (int c = 0; c < 32; c++) {
		char in[3] = {'x', (char)c, 'y'};
		char expect[16];

		snprintf(expect, sizeof expect, "\"x%sy\"", want[c]);
		check_string_n(in, sizeof in, expect);
	}
}

/* The escape json_write_string must give one byte in a string of 'a's;
 * "" for a byte copied as it is. */
static const char *escape_of(uint8_t c)
{
	static char u[8];

	if (c == '"')
		return "\\\"";
	if (c == '\\')
		return "\\\\";
	if (c == '\n')
		return "\\n";
	if (c < 0x20) {
		snprintf(u, sizeof u, "\\u%04x", c);
		return strchr("\b\f\r\t", c) ? NULL : u; /* NULL: short escapes, tested above */
	}
	return c >= 0x80 ? "\\ufffd" : "";
}

/* The word-at-a-time scan must find a byte to escape wherever it sits in
 * the 8-byte words and in the tail, and in the json validator too. */
static void test_string_every_position(void **state)
{
	static const uint8_t special[] = {'"', '\\', '\n', 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xff};

	(void)state;
	for (size_t len = 1; len <= 40; len++) {
		for (size_t at = 0; at < len; at++) {
			for (size_t k = 0; k < sizeof special; k++) {
				const char *esc = escape_of(special[k]);
				char in[48], want[128], json_in[160], json_want[160];

				if (esc == NULL)
					continue;
				memset(in, 'a', len);
				in[at] = (char)special[k];
				snprintf(want, sizeof want, "\"%.*s%s%.*s\"", (int)at, in,
				         *esc ? esc : (const char[]){(char)special[k], 0},
				         (int)(len - at - 1), in + at + 1);
				check_string_n(in, len, want);
				/* a json text holding the same bytes, escaped, is copied */
				snprintf(json_in, sizeof json_in, "[%s]", want);
				snprintf(json_want, sizeof json_want, "[%s]", want);
				if (special[k] >= 0x80)
					continue; /* escaped to U+FFFD: not the same bytes */
				check_value(vt_of(3802), json_in, json_want);
			}
		}
	}
}

static void test_string_utf8_valid(void **state)
{
	(void)state;
	check_string("caf\xc3\xa9", "\"caf\xc3\xa9\"");             /* 2 bytes */
	check_string("\xe2\x82\xac 5", "\"\xe2\x82\xac 5\"");       /* 3 bytes */
	check_string("\xf0\x9f\x98\x80!", "\"\xf0\x9f\x98\x80!\""); /* 4 bytes */
	check_string("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");   /* U+10FFFF */
	check_string("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");           /* U+D7FF */
	check_string("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");           /* U+FFFD itself */
}

static void test_string_utf8_invalid(void **state)
{
	(void)state;
	check_string("a\x80z", "\"a\\ufffdz\"");                   /* stray continuation */
	check_string("\xc0\x80", "\"\\ufffd\\ufffd\"");            /* overlong NUL */
	check_string("\xc1\xbf", "\"\\ufffd\\ufffd\"");            /* overlong */
	check_string("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""); /* overlong 3-byte */
	check_string("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	check_string("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate D800 */
	check_string("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate DFFF */
	check_string("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	check_string("\xf5\x80", "\"\\ufffd\\ufffd\"");
	check_string("\xfe\xff", "\"\\ufffd\\ufffd\"");
	check_string("x\xe2\x82", "\"x\\ufffd\\ufffd\""); /* truncated at the end */
	check_string("\xe2\x82"
	             "A",
	             "\"\\ufffd\\ufffdA\"");                       /* truncated mid-text */
	check_string("\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\""); /* truncated emoji */
	check_string("\xc3\xa9\xc3", "\"\xc3\xa9\\ufffd\"");
}

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(json_utf8_valid("", 0));
	assert_true(json_utf8_valid("abc\xc3\xa9\xf0\x9f\x98\x80", 9));
	assert_true(json_utf8_valid("a\0b", 3)); /* NUL is valid UTF-8 */
	assert_false(json_utf8_valid("\xff", 1));
	assert_false(json_utf8_valid("\xed\xa0\x80", 3));
	assert_false(json_utf8_valid("\xe2\x82", 2));
}

/* ------------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------------ */

static void test_value_bool(void **state)
{
	struct valtype vt = vt_of(16);

	(void)state;
	check_value(vt, "t", "true");
	check_value(vt, "f", "false");
	check_value(vt, "true", "\"true\"");
	check_value(vt, "", "\"\"");
	check_value(vt, "T", "\"T\"");
}

static void test_value_number(void **state)
{
	struct valtype vt = vt_of(1700);

	(void)state;
	check_value(vt, "0", "0");
	check_value(vt, "-0", "-0");
	check_value(vt, "42", "42");
	check_value(vt, "-17", "-17");
	check_value(vt, "1234567890123456789012345678901234567890",
	            "1234567890123456789012345678901234567890");
	check_value(vt, "3.14159265358979323846264338327950288419716939937510",
	            "3.14159265358979323846264338327950288419716939937510");
	check_value(vt, "9223372036854775807", "9223372036854775807");
	check_value(vt, "1e+100", "1e+100");
	check_value(vt, "1.5E-3", "1.5E-3");
	check_value(vt, "2e5", "2e5");
	check_value(vt, "NaN", "\"NaN\"");
	check_value(vt, "Infinity", "\"Infinity\"");
	check_value(vt, "-Infinity", "\"-Infinity\"");
	check_value(vt, "12abc", "\"12abc\"");
	check_value(vt, "", "\"\"");
	check_value(vt, "-", "\"-\"");
	check_value(vt, "01", "\"01\"");
	check_value(vt, ".5", "\".5\"");
	check_value(vt, "1.", "\"1.\"");
	check_value(vt, "+1", "\"+1\"");
	check_value(vt, "1e", "\"1e\"");
	check_value(vt, "1e+", "\"1e+\"");
	check_value(vt, " 1", "\" 1\"");
	check_value(vt, "1 ", "\"1 \"");
	check_value(vt, "0x10", "\"0x10\"");
	check_value_n(vt, "1\0", 2, "\"1\\u0000\"");
}

static void test_value_string_kind(void **state)
{
	(void)state;
	check_value(vt_of(25), "plain \"text\"\n", "\"plain \\\"text\\\"\\n\"");
	check_value(valtype_adjust(vt_of(1184), true, false), "2026-11-24 14:30:00+00",
	            "\"2026-11-24 14:30:00+00\"");
	check_value(vt_of(2950), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
	check_value(vt_of(25), "42", "\"42\""); /* text stays text */
}

static void test_value_json(void **state)
{
	struct valtype vt = vt_of(3802);

	(void)state;
	check_value(vt, "{\"a\": 1, \"b\": [true, null]}", "{\"a\": 1, \"b\": [true, null]}");
	check_value(vt_of(114), "{\n\t\"a\": [1,\r\n 2]\n}", "{  \"a\": [1,   2] }");
	check_value(vt_of(114), "\"line\\nbreak\\t\"", "\"line\\nbreak\\t\"");
	check_value(vt, "5", "5");
	check_value(vt, "-1.5e3", "-1.5e3");
	check_value(vt, "\"s\"", "\"s\"");
	check_value(vt, "null", "null");
	check_value(vt, "[]", "[]");
	check_value(vt, "{}", "{}");
	check_value(vt, "{\"\xc3\xa9\": \"\xf0\x9f\x98\x80\"}",
	            "{\"\xc3\xa9\": \"\xf0\x9f\x98\x80\"}");
	check_value(vt, "\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"");
	/* not what the type promises: the whole text as a string */
	check_value(vt, "{\"a\":}", "\"{\\\"a\\\":}\"");
	check_value(vt, "[1,]", "\"[1,]\"");
	check_value(vt, "{\"a\" 1}", "\"{\\\"a\\\" 1}\"");
	check_value(vt, "{1: 2}", "\"{1: 2}\"");
	check_value(vt, "[1] [2]", "\"[1] [2]\"");
	check_value(vt, "", "\"\"");
	check_value(vt, "NaN", "\"NaN\"");
	check_value(vt, "\"a\nb\"", "\"\\\"a\\nb\\\"\"");
	check_value(vt, "\"\\q\"", "\"\\\"\\\\q\\\"\"");
	check_value(vt, "\"\xff\"", "\"\\\"\\ufffd\\\"\"");
	check_value(vt, "[1", "\"[1\"");
	check_value(vt, "{\"a\":1", "\"{\\\"a\\\":1\"");
	check_value(vt, "[1]]", "\"[1]]\"");
	check_value(vt, "{\"a\":1]", "\"{\\\"a\\\":1]\"");
}

static void test_value_json_deep(void **state)
{
	struct valtype vt = vt_of(3802);
	size_t depth = 5000, n = 2 * depth;
	char *s = malloc(n + 1);
	struct buf b;

	(void)state;
	assert_non_null(s);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[n] = '\0';
	/* 2000 levels embed as is; 5000 exceed the encoder's limit: a string */
	buf_init(&b, 0);
	json_write_value(&b, &vt, s + depth - 2000, 4000);
	assert_int_equal(b.len, 4000);
	assert_memory_equal(b.data, s + depth - 2000, 4000);
	buf_clear(&b);
	json_write_value(&b, &vt, s, n);
	assert_true(buf_ok(&b));
	assert_int_equal(b.len, n + 2);
	assert_int_equal(b.data[0], '"');
	buf_reset(&b);
	free(s);
}

/* ------------------------------------------------------------------------
 * Arrays
 * ------------------------------------------------------------------------ */

static void test_array_numbers(void **state)
{
	struct valtype vt = vt_of(1007);

	(void)state;
	check_value(vt, "{1,2,3}", "[1,2,3]");
	check_value(vt, "{}", "[]");
	check_value(vt, "{-5}", "[-5]");
	check_value(vt, "{1,NULL,3}", "[1,null,3]");
	check_value(vt, "{null,Null}", "[null,null]");
	check_value(vt_of(1231), "{1.5,NaN,-0,Infinity,12345678901234567890.000001}",
	            "[1.5,\"NaN\",-0,\"Infinity\",12345678901234567890.000001]");
	check_value(vt_of(1022), "{1e+100,-1.5e-07}", "[1e+100,-1.5e-07]");
	check_value(vt, " { 1 , 2 } ", "[1,2]");
}

static void test_array_bools(void **state)
{
	(void)state;
	check_value(vt_of(1000), "{t,f,NULL}", "[true,false,null]");
	check_value(vt_of(1000), "{t,\"f\",x}", "[true,false,\"x\"]");
}

static void test_array_text(void **state)
{
	struct valtype vt = vt_of(1009);

	(void)state;
	check_value(vt, "{a,b}", "[\"a\",\"b\"]");
	check_value(vt, "{\"a \\\"q\\\"\",\"b\\\\c\",\"x,y\",NULL,\"NULL\",\"\",  spaced out  }",
	            "[\"a \\\"q\\\"\",\"b\\\\c\",\"x,y\",null,\"NULL\",\"\",\"spaced out\"]");
	check_value(vt, "{\"{braces}\",\"tab\there\"}", "[\"{braces}\",\"tab\\there\"]");
	check_value(vt, "{\"\xf0\x9f\x98\x80\",\xc3\xa9}", "[\"\xf0\x9f\x98\x80\",\"\xc3\xa9\"]");
	check_value(vt, "{\"\\\xc3\xa9\"}", "[\"\xc3\xa9\"]"); /* escaped multibyte lead */
	check_value(vt, "{a\\,b,c\\ }", "[\"a,b\",\"c \"]");   /* escapes when unquoted */
	check_value(vt, "{N\\ULL}", "[\"NULL\"]");             /* escaped: not SQL null */
	check_value(vt, "{\"\\\\\"}", "[\"\\\\\"]");
	check_value(vt_of(2951), "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
	            "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]");
	check_value(vt_of(1185), "{\"2026-11-24 14:30:00+00\"}", "[\"2026-11-24T14:30:00Z\"]");
	check_value(valtype_adjust(vt_of(1185), true, false), "{\"2026-11-24 14:30:00+00\"}",
	            "[\"2026-11-24 14:30:00+00\"]");
}

/* Postgres's ISO output (DateStyle=ISO, TimeZone=UTC, as the connection
 * sets them) and RFC 3339 (section 5.6), written out by hand. */
static void test_value_rfc3339(void **state)
{
	(void)state;
	check_value(vt_of(1184), "2026-12-01 18:50:07.573885+00",
	            "\"2026-12-01T18:50:07.573885Z\"");
	check_value(vt_of(1184), "2026-12-01 18:50:07+00", "\"2026-12-01T18:50:07Z\"");
	check_value(vt_of(1184), "2026-12-01 18:50:07.5+05:30", "\"2026-12-01T18:50:07.5+05:30\"");
	check_value(vt_of(1184), "2026-12-01 18:50:07-08", "\"2026-12-01T18:50:07-08:00\"");
	check_value(vt_of(1114), "2026-12-01 18:50:07.573885", "\"2026-12-01T18:50:07.573885\"");
	check_value(vt_of(1082), "2026-12-01", "\"2026-12-01\"");
	check_value(vt_of(1266), "18:50:07.573885+02", "\"18:50:07.573885+02:00\"");
	check_value(vt_of(1266), "18:50:07+00", "\"18:50:07Z\"");
	check_value(vt_of(1266), "18:50:07-03:30", "\"18:50:07-03:30\"");
	/* The documented forms RFC 3339 has no word for. */
	check_value(vt_of(1184), "infinity", "\"infinity\"");
	check_value(vt_of(1114), "-infinity", "\"-infinity\"");
	check_value(vt_of(1082), "0044-03-15 BC", "\"-0043-03-15\"");
	check_value(vt_of(1082), "0001-01-01 BC", "\"0000-01-01\"");
	check_value(vt_of(1184), "4713-11-24 00:00:00+00 BC", "\"-4712-11-24T00:00:00Z\"");
	check_value(vt_of(1114), "294276-12-31 23:59:59.999999",
	            "\"294276-12-31T23:59:59.999999\"");
	check_value(vt_of(1082), "10000-01-01", "\"10000-01-01\"");
	/* An offset in seconds (a historical zone's) cannot be written: as is. */
	check_value(vt_of(1266), "12:00:00+05:53:28", "\"12:00:00+05:53:28\"");
	check_value(vt_of(1184), "1850-01-01 00:00:00+00:19:32",
	            "\"1850-01-01 00:00:00+00:19:32\"");
	/* Not what Postgres prints: the text as it is. */
	check_value(vt_of(1082), "2026-1-01", "\"2026-1-01\"");
	check_value(vt_of(1114), "2026-12-01T18:50:07", "\"2026-12-01T18:50:07\"");
	check_value(vt_of(1114), "2026-12-01 18:50:07.", "\"2026-12-01 18:50:07.\"");
	check_value(vt_of(1184), "2026-12-01 18:50:07", "\"2026-12-01 18:50:07\"");
	check_value(vt_of(1266), "18:50:07", "\"18:50:07\"");
	check_value(vt_of(1082), "", "\"\"");
}

static void test_array_nested(void **state)
{
	(void)state;
	check_value(vt_of(1007), "{{1,2},{3,4}}", "[[1,2],[3,4]]");
	check_value(vt_of(1007), "{{{1,2},{3,4}},{{5,6},{7,NULL}}}",
	            "[[[1,2],[3,4]],[[5,6],[7,null]]]");
	check_value(vt_of(1009), "{{a,\"b c\"},{\"\",NULL}}", "[[\"a\",\"b c\"],[\"\",null]]");
	check_value(vt_of(1007), "{{},{}}", "[[],[]]");
	check_value(vt_of(1007), "{{{{{{1}}}}}}", "[[[[[[1]]]]]]");
}

static void test_array_dimensions(void **state)
{
	(void)state;
	check_value(vt_of(1007), "[0:1]={1,2}", "[1,2]");
	check_value(vt_of(1007), "[1:2][1:1]={{1},{2}}", "[[1],[2]]");
	check_value(vt_of(1009), "[-2:-2]={x}", "[\"x\"]");
	check_value(vt_of(1007), "[0:1]", "\"[0:1]\"");
}

static void test_array_malformed(void **state)
{
	struct valtype vt = vt_of(1007);

	(void)state;
	check_value(vt, "{1,2", "\"{1,2\"");
	check_value(vt, "{1,,2}", "\"{1,,2}\"");
	check_value(vt, "{,}", "\"{,}\"");
	check_value(vt, "1,2", "\"1,2\"");
	check_value(vt, "{1}x", "\"{1}x\"");
	check_value(vt, "{{1}", "\"{{1}\"");
	check_value(vt, "{1}}", "\"{1}}\"");
	check_value(vt, "{\"a}", "\"{\\\"a}\"");
	check_value(vt, "{a\"b\"}", "\"{a\\\"b\\\"}\"");
	check_value(vt, "{1 {2}}", "\"{1 {2}}\"");
	check_value(vt, "{\"a\"b}", "\"{\\\"a\\\"b}\"");
	check_value(vt, "{a\\}", "\"{a\\\\}\"");
	check_value(vt, "", "\"\"");
	check_value(vt,
	            "{{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}}}", /* deeper than any Postgres array */
	            "\"{{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}}}\"");
}

static void test_array_box(void **state)
{
	(void)state;
	check_value(vt_of(1020), "{(1,1),(0,0);(3,3),(2,2)}", "[\"(1,1),(0,0)\",\"(3,3),(2,2)\"]");
	check_value(vt_of(1020), "{(1,1),(0,0)}", "[\"(1,1),(0,0)\"]");
}

static void test_array_json(void **state)
{
	struct valtype vt = vt_of(3807);

	(void)state;
	check_value(vt, "{\"{\\\"a\\\": 1}\",\"[1, 2]\",NULL,\"null\",5,\"\\\"s\\\"\"}",
	            "[{\"a\": 1},[1, 2],null,null,5,\"s\"]");
	/* an element that is not JSON becomes a string; the array survives */
	check_value(vt, "{\"{bad\"}", "[\"{bad\"]");
	/* array_out escapes only '"' and '\\': json whitespace arrives raw */
	check_value(vt_of(199), "{\"{\\\"k\\\":\n\\\"v\\\"}\"}", "[{\"k\": \"v\"}]");
}

/* Escaped elements are unescaped in scratch space at the end of the buf; a
 * long one in a small buf makes it grow in the middle of an array. */
static void test_array_large_escaped(void **state)
{
	size_t n = 10000;
	char *in = malloc(4 * n + 16), *want = malloc(4 * n + 16);
	struct valtype vt = vt_of(1009);
	size_t k = 0, w = 0;

	(void)state;
	assert_non_null(in);
	assert_non_null(want);
	k += (size_t)sprintf(in + k, "{x,\"");
	w += (size_t)sprintf(want + w, "[\"x\",\"");
	for (size_t i = 0; i < n; i++) {
		in[k++] = '\\';
		in[k++] = '"';
		want[w++] = '\\';
		want[w++] = '"';
	}
	sprintf(in + k, "\",y}");
	sprintf(want + w, "\",\"y\"]");
	check_value(vt, in, want);
	free(in);
	free(want);
}

static void test_buf_limit(void **state)
{
	struct valtype vt = vt_of(1009);
	const char *in = "{\"aaaaaaaaaaaaaaaa\\\\\",\"bbbbbbbbbbbbbbbbbbbbbbb\"}";
	struct buf b;

	(void)state;
	for (size_t limit = 1; limit < 64; limit++) {
		buf_init(&b, limit);
		json_write_value(&b, &vt, in, strlen(in));
		if (buf_ok(&b))
			assert_true(jsoncheck_text(b.data, b.len));
		buf_reset(&b);
	}
}

/* ------------------------------------------------------------------------
 * Random inputs: whatever the bytes, the output is valid JSON
 * ------------------------------------------------------------------------ */

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void test_random_values_valid(void **state)
{
	static const char alphabet[] = "{}\"\\,; \t\n01-.eE+tfnulNULL[]:=aé\x80\xc3\xff\x01";
	static const uint32_t oids[] = {16, 23, 1700, 114, 3802, 25, 1007, 1009, 1000, 3807, 1020};
	struct buf b;
	uint32_t seed = 0x9e3779b9;
	char in[40];

	(void)state;
	buf_init(&b, 0);
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = rng_next(&seed) % sizeof in;
		struct valtype vt = vt_of(oids[rng_next(&seed) % (sizeof oids / sizeof oids[0])]);

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rng_next(&seed) % (sizeof alphabet - 1)];
		buf_clear(&b);
		json_write_value(&b, &vt, in, len);
		assert_true(buf_ok(&b));
		if (!jsoncheck_text(b.data, b.len))
			fail_msg("invalid JSON for %.*s: %s", (int)len, in, b.data);
	}
	buf_reset(&b);
}

/* json_utf8_valid agrees with the test's own decoder on random bytes. */
static void test_random_utf8(void **state)
{
	uint32_t seed = 12345;
	unsigned char in[8];

	(void)state;
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = 1 + rng_next(&seed) % sizeof in;

		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(rng_next(&seed) % 4 ? 0x80 + rng_next(&seed) % 0x80
			                                            : rng_next(&seed) % 0x80);
		assert_int_equal(json_utf8_valid((const char *)in, len),
		                 jsoncheck_utf8((const char *)in, len));
	}
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* public.users(id int4 key, name text, email text, tags text[], meta jsonb) */
static struct relcol users_cols[] = {
    {"id", 23, -1, RELCACHE_COL_KEY},
    {"name", 25, -1, 0},
    {"email", 25, -1, 0},
    {"tags", 1009, -1, 0},
    {"meta", 3802, -1, 0},
};
static struct relation users = {16384, "public", "users", 'd', 5, users_cols};

/* billing."Order Items"(order_id int8 key, line int4 key, blob bytea, ok bool) */
static struct relcol items_cols[] = {
    {"order_id", 20, -1, RELCACHE_COL_KEY},
    {"line", 23, -1, RELCACHE_COL_KEY},
    {"blob", 17, -1, 0},
    {"ok", 16, -1, 0},
};
static struct relation items = {16390, "billing", "Order Items", 'f', 4, items_cols};

/* What the daemon derives from them (relmap_update: each column its own
 * type), without the encoder's cache: check_event adds it. */
static struct coltype users_types[5], items_types[4];
static struct relinfo users_ri = {.remote = &users, .types = users_types};
static struct relinfo items_ri = {.remote = &items, .types = items_types};

static const struct event_txn txn = {745, 0x16C75500, 0};

static int setup_relations(void **state)
{
	(void)state;
	for (int i = 0; i < users.ncols; i++)
		users_types[i] = (struct coltype){users_cols[i].typoid, false};
	for (int i = 0; i < items.ncols; i++)
		items_types[i] = (struct coltype){items_cols[i].typoid, false};
	return 0;
}

enum format { FORMAT_JSON, FORMAT_PRETTY };

/* Append ev in fmt, as a fresh encoder writes it. */
static void write_event(struct buf *b, const struct event *ev, enum format fmt)
{
	struct encoder *enc = encoder_new(fmt == FORMAT_JSON ? "json" : "pretty", NULL);

	assert_non_null(enc);
	encoder_write(enc, b, ev);
	encoder_free(enc);
}

/* commit_time 2026-11-24T14:30:00.123456Z as a Postgres timestamp */
static struct event_txn txn_at(void)
{
	struct event_txn t = txn;

	t.commit_time = INT64_C(848845800123456);
	return t;
}

/* The event in fmt must be want, both as written without the encoder's
 * per-relation cache and with it (encoder_prepare_relation). */
static void check_event(const struct event *ev, enum format fmt, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	write_event(&b, ev, fmt);
	assert_true(buf_ok(&b));
	assert_string_equal(b.data, want);
	if (fmt == FORMAT_JSON)
		assert_true(jsoncheck_line(b.data, b.len));
	if (ev->rel) {
		struct relinfo prepared = *ev->rel;
		struct event pev = *ev;
		struct encoder *enc = encoder_new(fmt == FORMAT_JSON ? "json" : "pretty", NULL);

		prepared.enc_data = NULL;
		prepared.enc_free = NULL;
		encoder_prepare_relation(enc, &prepared);
		assert_non_null(prepared.enc_data);
		pev.rel = &prepared;
		buf_clear(&b);
		encoder_write(enc, &b, &pev);
		assert_string_equal(b.data, want);
		prepared.enc_free(prepared.enc_data);
		encoder_free(enc);
	}
	buf_reset(&b);
}

#define HDR(op)                                                                                    \
	"{\"op\":\"" op "\",\"schema\":\"public\",\"table\":\"users\",\"lsn\":\"0/16C752F8\","     \
	"\"commit_lsn\":\"0/"                                                                      \
	"16C75500\",\"xid\":745,\"commit_time\":\"2026-11-24T14:30:00.123456Z\""

static const struct pgo_value row1[] = {
    TXT("1"), TXT("Mujib"), TXT("m@example.com"), TXT("{a,\"b c\"}"), TXT("{\"k\": [1, 2]}"),
};
static const struct pgo_tuple tup1 = {5, row1};

/* --tx-events: txmeta numbers the changes of a transaction over more
 * tables than its first allocation holds (8), and the boundaries carry its
 * counts, in the order the tables were first touched. */
static void test_tx_events(void **state)
{
	static struct relation rels[10];
	static struct relinfo ris[10];
	static char names[10][8];
	struct event_txn t = txn_at();
	struct txmeta tm;
	struct event ev;
	struct buf want;

	(void)state;
	txmeta_init(&tm);
	txmeta_begin(&tm);
	for (int r = 0; r < 10; r++) {
		snprintf(names[r], sizeof names[r], "t%d", r);
		rels[r] =
		    (struct relation){(uint32_t)(20000 + r), "public", names[r], 'd', 0, NULL};
		ris[r] = (struct relinfo){.remote = &rels[r]};
	}
	for (int k = 0; k < 12; k++) { /* t0..t9, then t0 and t5 again */
		int r = k < 10 ? k : (k == 10 ? 0 : 5);

		ev = (struct event){.op = EVENT_INSERT, .txn = &t, .rel = &ris[r]};
		assert_int_equal(txmeta_number(&tm, &ev), 0);
		assert_int_equal(ev.tx_order, (uint64_t)k + 1);
		assert_int_equal(ev.tx_table_order, k < 10 ? 1 : 2);
	}
	ev = (struct event){.op = EVENT_BEGIN, .lsn = 0x16C752F8, .txn = &t};
	check_event(&ev, FORMAT_JSON,
	            "{\"op\":\"begin\",\"lsn\":\"0/16C752F8\",\"commit_lsn\":\"0/16C75500\","
	            "\"xid\":745,\"commit_time\":\"2026-11-24T14:30:00.123456Z\"}\n");
	check_event(&ev, FORMAT_PRETTY, "[BEGIN] xid=745 lsn=0/16C752F8\n");
	ev = (struct event){.op = EVENT_COMMIT, .lsn = 0x16C75530, .txn = &t, .tx = &tm};
	buf_init(&want, 0);
	buf_puts(&want,
	         "{\"op\":\"commit\",\"lsn\":\"0/16C75530\",\"commit_lsn\":\"0/16C75500\","
	         "\"xid\":745,\"commit_time\":\"2026-11-24T14:30:00.123456Z\",\"events\":12,"
	         "\"tables\":{\"public.t0\":2,\"public.t1\":1,\"public.t2\":1,\"public.t3\":1,"
	         "\"public.t4\":1,\"public.t5\":2,\"public.t6\":1,\"public.t7\":1,"
	         "\"public.t8\":1,\"public.t9\":1}}\n");
	check_event(&ev, FORMAT_JSON, want.data);
	check_event(&ev, FORMAT_PRETTY, "[COMMIT] xid=745 events=12 lsn=0/16C75530\n");
	buf_reset(&want);
	/* A new transaction counts from zero again. */
	txmeta_begin(&tm);
	ev = (struct event){.op = EVENT_DELETE, .txn = &t, .rel = &ris[3]};
	assert_int_equal(txmeta_number(&tm, &ev), 0);
	assert_int_equal(ev.tx_order, 1);
	assert_int_equal(tm.n, 1);
	/* A numbered change carries its place after the transaction's members. */
	ev = (struct event){.op = EVENT_INSERT,
	                    .lsn = 0x16C752F8,
	                    .txn = &t,
	                    .rel = &users_ri,
	                    .newtup = &tup1,
	                    .tx_order = 3};
	check_event(&ev, FORMAT_JSON,
	            HDR("insert") ",\"tx_order\":3,\"new\":{\"id\":1,\"name\":\"Mujib\","
	                          "\"email\":\"m@example.com\",\"tags\":[\"a\",\"b c\"],"
	                          "\"meta\":{\"k\": [1, 2]}}}\n");
	txmeta_reset(&tm);
}

static void test_event_insert(void **state)
{
	struct event_txn t = txn_at();
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 0x16C752F8, .txn = &t, .rel = &users_ri, .newtup = &tup1};

	(void)state;
	check_event(
	    &ev, FORMAT_JSON,
	    HDR("insert") ",\"new\":{\"id\":1,\"name\":\"Mujib\",\"email\":\"m@example.com\","
	                  "\"tags\":[\"a\",\"b c\"],\"meta\":{\"k\": [1, 2]}}}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[INSERT] table=users lsn=0/16C752F8\n"
	            "data={\n"
	            "  \"id\": 1,\n"
	            "  \"name\": \"Mujib\",\n"
	            "  \"email\": \"m@example.com\",\n"
	            "  \"tags\": [\"a\",\"b c\"],\n"
	            "  \"meta\": {\"k\": [1, 2]}\n"
	            "}\n");
}

static void test_event_insert_nulls(void **state)
{
	static const struct pgo_value vals[] = {TXT("2"), NUL, NUL, NUL, NUL};
	static const struct pgo_tuple tup = {5, vals};
	struct event_txn t = txn_at();
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 0x16C752F8, .txn = &t, .rel = &users_ri, .newtup = &tup};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            HDR("insert") ",\"new\":{\"id\":2,\"name\":null,\"email\":null,\"tags\":null,"
	                          "\"meta\":null}}\n");
}

static void test_event_update_no_old(void **state)
{
	static const struct pgo_value vals[] = {TXT("1"), TXT("Bum"), TOAST, NUL, TOAST};
	static const struct pgo_tuple tup = {5, vals};
	struct event_txn t = txn_at();
	struct event ev = {
	    .op = EVENT_UPDATE, .lsn = 0x16C752F8, .txn = &t, .rel = &users_ri, .newtup = &tup};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            HDR("update") ",\"new\":{\"id\":1,\"name\":\"Bum\",\"tags\":null},"
	                          "\"unchanged_toast\":[\"email\",\"meta\"]}\n");
	/* no old tuple: the key comes from the new row */
	check_event(&ev, FORMAT_PRETTY,
	            "[UPDATE] table=users lsn=0/16C752F8\n"
	            "key={\n  \"id\": 1\n}\n"
	            "new={\n  \"id\": 1,\n  \"name\": \"Bum\",\n  \"tags\": null\n}\n");
}

static void test_event_update_key(void **state)
{
	/* the key changed: pgoutput sends the old key, nulls for the rest */
	static const struct pgo_value oldv[] = {TXT("1"), NUL, NUL, NUL, NUL};
	static const struct pgo_value newv[] = {TXT("7"), TXT("Bum"), TXT("b@x"), NUL, TXT("[]")};
	static const struct pgo_tuple oldt = {5, oldv}, newt = {5, newv};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_UPDATE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .rel = &users_ri,
	                   .old_kind = 'K',
	                   .oldtup = &oldt,
	                   .newtup = &newt};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            HDR("update") ",\"old\":{\"id\":1},\"new\":{\"id\":7,\"name\":\"Bum\","
	                          "\"email\":\"b@x\",\"tags\":null,\"meta\":[]}}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[UPDATE] table=users lsn=0/16C752F8\n"
	            "key={\n  \"id\": 1\n}\n"
	            "new={\n  \"id\": 7,\n  \"name\": \"Bum\",\n  \"email\": \"b@x\",\n"
	            "  \"tags\": null,\n  \"meta\": []\n}\n");
}

static void test_event_update_full(void **state)
{
	static const struct pgo_value oldv[] = {TXT("1"), TXT("Mujib"), TXT("m@x"), NUL, TXT("{}")};
	static const struct pgo_value newv[] = {TXT("1"), TXT("Bum"), TXT("m@x"), TXT("{z}"),
	                                        TOAST};
	static const struct pgo_tuple oldt = {5, oldv}, newt = {5, newv};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_UPDATE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .rel = &users_ri,
	                   .old_kind = 'O',
	                   .oldtup = &oldt,
	                   .newtup = &newt};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            HDR("update") ",\"old\":{\"id\":1,\"name\":\"Mujib\",\"email\":\"m@x\","
	                          "\"tags\":null,\"meta\":{}},"
	                          "\"new\":{\"id\":1,\"name\":\"Bum\",\"email\":\"m@x\","
	                          "\"tags\":[\"z\"]},\"unchanged_toast\":[\"meta\"]}\n");
	/* only what changed; meta is unchanged TOAST, so not a change */
	check_event(&ev, FORMAT_PRETTY,
	            "[UPDATE] table=users lsn=0/16C752F8\n"
	            "old={\n  \"name\": \"Mujib\",\n  \"tags\": null\n}\n"
	            "new={\n  \"name\": \"Bum\",\n  \"tags\": [\"z\"]\n}\n");
}

static void test_event_update_full_nothing_changed(void **state)
{
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_UPDATE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .rel = &users_ri,
	                   .old_kind = 'O',
	                   .oldtup = &tup1,
	                   .newtup = &tup1};

	(void)state;
	check_event(&ev, FORMAT_PRETTY, "[UPDATE] table=users lsn=0/16C752F8\nold={}\nnew={}\n");
}

static void test_event_delete_key(void **state)
{
	static const struct pgo_value oldv[] = {TXT("1"), NUL, NUL, NUL, NUL};
	static const struct pgo_tuple oldt = {5, oldv};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_DELETE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .rel = &users_ri,
	                   .old_kind = 'K',
	                   .oldtup = &oldt};

	(void)state;
	check_event(&ev, FORMAT_JSON, HDR("delete") ",\"old\":{\"id\":1}}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[DELETE] table=users lsn=0/16C752F8\ndata={\n  \"id\": 1\n}\n");
}

static void test_event_delete_full(void **state)
{
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_DELETE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .rel = &users_ri,
	                   .old_kind = 'O',
	                   .oldtup = &tup1};

	(void)state;
	check_event(
	    &ev, FORMAT_JSON,
	    HDR("delete") ",\"old\":{\"id\":1,\"name\":\"Mujib\",\"email\":\"m@example.com\","
	                  "\"tags\":[\"a\",\"b c\"],\"meta\":{\"k\": [1, 2]}}}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[DELETE] table=users lsn=0/16C752F8\n"
	            "data={\n"
	            "  \"id\": 1,\n"
	            "  \"name\": \"Mujib\",\n"
	            "  \"email\": \"m@example.com\",\n"
	            "  \"tags\": [\"a\",\"b c\"],\n"
	            "  \"meta\": {\"k\": [1, 2]}\n"
	            "}\n");
}

/* Non-public schema, a name that needs quoting, binary and bool columns. */
static void test_event_other_schema_binary(void **state)
{
	static const struct pgo_value vals[] = {
	    TXT("9007199254740993"), TXT("3"), {PGO_COL_BINARY, 4, "\x00\xab\xff\x10"}, TXT("t")};
	static const struct pgo_tuple tup = {4, vals};
	struct event_txn t = txn_at();
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 0x100000001ULL, .txn = &t, .rel = &items_ri, .newtup = &tup};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            "{\"op\":\"insert\",\"schema\":\"billing\",\"table\":\"Order Items\","
	            "\"lsn\":\"1/1\",\"commit_lsn\":\"0/16C75500\",\"xid\":745,"
	            "\"commit_time\":\"2026-11-24T14:30:00.123456Z\",\"new\":{"
	            "\"order_id\":9007199254740993,\"line\":3,\"blob\":\"\\\\x00abff10\","
	            "\"ok\":true}}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[INSERT] table=billing.\"Order Items\" lsn=1/1\n"
	            "data={\n"
	            "  \"order_id\": 9007199254740993,\n"
	            "  \"line\": 3,\n"
	            "  \"blob\": \"\\\\x00abff10\",\n"
	            "  \"ok\": true\n"
	            "}\n");
}

/* Key columns of a composite key with REPLICA IDENTITY FULL and 'K'. */
static void test_event_delete_composite_key(void **state)
{
	static const struct pgo_value oldv[] = {TXT("5"), TXT("2"), NUL, NUL};
	static const struct pgo_tuple oldt = {4, oldv};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_DELETE,
	                   .lsn = 0x10,
	                   .txn = &t,
	                   .rel = &items_ri,
	                   .old_kind = 'K',
	                   .oldtup = &oldt};
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	write_event(&b, &ev, FORMAT_JSON);
	assert_non_null(strstr(b.data, ",\"old\":{\"order_id\":5,\"line\":2}}\n"));
	assert_true(jsoncheck_line(b.data, b.len));
	buf_reset(&b);
}

static void test_event_truncate(void **state)
{
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_TRUNCATE, .lsn = 0x16C752F8, .txn = &t, .rel = &users_ri};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            HDR("truncate") ",\"cascade\":false,\"restart_identity\":false}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[TRUNCATE] table=users lsn=0/16C752F8 cascade=false restart_identity=false\n");
	ev.cascade = true;
	ev.restart_identity = true;
	ev.rel = &items_ri;
	check_event(&ev, FORMAT_PRETTY,
	            "[TRUNCATE] table=billing.\"Order Items\" lsn=0/16C752F8 cascade=true "
	            "restart_identity=true\n");
}

#define MSG_HDR                                                                                    \
	"{\"op\":\"message\",\"lsn\":\"0/16C752F8\",\"commit_lsn\":\"0/16C75500\",\"xid\":745,"    \
	"\"commit_time\":\"2026-11-24T14:30:00.123456Z\""

static void test_event_message_utf8(void **state)
{
	static const char body[] = "hello \"w\"\n\xc3\xa9";
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_MESSAGE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .transactional = true,
	                   .prefix = "p",
	                   .content = (const uint8_t *)body,
	                   .content_len = sizeof body - 1};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            MSG_HDR ",\"transactional\":true,\"prefix\":\"p\","
	                    "\"content\":\"hello \\\"w\\\"\\n\xc3\xa9\"}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[MESSAGE] prefix=p lsn=0/16C752F8\ncontent=\"hello \\\"w\\\"\\n\xc3\xa9\"\n");
}

static void test_event_message_binary(void **state)
{
	static const uint8_t body[] = {0x00, 0xff, 0x10, 0x80, 0x41};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_MESSAGE,
	                   .lsn = 0x16C752F8,
	                   .txn = &t,
	                   .transactional = true,
	                   .prefix = "bin",
	                   .content = body,
	                   .content_len = sizeof body};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            MSG_HDR ",\"transactional\":true,\"prefix\":\"bin\",\"content\":\"AP8QgEE=\","
	                    "\"content_encoding\":\"base64\"}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[MESSAGE] prefix=bin lsn=0/16C752F8\ncontent_base64=\"AP8QgEE=\"\n");
}

static void test_base64_lengths(void **state)
{
	static const uint8_t body[] = {0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa};
	static const char *const want[] = {"/w==",     "//4=",     "//79",
	                                   "//79/A==", "//79/Ps=", "//79/Pv6"};
	struct event_txn t = txn_at();
	struct event ev = {
	    .op = EVENT_MESSAGE, .lsn = 1, .txn = &t, .prefix = "x", .content = body};
	char expect[256];

	(void)state;
	for (uint32_t n = 1; n <= sizeof body; n++) {
		ev.content_len = n;
		snprintf(expect, sizeof expect,
		         "[MESSAGE] prefix=x lsn=0/1\ncontent_base64=\"%s\"\n", want[n - 1]);
		check_event(&ev, FORMAT_PRETTY, expect);
	}
}

static void test_event_message_nontransactional(void **state)
{
	struct event ev = {.op = EVENT_MESSAGE,
	                   .lsn = 0x16C752F8,
	                   .txn = NULL,
	                   .transactional = false,
	                   .prefix = "my prefix",
	                   .content = NULL,
	                   .content_len = 0};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            "{\"op\":\"message\",\"lsn\":\"0/16C752F8\",\"commit_lsn\":null,\"xid\":null,"
	            "\"commit_time\":null,\"transactional\":false,\"prefix\":\"my prefix\","
	            "\"content\":\"\"}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[MESSAGE] prefix=\"my prefix\" lsn=0/16C752F8\ncontent=\"\"\n");
}

/* Names with quotes and control characters stay inside their JSON strings,
 * and a large value in a long event still makes one valid line. */
static void test_event_hostile_names(void **state)
{
	static struct relcol cols[] = {
	    {"we\"ird\ncol", 25, -1, RELCACHE_COL_KEY},
	    {"j", 114, -1, 0},
	};
	static struct relation rel = {1, "s\tx", "t\"=1", 'd', 2, cols};
	static struct coltype types[] = {{25, false}, {114, false}};
	static struct relinfo ri = {.remote = &rel, .types = types};
	static const struct pgo_value vals[] = {TXT("v\x01\xff"), TXT("[1,\n2]")};
	static const struct pgo_tuple tup = {2, vals};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_INSERT, .lsn = 1, .txn = &t, .rel = &ri, .newtup = &tup};

	(void)state;
	check_event(&ev, FORMAT_JSON,
	            "{\"op\":\"insert\",\"schema\":\"s\\tx\",\"table\":\"t\\\"=1\",\"lsn\":\"0/1\","
	            "\"commit_lsn\":\"0/16C75500\",\"xid\":745,"
	            "\"commit_time\":\"2026-11-24T14:30:00.123456Z\","
	            "\"new\":{\"we\\\"ird\\ncol\":\"v\\u0001\\ufffd\",\"j\":[1, 2]}}\n");
	check_event(&ev, FORMAT_PRETTY,
	            "[INSERT] table=\"s\\tx\".\"t\\\"=1\" lsn=0/1\n"
	            "data={\n  \"we\\\"ird\\ncol\": \"v\\u0001\\ufffd\",\n  \"j\": [1, 2]\n}\n");
}

/* A tuple with fewer columns than the relation (a decoder mismatch) only
 * shows what both know. */
static void test_event_short_tuple(void **state)
{
	static const struct pgo_value vals[] = {TXT("1"), TXT("x")};
	static const struct pgo_tuple tup = {2, vals};
	struct event_txn t = txn_at();
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 0x16C752F8, .txn = &t, .rel = &users_ri, .newtup = &tup};

	(void)state;
	check_event(&ev, FORMAT_JSON, HDR("insert") ",\"new\":{\"id\":1,\"name\":\"x\"}}\n");
}

/* Events append: several in one buf make several JSONL lines. */
static void test_events_append(void **state)
{
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_TRUNCATE, .lsn = 1, .txn = &t, .rel = &users_ri};
	struct buf b;
	size_t first;

	(void)state;
	buf_init(&b, 0);
	write_event(&b, &ev, FORMAT_JSON);
	first = b.len;
	write_event(&b, &ev, FORMAT_JSON);
	assert_int_equal(b.len, 2 * first);
	assert_true(jsoncheck_line(b.data, first));
	assert_true(jsoncheck_line(b.data + first, first));
	buf_reset(&b);
}

/* ------------------------------------------------------------------------
 * Keys (event/key.h): what the Kafka sink keys messages by
 * ------------------------------------------------------------------------ */

/* ev's key must be want (NULL: none) and its old key want_old, written
 * without the encoder's cache and with it. */
static void check_keys(const struct event *ev, const char *want, const char *want_old)
{
	for (int cached = 0; cached < 2; cached++) {
		struct relinfo prepared;
		struct event pev = *ev;
		struct buf k, old;
		bool has, has_old;

		if (cached && ev->rel) {
			prepared = *ev->rel;
			prepared.enc_data = NULL;
			prepared.enc_free = NULL;
			row_prepare(&prepared, false);
			pev.rel = &prepared;
		}
		buf_init(&k, 0);
		buf_init(&old, 0);
		has = key_write(&k, &pev, false);
		has_old = key_write_old(&old, &pev, has ? k.data : NULL, k.len, false);
		if (want == NULL) {
			assert_false(has);
			assert_int_equal(k.len, 0);
		} else {
			assert_true(has);
			assert_string_equal(k.data, want);
			assert_true(jsoncheck_text(k.data, k.len));
		}
		if (want_old == NULL) {
			assert_false(has_old);
			assert_int_equal(old.len, 0);
		} else {
			assert_true(has_old);
			assert_string_equal(old.data, want_old);
		}
		buf_reset(&k);
		buf_reset(&old);
		if (cached && ev->rel)
			prepared.enc_free(prepared.enc_data);
	}
}

static void test_keys(void **state)
{
	static const struct pgo_value oldk[] = {TXT("1"), NUL, NUL, NUL, NUL};
	static const struct pgo_value newv[] = {TXT("7"), TXT("Bum"), TXT("b@x"), NUL, TXT("[]")};
	static const struct pgo_value toastk[] = {TOAST, TXT("x"), NUL, NUL, NUL};
	static const struct pgo_value itemv[] = {TXT("5"), TXT("2"), NUL, TXT("f")};
	static const struct pgo_tuple oldt = {5, oldk}, newt = {5, newv}, toastt = {5, toastk};
	static const struct pgo_tuple itemt = {4, itemv};
	static struct relcol nokey_cols[] = {{"a", 23, -1, 0}, {"b", 25, -1, 0}};
	static struct relation nokey = {1, "public", "log", 'd', 2, nokey_cols};
	static struct coltype nokey_types[] = {{23, false}, {25, false}};
	static struct relinfo nokey_ri = {.remote = &nokey, .types = nokey_types};
	static const struct pgo_value nokeyv[] = {TXT("1"), TXT("x")};
	static const struct pgo_tuple nokeyt = {2, nokeyv};
	struct event_txn t = txn_at();
	struct event ev = {.op = EVENT_INSERT, .txn = &t, .rel = &users_ri, .newtup = &tup1};

	(void)state;
	check_keys(&ev, "{\"id\":1}", NULL);
	/* an UPDATE without an old tuple: the key did not change */
	ev = (struct event){.op = EVENT_UPDATE, .txn = &t, .rel = &users_ri, .newtup = &newt};
	check_keys(&ev, "{\"id\":7}", NULL);
	/* the key changed: the old one comes with the old tuple */
	ev.old_kind = 'K';
	ev.oldtup = &oldt;
	check_keys(&ev, "{\"id\":7}", "{\"id\":1}");
	/* REPLICA IDENTITY FULL, key unchanged: no old key */
	ev.old_kind = 'O';
	ev.oldtup = &tup1;
	ev.newtup = &tup1;
	check_keys(&ev, "{\"id\":1}", NULL);
	/* a key column not sent in the new tuple (unchanged TOAST): Postgres
	 * sent the old key, which holds it */
	ev.old_kind = 'K';
	ev.oldtup = &oldt;
	ev.newtup = &toastt;
	check_keys(&ev, "{\"id\":1}", NULL);
	ev = (struct event){
	    .op = EVENT_DELETE, .txn = &t, .rel = &users_ri, .old_kind = 'K', .oldtup = &oldt};
	check_keys(&ev, "{\"id\":1}", NULL);
	/* a composite key, in column order, typed */
	ev = (struct event){.op = EVENT_INSERT, .txn = &t, .rel = &items_ri, .newtup = &itemt};
	check_keys(&ev, "{\"order_id\":5,\"line\":2}", NULL);
	/* no key columns; a TRUNCATE */
	ev = (struct event){.op = EVENT_INSERT, .txn = &t, .rel = &nokey_ri, .newtup = &nokeyt};
	check_keys(&ev, NULL, NULL);
	ev = (struct event){.op = EVENT_TRUNCATE, .txn = &t, .rel = &users_ri};
	check_keys(&ev, NULL, NULL);
	/* a message: its prefix, escaped */
	ev = (struct event){.op = EVENT_MESSAGE,
	                    .prefix = "app\"x",
	                    .content = (const uint8_t *)"c",
	                    .content_len = 1};
	check_keys(&ev, "{\"prefix\":\"app\\\"x\"}", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_validator_self_check),
	    cmocka_unit_test(test_valtype_scalars),
	    cmocka_unit_test(test_valtype_arrays),
	    cmocka_unit_test(test_valtype_array_of),
	    cmocka_unit_test(test_event_op_name),
	    cmocka_unit_test(test_string_plain),
	    cmocka_unit_test(test_string_control_chars),
	    cmocka_unit_test(test_string_every_position),
	    cmocka_unit_test(test_string_utf8_valid),
	    cmocka_unit_test(test_string_utf8_invalid),
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_value_bool),
	    cmocka_unit_test(test_value_number),
	    cmocka_unit_test(test_value_string_kind),
	    cmocka_unit_test(test_value_json),
	    cmocka_unit_test(test_value_json_deep),
	    cmocka_unit_test(test_array_numbers),
	    cmocka_unit_test(test_array_bools),
	    cmocka_unit_test(test_value_rfc3339),
	    cmocka_unit_test(test_array_text),
	    cmocka_unit_test(test_array_nested),
	    cmocka_unit_test(test_array_dimensions),
	    cmocka_unit_test(test_array_malformed),
	    cmocka_unit_test(test_array_box),
	    cmocka_unit_test(test_array_json),
	    cmocka_unit_test(test_array_large_escaped),
	    cmocka_unit_test(test_buf_limit),
	    cmocka_unit_test(test_random_values_valid),
	    cmocka_unit_test(test_random_utf8),
	    cmocka_unit_test(test_tx_events),
	    cmocka_unit_test(test_event_insert),
	    cmocka_unit_test(test_event_insert_nulls),
	    cmocka_unit_test(test_event_update_no_old),
	    cmocka_unit_test(test_event_update_key),
	    cmocka_unit_test(test_event_update_full),
	    cmocka_unit_test(test_event_update_full_nothing_changed),
	    cmocka_unit_test(test_event_delete_key),
	    cmocka_unit_test(test_event_delete_full),
	    cmocka_unit_test(test_event_other_schema_binary),
	    cmocka_unit_test(test_event_delete_composite_key),
	    cmocka_unit_test(test_event_truncate),
	    cmocka_unit_test(test_event_message_utf8),
	    cmocka_unit_test(test_event_message_binary),
	    cmocka_unit_test(test_base64_lengths),
	    cmocka_unit_test(test_event_message_nontransactional),
	    cmocka_unit_test(test_event_hostile_names),
	    cmocka_unit_test(test_event_short_tuple),
	    cmocka_unit_test(test_events_append),
	    cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, setup_relations, NULL);
}
