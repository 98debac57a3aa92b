/* test_checkpoint.c — the acknowledgement rule: a position is released only
 * when every event before it is confirmed, in commit order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "checkpoint.h"

static void test_releases_in_order(void **state)
{
	struct checkpoint cp;

	(void)state;
	assert_int_equal(checkpoint_init(&cp, 8, 100), 0);
	assert_true(checkpoint_mark(&cp, 200, 3));      /* txn A: events 1..3 */
	assert_true(checkpoint_mark(&cp, 300, 5));      /* txn B: events 4..5 */
	assert_true(checkpoint_confirm(&cp, 2) == 100); /* A not whole yet */
	assert_true(checkpoint_confirm(&cp, 4) == 200); /* A done, B partial */
	assert_true(checkpoint_confirm(&cp, 5) == 300);
	assert_int_equal(cp.count, 0);
	checkpoint_reset(&cp);
}

static void test_idle_keepalives_merge(void **state)
{
	struct checkpoint cp;

	(void)state;
	assert_int_equal(checkpoint_init(&cp, 2, 0), 0);
	assert_true(checkpoint_mark(&cp, 100, 1));
	/* Keepalives with no new events move the newest mark forward. */
	assert_true(checkpoint_mark(&cp, 150, 1));
	assert_true(checkpoint_mark(&cp, 180, 1));
	assert_int_equal(cp.count, 1);
	assert_true(checkpoint_confirm(&cp, 1) == 180);
	/* With nothing pending, an old position changes nothing. */
	assert_true(checkpoint_mark(&cp, 170, 1));
	assert_int_equal(cp.count, 0);
	checkpoint_reset(&cp);
}

static void test_full_ring_refuses(void **state)
{
	struct checkpoint cp;

	(void)state;
	assert_int_equal(checkpoint_init(&cp, 2, 0), 0);
	assert_true(checkpoint_mark(&cp, 10, 1));
	assert_true(checkpoint_mark(&cp, 20, 2));
	assert_true(checkpoint_full(&cp));
	assert_false(checkpoint_mark(&cp, 30, 3));
	assert_true(checkpoint_confirm(&cp, 1) == 10);
	assert_true(checkpoint_mark(&cp, 30, 3)); /* wraps around */
	assert_true(checkpoint_confirm(&cp, 3) == 30);
	checkpoint_reset(&cp);
}

static void test_never_moves_backwards(void **state)
{
	struct checkpoint cp;

	(void)state;
	assert_int_equal(checkpoint_init(&cp, 4, 500), 0);
	assert_true(checkpoint_mark(&cp, 400, 1)); /* below start: ignored */
	assert_true(checkpoint_confirm(&cp, 1) == 500);
	assert_true(checkpoint_confirm(&cp, 0) == 500);
	checkpoint_reset(&cp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_releases_in_order),
	    cmocka_unit_test(test_idle_keepalives_merge),
	    cmocka_unit_test(test_full_ring_refuses),
	    cmocka_unit_test(test_never_moves_backwards),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
