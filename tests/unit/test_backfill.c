/* test_backfill.c — the pure part of on-demand snapshots: whether a chunk's
 * snapshot sees a transaction the stream committed (32-bit xids from the
 * stream against the snapshot's 64-bit ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pg/backfill.h"

static void test_sees(void **state)
{
	const uint64_t xip[] = {100, 103};
	const struct backfill_chunk c = {.xmin = 100, .xmax = 105, .xip = xip, .nxip = 2};

	(void)state;
	assert_true(backfill_chunk_sees(&c, 99));   /* ended before */
	assert_false(backfill_chunk_sees(&c, 100)); /* running */
	assert_true(backfill_chunk_sees(&c, 101));  /* ended between */
	assert_false(backfill_chunk_sees(&c, 103));
	assert_false(backfill_chunk_sees(&c, 105)); /* not counted as ended yet */
	assert_false(backfill_chunk_sees(&c, 106));
}

static void test_epochs(void **state)
{
	/* Epoch 3, the 32-bit counter just wrapped: 0xFFFFFFF0 is older than
	 * the snapshot's xmin, 5 newer than its xmax. */
	const uint64_t base = (uint64_t)3 << 32;
	const uint64_t xip[] = {base + 2};
	const struct backfill_chunk c = {.xmin = base + 2, .xmax = base + 4, .xip = xip, .nxip = 1};

	(void)state;
	assert_true(backfill_chunk_sees(&c, 0xFFFFFFF0u));
	assert_true(backfill_chunk_sees(&c, 1));
	assert_false(backfill_chunk_sees(&c, 2));
	assert_true(backfill_chunk_sees(&c, 3));
	assert_false(backfill_chunk_sees(&c, 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sees),
	    cmocka_unit_test(test_epochs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
