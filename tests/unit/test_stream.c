/* test_stream.c — the pure part of the replication stream: CopyData frame
 * parsing. (The read pacing policy is tested in test_pace.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pg/stream.h"

static size_t put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)(v & 0xFF);
	return 8;
}

static void test_xlogdata(void **state)
{
	uint8_t msg[1 + 24 + 3];
	size_t n = 0;
	struct stream_frame f;
	struct err e = {0};

	(void)state;
	msg[n++] = 'w';
	n += put_u64(msg + n, 0x16B3748);
	n += put_u64(msg + n, 0x16B3800);
	n += put_u64(msg + n, 123456789);
	memcpy(msg + n, "BCD", 3);
	n += 3;
	assert_int_equal(stream_parse_frame(msg, n, &f, &e), 0);
	assert_int_equal(f.type, FRAME_XLOGDATA);
	assert_true(f.wal_start == 0x16B3748);
	assert_true(f.wal_end == 0x16B3800);
	assert_true(f.send_time == 123456789);
	assert_int_equal(f.payload_len, 3);
	assert_memory_equal(f.payload, "BCD", 3);
	/* Cut anywhere inside the header: an error, never a read past the end. */
	for (size_t len = 0; len < 25; len++)
		assert_int_equal(stream_parse_frame(msg, len, &f, &e), -1);
}

static void test_keepalive(void **state)
{
	uint8_t msg[1 + 16 + 1 + 1];
	size_t n = 0;
	struct stream_frame f;
	struct err e = {0};

	(void)state;
	msg[n++] = 'k';
	n += put_u64(msg + n, 0x3000000);
	n += put_u64(msg + n, 42);
	msg[n++] = 1;
	assert_int_equal(stream_parse_frame(msg, n, &f, &e), 0);
	assert_int_equal(f.type, FRAME_KEEPALIVE);
	assert_true(f.wal_end == 0x3000000);
	assert_true(f.reply_requested);
	for (size_t len = 0; len < n; len++)
		assert_int_equal(stream_parse_frame(msg, len, &f, &e), -1);
	msg[n++] = 0; /* a trailing byte is malformed, not ignored */
	assert_int_equal(stream_parse_frame(msg, n, &f, &e), -1);
	assert_non_null(strstr(e.msg, "trailing"));
}

static void test_unknown_frame(void **state)
{
	const uint8_t msg[] = {'x', 0, 0};
	struct stream_frame f;
	struct err e = {0};

	(void)state;
	assert_int_equal(stream_parse_frame(msg, sizeof msg, &f, &e), -1);
	assert_non_null(strstr(e.msg, "0x78"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xlogdata),
	    cmocka_unit_test(test_keepalive),
	    cmocka_unit_test(test_unknown_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
