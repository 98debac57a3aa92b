/*
 * test_debezium.c — --format debezium: the envelope of each event kind and
 * the column value rules, against values worked out outside the encoder
 * (the Debezium documentation's own examples where it has them; days,
 * microseconds and the base64 of unscaled decimals computed with Python's
 * datetime and int.to_bytes, as noted at each).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event/encoder.h"
#include "event/event.h"
#include "event/relinfo.h"
#include "util/buf.h"

#include "jsoncheck.h"
#include "tuples.h"

/* The processing time the tests fix: 1700000000.123456789 s. */
static int64_t fixed_clock(void)
{
	return INT64_C(1700000000123456789);
}

/* public.customers(id int4 key, first_name text, last_name text, email text),
 * the documentation's table. */
static struct relcol cust_cols[] = {
    {"id", 23, -1, RELCACHE_COL_KEY},
    {"first_name", 25, -1, 0},
    {"last_name", 25, -1, 0},
    {"email", 25, -1, 0},
};
static struct relation cust = {16384, "public", "customers", 'd', 4, cust_cols};
static struct coltype cust_types[4] = {{23, false}, {25, false}, {25, false}, {25, false}};
static struct relinfo cust_ri = {.remote = &cust, .types = cust_types};

/* commit 2026-11-24T14:30:00.123456Z: 848845800123456 µs after 2000-01-01,
 * 1795530600123456 µs after 1970-01-01 (+946684800000000). */
static const struct event_txn txn = {556, 24023128, INT64_C(848845800123456)};

/* --debezium-time-precision connect and --debezium-interval string, for
 * the tests of those modes (off otherwise). */
static bool connect_times, interval_iso;

static struct encoder *new_encoder(enum encoder_decimal mode)
{
	struct encoder_options opt = {
	    .topic_prefix = "PostgreSQL_server",
	    .database = "postgres",
	    .decimal = mode,
	    .clock_ns = fixed_clock,
	    .connect_times = connect_times,
	    .interval_iso = interval_iso,
	};
	struct encoder *enc = encoder_new("debezium", &opt);

	assert_non_null(enc);
	assert_string_equal(encoder_name(enc), "debezium");
	return enc;
}

/* ev through enc must be want, a valid JSON line. */
static void check_with(struct encoder *enc, const struct event *ev, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	encoder_write(enc, &b, ev);
	assert_true(buf_ok(&b));
	assert_string_equal(b.data, want);
	assert_true(jsoncheck_line(b.data, b.len));
	buf_reset(&b);
}

static void check(const struct event *ev, const char *want)
{
	struct encoder *enc = new_encoder(ENCODER_DECIMAL_PRECISE);

	check_with(enc, ev, want);
	encoder_free(enc);
}

#define SOURCE(seq, schema, table, txid, lsn)                                                      \
	"\"source\":{\"version\":\"pgstream-" PGSTREAM_VERSION "\",\"connector\":\"postgresql\","  \
	"\"name\":\"PostgreSQL_server\",\"ts_ms\":1795530600123,\"ts_us\":1795530600123456,"       \
	"\"ts_ns\":1795530600123456000,\"snapshot\":\"false\",\"db\":\"postgres\","                \
	"\"sequence\":\"" seq "\",\"schema\":\"" schema "\",\"table\":\"" table "\"" txid          \
	",\"lsn\":" lsn ",\"xmin\":null}"
#define TAIL(op)                                                                                   \
	",\"op\":\"" op "\",\"ts_ms\":1700000000123,\"ts_us\":1700000000123456,"                   \
	"\"ts_ns\":1700000000123456789"
#define SEQ0(lsn) "[null,\\\"" lsn "\\\"]"

static const struct pgo_value anne[] = {TXT("1"), TXT("Anne"), TXT("Kretchmar"),
                                        TXT("annek@noanswer.org")};
static const struct pgo_tuple anne_tup = {4, anne};

/* The documentation's create event. */
static void test_create(void **state)
{
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 24023128, .txn = &txn, .rel = &cust_ri, .newtup = &anne_tup};

	(void)state;
	check(&ev, "{\"before\":null,\"after\":{\"id\":1,\"first_name\":\"Anne\",\"last_name\":"
	           "\"Kretchmar\",\"email\":\"annek@noanswer.org\"}," SOURCE(
	               SEQ0("24023128"), "public", "customers", ",\"txId\":556", "24023128")
	               TAIL("c") ",\"transaction\":null}\n");
}

/* An update with the key sent (the key changed): before holds only the
 * key, as in the documentation's update example; without an old tuple
 * before is null. */
static void test_update(void **state)
{
	static const struct pgo_value key[] = {TXT("1"), NUL, NUL, NUL};
	static const struct pgo_tuple key_tup = {4, key};
	static const struct pgo_value marie[] = {TXT("2"), TXT("Anne Marie"), TXT("Kretchmar"),
	                                         TOAST};
	static const struct pgo_tuple marie_tup = {4, marie};
	struct event ev = {.op = EVENT_UPDATE,
	                   .lsn = 24023200,
	                   .txn = &txn,
	                   .rel = &cust_ri,
	                   .old_kind = 'K',
	                   .oldtup = &key_tup,
	                   .newtup = &marie_tup};

	static const struct pgo_value same[] = {TXT("2"), NUL, NUL, NUL};
	static const struct pgo_tuple same_tup = {4, same};
	struct encoder *enc = new_encoder(ENCODER_DECIMAL_PRECISE);
	struct buf b;
	char *nl;

	(void)state;
	/* The key changed (1 to 2): as the connector, a delete of the old row
	 * and a create of the new one, two lines for the one change. */
	buf_init(&b, 0);
	encoder_write(enc, &b, &ev);
	assert_string_equal(
	    b.data, "{\"before\":{\"id\":1},\"after\":null," SOURCE(
	                SEQ0("24023200"), "public", "customers", ",\"txId\":556", "24023200")
	                TAIL("d") ",\"transaction\":null}\n"
	                          "{\"before\":null,\"after\":{\"id\":2,\"first_name\":\"Anne "
	                          "Marie\","
	                          "\"last_name\":\"Kretchmar\",\"email\":\"__debezium_unavailable_"
	                          "value\"}," SOURCE(SEQ0("24023200"), "public", "customers",
	                                             ",\"txId\":556", "24023200")
	                              TAIL("c") ",\"transaction\":null}\n");
	nl = strchr(b.data, '\n');
	assert_true(jsoncheck_line(b.data, (size_t)(nl + 1 - b.data)));
	assert_true(jsoncheck_line(nl + 1, b.len - (size_t)(nl + 1 - b.data)));
	buf_reset(&b);
	encoder_free(enc);
	/* An old key tuple with the same key: an update. */
	ev.oldtup = &same_tup;
	check(&ev,
	      "{\"before\":{\"id\":2},\"after\":{\"id\":2,\"first_name\":\"Anne Marie\","
	      "\"last_name\":\"Kretchmar\",\"email\":\"__debezium_unavailable_value\"}," SOURCE(
	          SEQ0("24023200"), "public", "customers", ",\"txId\":556", "24023200")
	          TAIL("u") ",\"transaction\":null}\n");
	ev.old_kind = 0;
	ev.oldtup = NULL;
	check(&ev,
	      "{\"before\":null,\"after\":{\"id\":2,\"first_name\":\"Anne Marie\","
	      "\"last_name\":\"Kretchmar\",\"email\":\"__debezium_unavailable_value\"}," SOURCE(
	          SEQ0("24023200"), "public", "customers", ",\"txId\":556", "24023200")
	          TAIL("u") ",\"transaction\":null}\n");
}

/* Delete under REPLICA IDENTITY DEFAULT and FULL. */
static void test_delete(void **state)
{
	static const struct pgo_value key[] = {TXT("1"), NUL, NUL, NUL};
	static const struct pgo_tuple key_tup = {4, key};
	struct event ev = {.op = EVENT_DELETE,
	                   .lsn = 46523128,
	                   .txn = &txn,
	                   .rel = &cust_ri,
	                   .old_kind = 'K',
	                   .oldtup = &key_tup};

	(void)state;
	check(&ev, "{\"before\":{\"id\":1},\"after\":null," SOURCE(
	               SEQ0("46523128"), "public", "customers", ",\"txId\":556", "46523128")
	               TAIL("d") ",\"transaction\":null}\n");
	ev.old_kind = 'O';
	ev.oldtup = &anne_tup;
	check(&ev, "{\"before\":{\"id\":1,\"first_name\":\"Anne\",\"last_name\":\"Kretchmar\","
	           "\"email\":\"annek@noanswer.org\"},\"after\":null," SOURCE(
	               SEQ0("46523128"), "public", "customers", ",\"txId\":556", "46523128")
	               TAIL("d") ",\"transaction\":null}\n");
}

static void test_truncate(void **state)
{
	struct event ev = {.op = EVENT_TRUNCATE, .lsn = 46523128, .txn = &txn, .rel = &cust_ri};

	(void)state;
	check(&ev, "{" SOURCE(SEQ0("46523128"), "public", "customers", ",\"txId\":556", "46523128")
	               TAIL("t") ",\"transaction\":null}\n");
}

/* The documentation's message examples: its content "Ymfy" is base64 of
 * the bytes 62 67 f2 (base64 of "bar" is "YmFy"); a non-transactional one
 * has no txId and, with no commit, the processing time in source. */
static void test_message(void **state)
{
	struct event ev = {.op = EVENT_MESSAGE,
	                   .lsn = 46523128,
	                   .txn = &txn,
	                   .transactional = true,
	                   .prefix = "foo",
	                   .content = (const uint8_t *)"\x62\x67\xf2",
	                   .content_len = 3};

	(void)state;
	check(&ev, "{" SOURCE(SEQ0("46523128"), "", "", ",\"txId\":556", "46523128")
	               TAIL("m") ",\"message\":{\"prefix\":\"foo\",\"content\":\"Ymfy\"}}\n");
	ev.content = (const uint8_t *)"bar";
	check(&ev, "{" SOURCE(SEQ0("46523128"), "", "", ",\"txId\":556", "46523128")
	               TAIL("m") ",\"message\":{\"prefix\":\"foo\",\"content\":\"YmFy\"}}\n");
	ev.content = (const uint8_t *)"\x62\x67\xf2";
	ev.txn = NULL;
	ev.transactional = false;
	check(&ev, "{\"source\":{\"version\":\"pgstream-" PGSTREAM_VERSION
	           "\",\"connector\":\"postgresql\",\"name\":\"PostgreSQL_server\","
	           "\"ts_ms\":1700000000123,\"ts_us\":1700000000123456,"
	           "\"ts_ns\":1700000000123456789,\"snapshot\":\"false\",\"db\":\"postgres\","
	           "\"sequence\":\"[null,\\\"46523128\\\"]\",\"schema\":\"\",\"table\":\"\","
	           "\"lsn\":46523128,\"xmin\":null}" TAIL(
	               "m") ",\"message\":{\"prefix\":\"foo\",\"content\":\"Ymfy\"}}\n");
}

/* sequence's first LSN is the previous transaction's commit, as Debezium's
 * lastCommitLsn; events of one transaction share it. */
static void test_sequence(void **state)
{
	struct event_txn t2 = txn;
	struct encoder *enc = new_encoder(ENCODER_DECIMAL_PRECISE);
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 100, .txn = &txn, .rel = &cust_ri, .newtup = &anne_tup};
	struct buf b;

	(void)state;
	t2.xid = 557;
	t2.commit_lsn = 30000000;
	buf_init(&b, 0);
	encoder_write(enc, &b, &ev);
	assert_non_null(strstr(b.data, "\"sequence\":\"[null,\\\"100\\\"]\""));
	buf_clear(&b);
	ev.lsn = 200;
	encoder_write(enc, &b, &ev);
	assert_non_null(strstr(b.data, "\"sequence\":\"[null,\\\"200\\\"]\""));
	buf_clear(&b);
	ev.txn = &t2;
	ev.lsn = 300;
	encoder_write(enc, &b, &ev);
	assert_non_null(strstr(b.data, "\"sequence\":\"[\\\"24023128\\\",\\\"300\\\"]\""));
	assert_non_null(strstr(b.data, "\"txId\":557,\"lsn\":300,"));
	buf_reset(&b);
	encoder_free(enc);
}

/* Defaults: no prefix, no database. */
static void test_default_options(void **state)
{
	struct encoder *enc = encoder_new("debezium", NULL);
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 1, .txn = &txn, .rel = &cust_ri, .newtup = &anne_tup};
	struct buf b;

	(void)state;
	assert_non_null(enc);
	buf_init(&b, 0);
	encoder_write(enc, &b, &ev);
	assert_non_null(strstr(b.data, "\"name\":\"pgstream\","));
	assert_non_null(strstr(b.data, "\"db\":\"\","));
	assert_true(jsoncheck_line(b.data, b.len));
	buf_reset(&b);
	encoder_free(enc);
}

/* ------------------------------------------------------------------------
 * Values: one column "v" of type oid(typmod) with text in, its after value
 * must be want.
 * ------------------------------------------------------------------------ */

static void check_value_ct(enum encoder_decimal mode, uint32_t oid, struct coltype ct,
                           int32_t typmod, const char *in, const char *want)
{
	struct relcol col = {"v", oid, typmod, 0};
	struct relation rel = {1, "public", "t", 'd', 1, &col};
	struct relinfo ri = {.remote = &rel, .types = &ct};
	struct pgo_value val = {PGO_COL_TEXT, (uint32_t)strlen(in), in};
	struct pgo_tuple tup = {1, &val};
	struct event ev = {.op = EVENT_INSERT, .lsn = 1, .txn = &txn, .rel = &ri, .newtup = &tup};
	struct encoder *enc = new_encoder(mode);
	struct buf b;
	const char *start, *end;

	buf_init(&b, 0);
	encoder_write(enc, &b, &ev);
	assert_true(jsoncheck_line(b.data, b.len));
	start = strstr(b.data, "\"after\":{\"v\":");
	end = strstr(b.data, "},\"source\"");
	assert_non_null(start);
	assert_non_null(end);
	start += strlen("\"after\":{\"v\":");
	if ((size_t)(end - start) != strlen(want) || memcmp(start, want, strlen(want)) != 0)
		fail_msg("%u(%d) '%s': got %.*s, want %s", oid, typmod, in, (int)(end - start),
		         start, want);
	buf_reset(&b);
	encoder_free(enc);
}

static void check_value_mode(enum encoder_decimal mode, uint32_t oid, int32_t typmod,
                             const char *in, const char *want)
{
	check_value_ct(mode, oid, (struct coltype){oid, false}, typmod, in, want);
}

static void check_value(uint32_t oid, int32_t typmod, const char *in, const char *want)
{
	check_value_mode(ENCODER_DECIMAL_PRECISE, oid, typmod, in, want);
}

/* numeric typmod: VARHDRSZ (4) + (precision << 16 | scale), the scale in
 * 11 bits (negative since PostgreSQL 15) */
#define NUMERIC(p, s) ((int32_t)(((p) << 16 | ((s)&0x7ff)) + 4))

static void test_values_coinciding(void **state)
{
	(void)state;
	check_value(16, -1, "t", "true");
	check_value(16, -1, "f", "false");
	check_value(21, -1, "-32768", "-32768");
	check_value(23, -1, "2147483647", "2147483647");
	check_value(20, -1, "-9223372036854775808", "-9223372036854775808");
	check_value(700, -1, "1.5", "1.5");
	check_value(701, -1, "NaN", "\"NaN\""); /* Jackson quotes non-finite doubles */
	check_value(701, -1, "-Infinity", "\"-Infinity\"");
	check_value(25, -1, "a \"q\"", "\"a \\\"q\\\"\"");
	check_value(1043, 14, "x", "\"x\"");
	check_value(1042, 7, "ab ", "\"ab \"");
	check_value(2950, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
	check_value(1007, -1, "{1,NULL,3}", "[1,null,3]");
	check_value(1009, -1, "{a,\"b c\"}", "[\"a\",\"b c\"]");
}

static void test_values_json_bytea(void **state)
{
	(void)state;
	/* io.debezium.data.Json: the document as a string, not embedded. */
	check_value(3802, -1, "{\"k\": [1, 2]}", "\"{\\\"k\\\": [1, 2]}\"");
	check_value(114, -1, "3", "\"3\"");
	/* bytes: base64("\x01\x02\xff") = "AQL/", base64("") = "" */
	check_value(17, -1, "\\x0102ff", "\"AQL/\"");
	check_value(17, -1, "\\x", "\"\"");
}

static void test_values_time(void **state)
{
	(void)state;
	/* Date: days since 1970-01-01; (date(2026,11,24)-date(1970,1,1)).days */
	check_value(1082, -1, "2026-11-24", "20781");
	check_value(1082, -1, "1970-01-01", "0");
	check_value(1082, -1, "0001-01-01", "-719162");
	/* MicroTimestamp: the documentation's "2018-06-20 15:13:16.945104" */
	check_value(1114, -1, "2018-06-20 15:13:16.945104", "1529507596945104");
	check_value(1114, 6, "2018-06-20 15:13:16.945104", "1529507596945104");
	check_value(1114, 4, "2018-06-20 15:13:16.9451", "1529507596945100");
	/* Timestamp (ms) for TIMESTAMP(0..3), floor before the epoch */
	check_value(1114, 3, "2018-06-20 15:13:16.945", "1529507596945");
	check_value(1114, 0, "2018-06-20 15:13:17", "1529507597000");
	check_value(1114, 3, "1969-12-31 23:59:59.999", "-1");
	check_value(1114, -1, "1969-12-31 23:59:59.999999", "-1");
	/* (datetime(1, 1, 1) - datetime(1970, 1, 1)) in µs */
	check_value(1114, -1, "0001-01-01 00:00:00", "-62135596800000000");
	/* The documentation's infinity values */
	check_value(1114, -1, "infinity", "9223372036825200000");
	check_value(1114, -1, "-infinity", "-9223372036832400000");
	/* ZonedTimestamp: ISO 8601 in UTC */
	check_value(1184, -1, "2018-06-20 15:13:16.945104+00", "\"2018-06-20T15:13:16.945104Z\"");
	/* the fraction as wide as the scale: 6 without a typmod (the
	 * connector's own test: "+21016-11-04T06:51:30.000000Z") */
	check_value(1184, -1, "2018-06-20 01:00:00+05:30", "\"2018-06-19T19:30:00.000000Z\"");
	check_value(1184, -1, "2018-06-20 15:13:16.5+00", "\"2018-06-20T15:13:16.500000Z\"");
	check_value(1184, 3, "2018-06-20 15:13:16.5+00", "\"2018-06-20T15:13:16.500Z\"");
	check_value(1184, 0, "2018-06-20 15:13:17+00", "\"2018-06-20T15:13:17Z\"");
	check_value(1184, -1, "21016-11-04 06:51:30+00", "\"+21016-11-04T06:51:30.000000Z\"");
	check_value(1184, -1, "4714-12-31 23:59:59.999999+00 BC",
	            "\"-4713-12-31T23:59:59.999999Z\"");
	check_value(1184, -1, "0001-01-01 00:00:00+00 BC", "\"0000-01-01T00:00:00.000000Z\"");
	check_value(1184, -1, "infinity", "\"infinity\"");
	/* MicroTime: µs past midnight, 4*3600e6 + 5*60e6 + 6.789e6; Time: ms */
	check_value(1083, -1, "04:05:06.789", "14706789000");
	check_value(1083, 3, "04:05:06.789", "14706789");
	check_value(1083, -1, "24:00:00", "86400000000");
	/* ZonedTime in UTC */
	check_value(1266, -1, "04:05:06.789+02", "\"02:05:06.789Z\"");
	check_value(1266, -1, "01:00:00+02", "\"23:00:00Z\"");
	check_value(1266, -1, "23:30:00-01:30", "\"01:00:00Z\"");
}

/* MicroDuration, Debezium's formula in Python doubles:
 * int((((((1*12+2)*(365.25/12)+3)*24+4)*60+5)*60+6.78)*1e6) */
static void test_values_interval(void **state)
{
	(void)state;
	check_value(1186, -1, "1 year 2 mons 3 days 04:05:06.78", "37091106780000");
	check_value(1186, -1, "00:00:00", "0");
	check_value(1186, -1, "-1 years -02:03:04.5", "-31564984500000");
	check_value(1186, -1, "1 day", "86400000000");
	check_value(1186, -1, "-1 days +00:00:01", "-86399000000");
}

/* interval.handling.mode=string: Interval.toIsoString of PGInterval's
 * fields, seconds as new BigDecimal(double).setScale(6, DOWN) with zeros
 * stripped (Python: Decimal(s).quantize(Decimal("0.000001"), ROUND_DOWN)
 * .normalize(): 1.000001 is 1 there, its double being just below). */
static void test_values_interval_string(void **state)
{
	(void)state;
	interval_iso = true;
	check_value(1186, -1, "1 year 2 mons 3 days 04:05:06.78", "\"P1Y2M3DT4H5M6.78S\"");
	check_value(1186, -1, "00:00:00", "\"P0Y0M0DT0H0M0S\"");
	check_value(1186, -1, "-1 years -02:03:04.5", "\"P-1Y0M0DT-2H-3M-4.5S\"");
	check_value(1186, -1, "1 day", "\"P0Y0M1DT0H0M0S\"");
	check_value(1186, -1, "00:00:01.000001", "\"P0Y0M0DT0H0M1S\"");
	check_value(1186, -1, "00:00:59.999999", "\"P0Y0M0DT0H0M59.999999S\"");
	check_value(1186, -1, "-00:00:00.5", "\"P0Y0M0DT0H0M-0.5S\"");
	check_value(1186, -1, "3 fortnights", "\"3 fortnights\""); /* not an interval's text */
	interval_iso = false;
}

/* time.precision.mode=connect: time and timestamp in milliseconds whatever
 * their precision (Python: datetime differences // timedelta(ms=1)). */
static void test_values_connect_times(void **state)
{
	(void)state;
	connect_times = true;
	check_value(1083, -1, "04:05:06.789123", "14706789");
	check_value(1114, -1, "2018-06-20 15:13:16.945104", "1529507596945");
	check_value(1114, -1, "1969-12-31 23:59:59.999999", "-1");
	check_value(1082, -1, "2026-11-24", "20781"); /* date: days, as adaptive */
	connect_times = false;
	check_value(1083, -1, "04:05:06.789123", "14706789123"); /* adaptive: micros */
}

/* Decimal: base64 of BigInteger.toByteArray() of the unscaled value,
 * from Python: n.to_bytes(((n if n >= 0 else ~n).bit_length() // 8 + 1),
 * 'big', signed=True). */
static void test_values_numeric_precise(void **state)
{
	(void)state;
	check_value(1700, NUMERIC(5, 2), "123.45", "\"MDk=\"");  /* 12345 */
	check_value(1700, NUMERIC(5, 2), "-123.45", "\"z8c=\""); /* -12345 */
	check_value(1700, NUMERIC(5, 2), "-1.00", "\"nA==\"");   /* -100 */
	check_value(1700, NUMERIC(5, 2), "0.00", "\"AA==\"");    /* 0 */
	check_value(1700, NUMERIC(3, 0), "128", "\"AIA=\"");     /* 128 */
	check_value(1700, NUMERIC(3, 0), "-128", "\"gA==\"");    /* -128 */
	check_value(1700, NUMERIC(3, 0), "-129", "\"/38=\"");    /* -129 */
	check_value(1700, NUMERIC(30, 0), "123456789012345678901234567890",
	            "\"AY7pD/bDc+DuTj8K0g==\"");
	check_value(1700, NUMERIC(41, 0), "10000000000000000000000000000000000000000",
	            "\"HWMp8cNcpL+rufVhAAAAAAA=\"");
	check_value(1700, NUMERIC(5, 2), "NaN", "null");
	/* past nine digits, the limbs' width: padded to the scale, negative */
	check_value(1700, NUMERIC(40, 30), "0.5", "\"Bk+WTmgjOnb1IAAAAA==\""); /* 5e29 */
	check_value(1700, NUMERIC(100, 0),
	            "-1234567890123456789012345678901234567890123456789012345678901234567890"
	            "123456789012345678901234567890",
	            "\"/b4D6L0BctamxZUBrUzovjAaWAcZgbiMfkG4eum+EIQOtFMwDmkxwPUu\"");
	/* numeric(5,-2) (PostgreSQL 15+): 12300 is 123 at scale -2 */
	check_value(1700, NUMERIC(5, -2), "12300", "\"ew==\"");
	check_value(1700, NUMERIC(5, -2), "-4200", "\"1g==\""); /* -42 */
	check_value(1700, NUMERIC(5, -2), "0", "\"AA==\"");
	/* VariableScaleDecimal when no scale is declared: 15 at scale 1 */
	check_value(1700, -1, "1.5", "{\"scale\":1,\"value\":\"Dw==\"}");
	check_value(1700, -1, "-123", "{\"scale\":0,\"value\":\"hQ==\"}"); /* -123 = 0x85 */
	check_value(1700, -1, "0", "{\"scale\":0,\"value\":\"AA==\"}");
}

static void test_values_numeric_modes(void **state)
{
	(void)state;
	check_value_mode(ENCODER_DECIMAL_STRING, 1700, NUMERIC(5, 2), "123.45", "\"123.45\"");
	check_value_mode(ENCODER_DECIMAL_STRING, 1700, -1, "NaN", "\"NAN\"");
	check_value_mode(ENCODER_DECIMAL_DOUBLE, 1700, NUMERIC(5, 2), "123.45", "123.45");
	check_value_mode(ENCODER_DECIMAL_DOUBLE, 1700, -1, "0.1000", "0.1");
	check_value_mode(ENCODER_DECIMAL_DOUBLE, 1700, -1, "NaN", "\"NaN\"");
	check_value_mode(ENCODER_DECIMAL_DOUBLE, 1700, -1, "12345678901234567890",
	                 "1.2345678901234567e+19");
}

/* bit/varbit: length 1 a boolean, else BitSet.toByteArray() of the
 * string (last character bit 0), little-endian, in base64:
 * "101" -> 0x05 "BQ==";
 * "1000000001" -> bits 0 and 9 -> 0x01 0x02 "AQI=";
 * "0100" -> bit 2 -> 0x04 "BA=="; all zeros -> no bytes "". */
static void test_values_bits(void **state)
{
	(void)state;
	check_value(1560, 1, "1", "true");
	check_value(1560, 1, "0", "false");
	check_value(1562, 1, "1", "true");
	check_value(1560, 3, "101", "\"BQ==\"");
	check_value(1560, 10, "1000000001", "\"AQI=\"");
	check_value(1562, -1, "0100", "\"BA==\"");
	check_value(1560, 4, "0000", "\"\"");
}

/* Arrays of converted types: each element converted (NULL stays null). */
static void test_values_arrays(void **state)
{
	(void)state;
	check_value(1182, -1, "{2026-11-24,NULL,1970-01-01}", "[20781,null,0]");
	check_value(1183, 3, "{04:05:06.789}", "[14706789]");
	check_value(1270, -1, "{04:05:06.789+02}", "[\"02:05:06.789Z\"]");
	check_value(1115, -1, "{\"2018-06-20 15:13:16.945104\",infinity}",
	            "[1529507596945104,9223372036825200000]");
	check_value(1185, -1, "{\"2018-06-20 15:13:16.945104+00\"}",
	            "[\"2018-06-20T15:13:16.945104Z\"]");
	check_value(3807, -1, "{\"{\\\"x\\\": 1}\",NULL}", "[\"{\\\"x\\\": 1}\",null]");
	check_value(1001, -1, "{\"\\\\x0102ff\",\"\\\\x\"}", "[\"AQL/\",\"\"]");
	check_value(1182, -1, "{{2026-11-24},{1970-01-01}}", "[[20781],[0]]");
	/* An element that is no date: a string, the rest still converted */
	check_value(1182, -1, "{soon,1970-01-01}", "[\"soon\",0]");
}

/* numeric[] and hstore[], whose elements can outgrow the room pgarray.h
 * reserves for one: 1 at scale 30 is 10^30, 13 bytes (Python's
 * (10**30).to_bytes(13, "big", signed=True) in base64); an hstore key of
 * 20 control characters takes 7 bytes each. Both quoted (unescaped into
 * the output first) and not. */
static void test_values_numeric_hstore_arrays(void **state)
{
	struct coltype hs = {COLTYPE_HSTORE, true};
	char in[64], want[256];
	size_t n = 0, m = 0;

	(void)state;
	check_value(1231, NUMERIC(40, 30), "{1,\"1\",NULL}",
	            "[\"DJ8snNBGdO3qQAAAAA==\",\"DJ8snNBGdO3qQAAAAA==\",null]");
	check_value(1231, -1, "{1.5,NaN}", "[{\"scale\":1,\"value\":\"Dw==\"},null]");
	check_value_mode(ENCODER_DECIMAL_STRING, 1231, -1, "{1.5,NaN}", "[\"1.5\",\"NAN\"]");
	check_value_mode(ENCODER_DECIMAL_DOUBLE, 1231, -1, "{1.5,-2}", "[1.5,-2]");
	check_value_ct(ENCODER_DECIMAL_PRECISE, 16500, hs, -1, "{\"\\\"a\\\"=>\\\"1\\\"\",NULL}",
	               "[\"{\\\"a\\\":\\\"1\\\"}\",null]");
	n += (size_t)snprintf(in + n, sizeof in - n, "{\"\\\"");
	m += (size_t)snprintf(want + m, sizeof want - m, "[\"{\\\"");
	for (int i = 0; i < 20; i++) {
		in[n++] = 1;
		m += (size_t)snprintf(want + m, sizeof want - m, "\\\\u0001");
	}
	snprintf(in + n, sizeof in - n, "\\\"=>NULL\"}");
	snprintf(want + m, sizeof want - m, "\\\":null}\"]");
	check_value_ct(ENCODER_DECIMAL_PRECISE, 16500, hs, -1, in, want);
}

/* Text that is not what the type promises falls back to the json format's
 * rendering (a string, or the number for a numeric), so the line stays
 * valid JSON. */
static void test_values_special(void **state)
{
	(void)state;
	check_value(1082, -1, "not a date", "\"not a date\"");
	check_value(1700, NUMERIC(5, 2), "1.234", "1.234"); /* more digits than the scale */
	check_value(1186, -1, "3 fortnights", "\"3 fortnights\"");
	/* Past a long's range: Java's (long) saturates (the fuzzer's input) */
	check_value(1186, -1, "999999999999999999 days", "9223372036854775807");
	check_value(1186, -1, "-999999999999999999 days", "-9223372036854775808");
}

/* hstore as hstore.handling.mode=json: a JSON string of the object. The
 * expected strings are Python's json.dumps(json.dumps(obj)) of the map the
 * hstore text holds; text hstore never prints is kept as it is. */
static void test_values_hstore(void **state)
{
	(void)state;
	check_value(COLTYPE_HSTORE, -1, "\"a\"=>\"1\", \"b\"=>NULL",
	            "\"{\\\"a\\\":\\\"1\\\",\\\"b\\\":null}\"");
	check_value(COLTYPE_HSTORE, -1, "\"q\\\"uote\"=>\"back\\\\slash\", \"\"=>\"\"",
	            "\"{\\\"q\\\\\\\"uote\\\":\\\"back\\\\\\\\slash\\\",\\\"\\\":\\\"\\\"}\"");
	check_value(COLTYPE_HSTORE, -1, "", "\"{}\"");
	check_value(COLTYPE_HSTORE, -1, "\"é\"=>\"ü\"", "\"{\\\"é\\\":\\\"ü\\\"}\"");
	check_value(COLTYPE_HSTORE, -1, "\"a\"=>", "\"\\\"a\\\"=>\"");
	check_value(COLTYPE_HSTORE, -1, "\"a\"=>\"1\",", "\"\\\"a\\\"=>\\\"1\\\",\"");
	check_value(COLTYPE_HSTORE, -1, "\"a\"=>\"1\" \"b\"=>\"2\"",
	            "\"\\\"a\\\"=>\\\"1\\\" \\\"b\\\"=>\\\"2\\\"\"");
	check_value(COLTYPE_HSTORE, -1, "a=>1", "\"a=>1\"");
	check_value(COLTYPE_HSTORE, -1, "\"a\"->\"1\"", "\"\\\"a\\\"->\\\"1\\\"\"");
	check_value(COLTYPE_HSTORE, -1, "\"a\"=>NUL", "\"\\\"a\\\"=>NUL\"");
}

/* money as a Decimal of 2 places (money.fraction.digits), from the text
 * lc_monetary=C gives; unscaled values' base64 from Python's int.to_bytes. */
static void test_values_money(void **state)
{
	(void)state;
	check_value(790, -1, "$1,234.56", "\"AeJA\"");
	check_value(790, -1, "-$1,234.56", "\"/h3A\"");
	check_value(790, -1, "$0.00", "\"AA==\"");
	check_value(790, -1, "$92,233,720,368,547,758.07", "\"f/////////8=\"");
	check_value(790, -1, "-$92,233,720,368,547,758.08", "\"gAAAAAAAAAA=\"");
	check_value_mode(ENCODER_DECIMAL_STRING, 790, -1, "-$1,234.56", "\"-1234.56\"");
	check_value_mode(ENCODER_DECIMAL_DOUBLE, 790, -1, "$1,234.56", "1234.56");
	check_value(790, -1, "1.234,56 EUR", "\"1.234,56 EUR\""); /* another locale's: as text */
	check_value(790, -1, "$", "\"$\"");
}

/* point as io.debezium.data.geometry.Point; the wkb values are Python's
 * base64.b64encode(struct.pack("<BIdd", 1, 1, x, y)). */
static void test_values_point(void **state)
{
	(void)state;
	check_value(600, -1, "(1,2)",
	            "{\"x\":1,\"y\":2,\"wkb\":\"AQEAAAAAAAAAAADwPwAAAAAAAABA\",\"srid\":null}");
	check_value(
	    600, -1, "(1.5,-2.25)",
	    "{\"x\":1.5,\"y\":-2.25,\"wkb\":\"AQEAAAAAAAAAAAD4PwAAAAAAAALA\",\"srid\":null}");
	check_value(600, -1, "(NaN,Infinity)",
	            "{\"x\":\"NaN\",\"y\":\"Infinity\",\"wkb\":\"AQEAAAAAAAAAAAD4fwAAAAAAAPB/"
	            "\",\"srid\":null}");
	check_value(600, -1, "(1,2", "\"(1,2\""); /* not a point: as text */
	check_value(600, -1, "(1;2)", "\"(1;2)\"");
	check_value(600, -1, "(x,2)", "\"(x,2)\"");
	/* circle: its center as the point above; line: its coefficients */
	check_value(718, -1, "<(1,2),3>",
	            "{\"center\":{\"x\":1,\"y\":2,\"wkb\":\"AQEAAAAAAAAAAADwPwAAAAAAAABA\","
	            "\"srid\":null},\"radius\":3}");
	check_value(718, -1, "<(1,2),>", "\"<(1,2),>\"");
	check_value(718, -1, "<(1,2)3>", "\"<(1,2)3>\"");
	check_value(718, -1, "<(1,2),3", "\"<(1,2),3\"");
	check_value(628, -1, "{1,-1,0.5}", "{\"a\":1,\"b\":-1,\"c\":0.5}");
	check_value(628, -1, "{1,-1}", "\"{1,-1}\"");
	check_value(628, -1, "{1,-1,0,2}", "\"{1,-1,0,2}\"");
	check_value(628, -1, "{1,x,0}", "\"{1,x,0}\"");
}

/* box, lseg, path, polygon as Geometry: the WKB expected here is Python's
 * struct.pack("<BIII", 1, 3, 1, n) (a polygon of one ring; "<BII", 1, 2, n
 * a line string) followed by "<dd" of each point, in base64. */
static void test_values_geometry(void **state)
{
	(void)state;
	/* the box's corners (1,1),(0,0): the ring (1,1),(1,0),(0,0),(0,1),(1,1) */
	check_value(
	    603, -1, "(1,1),(0,0)",
	    "{\"wkb\":\"AQMAAAABAAAABQAAAAAAAAAAAPA/AAAAAAAA8D8AAAAAAADwPwAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA8D8AAAAAAADwPwAAAAAAAPA/\",\"srid\":null,"
	    "\"extensions\":{\"type\":\"box\"}}");
	check_value(
	    601, -1, "[(0,0),(1,2)]",
	    "{\"wkb\":\"AQIAAAACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPA/AAAAAAAAAEA=\",\"srid\":null,"
	    "\"extensions\":{\"type\":\"lseg\"}}");
	check_value(602, -1, "[(0,0),(1,1),(2,0)]",
	            "{\"wkb\":\"AQIAAAADAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPA/"
	            "AAAAAAAA8D8AAAAAAAAAQAAAAAAAAAAA"
	            "\",\"srid\":null,\"extensions\":{\"type\":\"path\",\"closed\":\"false\"}}");
	check_value(
	    602, -1, "((0,0),(1,1))",
	    "{\"wkb\":\"AQIAAAACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPA/AAAAAAAA8D8=\",\"srid\":null,"
	    "\"extensions\":{\"type\":\"path\",\"closed\":\"true\"}}");
	/* the ring closed: (0,0) again at its end */
	check_value(604, -1, "((0,0),(1,1),(2,0))",
	            "{\"wkb\":\"AQMAAAABAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADwPwAAAAAAAPA/"
	            "AAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"srid\":null,"
	            "\"extensions\":{\"type\":\"polygon\"}}");
	/* not what the type prints: as text */
	check_value(603, -1, "(1,1),(0,0),(2,2)", "\"(1,1),(0,0),(2,2)\"");
	check_value(601, -1, "[(0,0),(1,2)", "\"[(0,0),(1,2)\"");
	check_value(602, -1, "[(0,0);(1,1)]", "\"[(0,0);(1,1)]\"");
	check_value(604, -1, "((0,x))", "\"((0,x))\"");
	check_value(604, -1, "()", "\"()\"");
}

/* --debezium-schemas: the schema a Relation message's rendering keeps is
 * the one an event renders without it, the payload is the event without
 * schemas, and a second Relation message replaces the first's. */
static void test_schemas_cached(void **state)
{
	struct encoder_options opt = {
	    .topic_prefix = "PostgreSQL_server", .database = "postgres", .clock_ns = fixed_clock};
	struct relinfo ri = cust_ri;
	struct event ev = {
	    .op = EVENT_INSERT, .lsn = 24023128, .txn = &txn, .rel = &ri, .newtup = &anne_tup};
	struct encoder *plain = encoder_new("debezium", &opt), *enc;
	struct buf lazy, cached, bare;
	const char *head = "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"struct\","
	                   "\"fields\":[{\"type\":\"int32\",\"optional\":true,\"field\":\"id\"},";

	(void)state;
	opt.schemas = true;
	enc = encoder_new("debezium", &opt);
	assert_non_null(plain);
	assert_non_null(enc);
	buf_init(&lazy, 0);
	buf_init(&cached, 0);
	buf_init(&bare, 0);
	encoder_write(enc, &lazy, &ev);
	encoder_prepare_relation(enc, &ri);
	assert_non_null(ri.enc_data);
	encoder_prepare_relation(enc, &ri); /* replaced: ASan sees a leak otherwise */
	encoder_write(enc, &cached, &ev);
	encoder_write(plain, &bare, &ev);
	assert_true(buf_ok(&lazy) && buf_ok(&cached) && buf_ok(&bare));
	assert_string_equal(cached.data, lazy.data);
	assert_true(jsoncheck_line(cached.data, cached.len));
	assert_memory_equal(cached.data, head, strlen(head));
	/* ... ,"payload":<the event without schemas, its newline after the '}'> */
	{
		const char *p = strstr(cached.data, ",\"payload\":");

		assert_non_null(p);
		p += strlen(",\"payload\":");
		assert_int_equal(strlen(p), bare.len + 1);
		assert_memory_equal(p, bare.data, bare.len - 1);
		assert_string_equal(p + bare.len - 1, "}\n");
	}
	ri.enc_free(ri.enc_data);
	buf_reset(&lazy);
	buf_reset(&cached);
	buf_reset(&bare);
	encoder_free(enc);
	encoder_free(plain);
}

/* The Kafka keys --format debezium renders itself (encoder_write_key). */
static void check_key(struct encoder *enc, const struct event *ev, bool old, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	if (want == NULL) {
		assert_false(encoder_write_key(enc, &b, ev, old));
		assert_int_equal(b.len, 0);
	} else {
		assert_true(encoder_write_key(enc, &b, ev, old));
		buf_putc(&b, '\0');
		assert_string_equal(b.data, want);
	}
	buf_reset(&b);
}

/* The connector's keys: the key columns by this format's value rules (a
 * timestamp key in microseconds, 1529507596945104 as in test_values_time),
 * a message's prefix, a boundary's "xid:lsn" id; none for a TRUNCATE or a
 * REPLICA IDENTITY FULL table without a primary key; the old key of an
 * update from its old tuple; with --debezium-schemas each with its schema. */
static void test_keys(void **state)
{
	struct relcol cols[] = {{"at", 1114, -1, RELCACHE_COL_KEY}, {"v", 25, -1, 0}};
	struct relation rel = {16390, "public", "ev", 'd', 2, cols};
	struct coltype types[2] = {{1114, false}, {25, false}};
	struct relinfo ri = {.remote = &rel, .types = types};
	struct pgo_value nv[] = {TXT("2018-06-20 15:13:16.945104"), TXT("x")};
	struct pgo_value ov[] = {TXT("1970-01-01 00:00:00"), TXT("y")};
	struct pgo_tuple nt = {2, nv}, ot = {2, ov};
	struct event up = {.op = EVENT_UPDATE,
	                   .lsn = 9,
	                   .txn = &txn,
	                   .rel = &ri,
	                   .old_kind = 'K',
	                   .oldtup = &ot,
	                   .newtup = &nt};
	struct event msg = {.op = EVENT_MESSAGE, .lsn = 9, .txn = &txn, .prefix = "app"};
	struct event begin = {.op = EVENT_BEGIN, .lsn = 24023128, .txn = &txn};
	struct event trunc = {.op = EVENT_TRUNCATE, .lsn = 9, .txn = &txn, .rel = &ri};
	struct encoder_options opt = {.topic_prefix = "p", .clock_ns = fixed_clock};
	struct encoder *enc = encoder_new("debezium", &opt), *sch;

	(void)state;
	assert_true(encoder_has_keys(enc));
	check_key(enc, &up, false, "{\"at\":1529507596945104}");
	check_key(enc, &up, true, "{\"at\":0}");
	check_key(enc, &msg, false, "{\"prefix\":\"app\"}");
	check_key(enc, &msg, true, NULL);
	check_key(enc, &begin, false, "{\"id\":\"556:24023128\"}");
	check_key(enc, &trunc, false, NULL);
	opt.schemas = true;
	sch = encoder_new("debezium", &opt);
	check_key(sch, &up, false,
	          "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
	          "\"optional\":true,\"name\":\"io.debezium.time.MicroTimestamp\",\"version\":1,"
	          "\"field\":\"at\"}],\"optional\":false,\"name\":\"p.public.ev.Key\"},"
	          "\"payload\":{\"at\":1529507596945104}}");
	check_key(sch, &msg, false,
	          "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"string\","
	          "\"optional\":true,\"field\":\"prefix\"}],\"optional\":false,\"name\":"
	          "\"io.debezium.connector.postgresql.MessageKey\",\"version\":1},\"payload\":"
	          "{\"prefix\":\"app\"}}");
	/* REPLICA IDENTITY FULL: pgoutput flags every column; without a
	 * primary key (ri.key NULL) the connector's key is null */
	rel.replident = 'f';
	cols[1].flags = RELCACHE_COL_KEY;
	check_key(enc, &up, false, NULL);
	check_key(sch, &up, false, NULL);
	encoder_free(enc);
	encoder_free(sch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create),
	    cmocka_unit_test(test_update),
	    cmocka_unit_test(test_delete),
	    cmocka_unit_test(test_truncate),
	    cmocka_unit_test(test_message),
	    cmocka_unit_test(test_sequence),
	    cmocka_unit_test(test_default_options),
	    cmocka_unit_test(test_values_coinciding),
	    cmocka_unit_test(test_values_json_bytea),
	    cmocka_unit_test(test_values_time),
	    cmocka_unit_test(test_values_interval),
	    cmocka_unit_test(test_values_interval_string),
	    cmocka_unit_test(test_values_connect_times),
	    cmocka_unit_test(test_values_numeric_precise),
	    cmocka_unit_test(test_values_numeric_modes),
	    cmocka_unit_test(test_values_bits),
	    cmocka_unit_test(test_values_arrays),
	    cmocka_unit_test(test_values_numeric_hstore_arrays),
	    cmocka_unit_test(test_values_special),
	    cmocka_unit_test(test_values_point),
	    cmocka_unit_test(test_values_geometry),
	    cmocka_unit_test(test_values_money),
	    cmocka_unit_test(test_values_hstore),
	    cmocka_unit_test(test_schemas_cached),
	    cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
