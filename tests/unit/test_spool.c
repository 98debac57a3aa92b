/*
 * test_spool.c — streamed transactions parked on disk: records come back
 * in order and whole (empty, small and large), a subtransaction's abort
 * drops its records and its children's but keeps what came before and
 * spooling goes on after it, and the set of open transactions finds,
 * starts and drops them by xid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool.h"

static void append(struct spool *sp, uint64_t lsn, uint32_t subxid, const char *msg)
{
	struct err e = {0};

	assert_int_equal(spool_append(sp, lsn, subxid, (const uint8_t *)msg, strlen(msg), &e), 0);
}

/* Replay sp and compare with want[] (NULL-terminated), each record's LSN
 * being 100 + its index in the original sequence given by lsns[]. */
static void expect_replay(struct spool *sp, const char *const *want, const uint64_t *lsns)
{
	struct err e = {0};
	const uint8_t *msg;
	uint64_t lsn;
	size_t len, i = 0;
	int rc;

	assert_int_equal(spool_rewind(sp, &e), 0);
	while ((rc = spool_next(sp, &lsn, &msg, &len, &e)) > 0) {
		assert_non_null(want[i]);
		assert_int_equal(lsn, lsns[i]);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(msg, want[i], len);
		i++;
	}
	assert_int_equal(rc, 0);
	assert_null(want[i]);
}

static void test_records_in_order(void **state)
{
	static const char *const want[] = {"I-one", "", "U-two", NULL};
	static const uint64_t lsns[] = {100, 101, 0xFFFFFFFFFFFFFFFFull};
	struct err e = {0};
	struct spool *sp = spool_new(7, &e);

	(void)state;
	assert_non_null(sp);
	assert_int_equal(spool_xid(sp), 7);
	expect_replay(sp, (const char *const[]){NULL}, lsns); /* empty */
	append(sp, 100, 7, "I-one");
	append(sp, 101, 7, "");
	append(sp, 0xFFFFFFFFFFFFFFFFull, 7, "U-two");
	expect_replay(sp, want, lsns);
	expect_replay(sp, want, lsns); /* a second replay sees the same */
	spool_free(sp);
}

static void test_large_record(void **state)
{
	struct err e = {0};
	struct spool *sp = spool_new(1, &e);
	size_t n = 3 * 1024 * 1024;
	char *big = malloc(n + 1);
	const char *want[] = {"small", big, "after", NULL};
	const uint64_t lsns[] = {1, 2, 3};

	(void)state;
	assert_non_null(sp);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\0';
	append(sp, 1, 1, "small");
	append(sp, 2, 1, big);
	append(sp, 3, 1, "after");
	expect_replay(sp, want, lsns);
	spool_free(sp);
	free(big);
}

/* xid 10 spools, subxact 11 starts, its child 12, then 11 aborts: 11 and
 * 12 go, 10's earlier records stay; 13 after the abort is kept. */
static void test_subxact_abort(void **state)
{
	static const char *const want[] = {"top-1", "top-2", "sub13", NULL};
	static const uint64_t lsns[] = {1, 2, 6};
	struct err e = {0};
	struct spool *sp = spool_new(10, &e);

	(void)state;
	assert_non_null(sp);
	append(sp, 1, 10, "top-1");
	append(sp, 2, 10, "top-2");
	append(sp, 3, 11, "sub11");
	append(sp, 4, 12, "sub12");
	append(sp, 5, 11, "sub11-again");
	assert_int_equal(spool_abort_subxact(sp, 11, &e), 0);
	assert_int_equal(spool_abort_subxact(sp, 99, &e), 0); /* spooled nothing */
	append(sp, 6, 13, "sub13");
	expect_replay(sp, want, lsns);
	spool_free(sp);
}

static void test_set(void **state)
{
	struct spool_set ss = {0};
	struct err e = {0};
	struct spool *a, *b;

	(void)state;
	assert_null(spool_set_find(&ss, 1));
	assert_int_equal(spool_set_start(&ss, 1, false, &e), -1);
	assert_non_null(strstr(e.msg, "transaction 1 continues but was never started"));
	for (uint32_t xid = 1; xid <= 9; xid++) /* past the first growth */
		assert_int_equal(spool_set_start(&ss, xid, true, &e), 0);
	a = spool_set_find(&ss, 3);
	assert_non_null(a);
	assert_ptr_equal(ss.current, spool_set_find(&ss, 9));
	assert_int_equal(spool_set_start(&ss, 3, false, &e), 0); /* a later segment */
	assert_ptr_equal(ss.current, a);
	spool_set_stop(&ss);
	assert_null(ss.current);
	assert_int_equal(spool_set_start(&ss, 3, false, &e), 0);
	spool_set_drop(&ss, a);
	assert_null(ss.current);
	assert_null(spool_set_find(&ss, 3));
	assert_int_equal(ss.n, 8);
	b = spool_set_find(&ss, 9);
	assert_non_null(b);
	assert_int_equal(spool_xid(b), 9);
	spool_set_reset(&ss);
	assert_int_equal(ss.n, 0);
	assert_null(ss.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records_in_order),
	    cmocka_unit_test(test_large_record),
	    cmocka_unit_test(test_subxact_abort),
	    cmocka_unit_test(test_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
