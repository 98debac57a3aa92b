/* test_util.c — rd (bounds), buf (growth, cap), grow (the growth rule and its
 * overflow edges), lsn and timestamp forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/grow.h"
#include "util/lsn.h"
#include "util/rd.h"

static void test_rd_reads_big_endian(void **state)
{
	static const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
	                               0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 'h',  'i',  0};
	struct rd r;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const char *s;
	size_t n;

	(void)state;
	rd_init(&r, data, sizeof data);
	assert_true(rd_u8(&r, &u8));
	assert_int_equal(u8, 0x01);
	assert_true(rd_u16(&r, &u16));
	assert_int_equal(u16, 0x0203);
	assert_true(rd_u32(&r, &u32));
	assert_int_equal(u32, 0x04050607);
	assert_true(rd_u64(&r, &u64));
	assert_true(u64 == UINT64_C(0x08090a0b0c0d0e0f));
	assert_true(rd_cstr(&r, &s, &n));
	assert_int_equal(n, 2);
	assert_string_equal(s, "hi");
	assert_int_equal(r.left, 0);
	assert_false(rd_u8(&r, &u8));
}

static void test_rd_never_reads_past_end(void **state)
{
	static const uint8_t data[] = {1, 2, 3, 'a', 'b'};
	struct rd r;
	uint32_t u32 = 77;
	const uint8_t *p;
	const char *s;
	size_t n;

	(void)state;
	rd_init(&r, data, 3);
	assert_false(rd_u32(&r, &u32));
	assert_int_equal(u32, 77); /* untouched */
	assert_int_equal(r.left, 3);
	assert_false(rd_bytes(&r, 4, &p));
	rd_init(&r, data + 3, 2); /* no NUL terminator in range */
	assert_false(rd_cstr(&r, &s, &n));
}

static void test_buf_grows_and_caps(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1000);
	for (int i = 0; i < 100; i++)
		buf_puts(&b, "0123456789");
	assert_true(buf_ok(&b));
	assert_int_equal(b.len, 1000);
	assert_int_equal(b.data[b.len], '\0');
	/* Doubling from 256 would give 1024: the storage stops at the limit
	 * and its NUL. */
	assert_int_equal(b.cap, 1001);
	buf_putc(&b, 'x');
	assert_false(buf_ok(&b));
	assert_int_equal(b.len, 1000);
	buf_clear(&b);
	assert_true(buf_ok(&b));
	buf_printf(&b, "%d-%s", 42, "ok");
	assert_string_equal(b.data, "42-ok");
	buf_consume(&b, 3);
	assert_string_equal(b.data, "ok");
	buf_reset(&b);
	assert_null(b.data);
}

/* buf_append copies short pieces inline, by lengths: every length up to
 * past the inline cases, at every offset, byte for byte. */
/* From empty: GROW_FIRST_BYTES worth (at least one element, or what is
 * needed at once); then doubling until need fits; never past max. */
static void test_grow_capacity_rule(void **state)
{
	(void)state;
	assert_int_equal(grow_capacity(0, 1, 1, SIZE_MAX), 256);
	assert_int_equal(grow_capacity(0, 1, 8, SIZE_MAX), 32);
	assert_int_equal(grow_capacity(0, 1, 1000, SIZE_MAX), 1);
	assert_int_equal(grow_capacity(0, 300, 1, SIZE_MAX), 512);
	assert_int_equal(grow_capacity(256, 257, 1, SIZE_MAX), 512);
	assert_int_equal(grow_capacity(256, 5000, 1, SIZE_MAX), 8192);
	assert_int_equal(grow_capacity(3, 4, 1000, SIZE_MAX), 6);
	/* Already enough: unchanged, whatever max says. */
	assert_int_equal(grow_capacity(512, 300, 1, 100), 512);
	/* Clamped to max; need over max cannot be met. */
	assert_int_equal(grow_capacity(0, 1, 1, 100), 100);
	assert_int_equal(grow_capacity(512, 600, 1, 700), 700);
	assert_int_equal(grow_capacity(512, 700, 1, 700), 700);
	assert_int_equal(grow_capacity(512, 701, 1, 700), 0);
	assert_int_equal(grow_capacity(0, 1, 0, SIZE_MAX), 0);
	/* Powers of two stay powers of two up to a power-of-two max. */
	for (size_t cap = 0, n = 0; n < 40; n++) {
		cap = grow_capacity(cap, cap + 1, sizeof(void *), (size_t)1 << 40);
		assert_int_equal(cap & (cap - 1), 0);
	}
}

/* The overflow edges: doubling past SIZE_MAX, or past what SIZE_MAX bytes
 * hold, stops at the largest capacity whose size in bytes fits; a need
 * whose size does not fit is refused, never wrapped to a small one. */
static void test_grow_capacity_overflow(void **state)
{
	const size_t half = SIZE_MAX / 2 + 1;
	const size_t fit16 = SIZE_MAX / 16; /* the most 16-byte elements */

	(void)state;
	assert_int_equal(grow_capacity(half, half + 1, 1, SIZE_MAX), SIZE_MAX);
	assert_int_equal(grow_capacity(half - 1, half, 1, SIZE_MAX), SIZE_MAX - 1);
	assert_int_equal(grow_capacity(SIZE_MAX - 1, SIZE_MAX, 1, SIZE_MAX), SIZE_MAX);
	assert_int_equal(grow_capacity(fit16 / 2 + 1, fit16, 16, SIZE_MAX), fit16);
	assert_int_equal(grow_capacity(16, fit16 + 1, 16, SIZE_MAX), 0);
	assert_int_equal(grow_capacity(16, SIZE_MAX, 16, SIZE_MAX), 0);
	assert_true(grow_capacity(16, fit16, 16, SIZE_MAX) <= SIZE_MAX / 16);
}

/* grow_array keeps the contents, moves *cap forward only on success, and on
 * any failure leaves the array and *cap as they were, still the caller's. */
static void test_grow_array(void **state)
{
	size_t cap = 0;
	int *a = NULL, *n;

	(void)state;
	a = grow_array(a, &cap, 1, sizeof *a, 1000);
	assert_non_null(a);
	assert_int_equal(cap, 64);
	for (int i = 0; i < 64; i++)
		a[i] = i;
	assert_ptr_equal(grow_array(a, &cap, 64, sizeof *a, 1000), a); /* fits */
	n = grow_array(a, &cap, 65, sizeof *a, 1000);
	assert_non_null(n);
	a = n;
	assert_int_equal(cap, 128);
	for (int i = 0; i < 64; i++)
		assert_int_equal(a[i], i);
	/* Past max, and past what a size_t of bytes holds: refused before any
	 * allocation is tried. */
	assert_null(grow_array(a, &cap, 1001, sizeof *a, 1000));
	assert_int_equal(cap, 128);
	assert_null(grow_array(a, &cap, SIZE_MAX / sizeof *a + 1, sizeof *a, SIZE_MAX));
	assert_null(grow_array(a, &cap, SIZE_MAX, sizeof *a, SIZE_MAX));
	assert_int_equal(cap, 128);
	assert_int_equal(a[63], 63); /* still ours */
	free(a);
}

static void test_buf_append_every_length(void **state)
{
	char src[64], want[4096];
	struct buf b;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (char)('A' + i % 50);
	buf_init(&b, 0);
	for (size_t off = 0; off < 3; off++) {
		for (size_t n = 1; n <= 40; n++) {
			buf_append(&b, src + off, n);
			memcpy(want + len, src + off, n);
			len += n;
		}
	}
	assert_true(buf_ok(&b));
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, want, len);
	assert_int_equal(b.data[b.len], '\0');
	buf_reset(&b);
}

static void test_lsn_round_trip(void **state)
{
	char s[LSN_STR_MAX];
	uint64_t v;

	(void)state;
	lsn_format(UINT64_C(0x16C752F8), s);
	assert_string_equal(s, "0/16C752F8");
	lsn_format(UINT64_C(0xFFFFFFFFFFFFFFFF), s);
	assert_string_equal(s, "FFFFFFFF/FFFFFFFF");
	/* no leading zeros, at least one digit, each digit count */
	lsn_format(0, s);
	assert_string_equal(s, "0/0");
	lsn_format(UINT64_C(0x100000000), s);
	assert_string_equal(s, "1/0");
	for (int digits = 1; digits <= 8; digits++) {
		char want[LSN_STR_MAX];
		uint32_t lo = (uint32_t)(UINT64_C(1) << (4 * (digits - 1)));

		snprintf(want, sizeof want, "0/%X", lo);
		assert_int_equal(lsn_format(lo, s), digits + 2);
		assert_string_equal(s, want);
	}
	assert_true(lsn_parse("1A/00000b0c", &v));
	assert_true(v == UINT64_C(0x1A00000B0C));
	assert_false(lsn_parse("", &v));
	assert_false(lsn_parse("0/", &v));
	assert_false(lsn_parse("/1", &v));
	assert_false(lsn_parse("0/1x", &v));
	assert_false(lsn_parse("123456789/0", &v));
	assert_false(lsn_parse("12", &v));
}

static void test_pgtime_format(void **state)
{
	char s[32];

	(void)state;
	pgtime_format(0, s);
	assert_string_equal(s, "2000-01-01T00:00:00.000000Z");
	/* 2026-11-24 14:30:00.123456 UTC = unix 1795530600.123456 */
	pgtime_format(INT64_C(1795530600123456) - PG_EPOCH_OFFSET_US, s);
	assert_string_equal(s, "2026-11-24T14:30:00.123456Z");
	pgtime_format(-1, s);
	assert_string_equal(s, "1999-12-31T23:59:59.999999Z");
	/* Out of range for the text form, and no overflow on the way (the
	 * decoder fuzzer found INT64_MAX - small overflowing the epoch shift). */
	pgtime_format(INT64_MAX, s);
	assert_string_equal(s, "invalid");
	pgtime_format(INT64_MIN, s);
	assert_string_equal(s, "invalid");
}

static void test_err_is_one_line(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(err_set(&e, "could not connect: %s", "FATAL: no\nDETAIL: x\n"), -1);
	assert_null(strchr(e.msg, '\n'));
	assert_string_equal(e.msg, "could not connect: FATAL: no DETAIL: x");
	err_wrap(&e, "at %d", 3);
	assert_string_equal(e.msg, "at 3: could not connect: FATAL: no DETAIL: x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rd_reads_big_endian),
	    cmocka_unit_test(test_rd_never_reads_past_end),
	    cmocka_unit_test(test_buf_grows_and_caps),
	    cmocka_unit_test(test_buf_append_every_length),
	    cmocka_unit_test(test_grow_capacity_rule),
	    cmocka_unit_test(test_grow_capacity_overflow),
	    cmocka_unit_test(test_grow_array),
	    cmocka_unit_test(test_lsn_round_trip),
	    cmocka_unit_test(test_pgtime_format),
	    cmocka_unit_test(test_err_is_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
