/* test_pace.c — the read pacing policy (pg/pace.c): the decision after each
 * read, and the hold that tunes it, driven by hand with made-up read sizes
 * and clocks. Links neither libpq nor OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pg/pace.h"

/* Unpaced: always wait on the socket at once, as pg_recvlogical does. */
static void test_pace_off(void **state)
{
	struct pace p = {.delay_us = 0};

	(void)state;
	p.read_bytes = 100;
	assert_int_equal(pace_next(&p), PACE_POLL);
	p.read_bytes = 16384;
	assert_int_equal(pace_next(&p), PACE_POLL);
	assert_int_equal(p.read_bytes, 0);
}

/* Nothing came (idle): no pause, so a change that arrives on an idle
 * connection is read the moment it comes. */
static void test_pace_idle_polls(void **state)
{
	struct pace p = {.delay_us = 300};

	(void)state;
	assert_int_equal(pace_next(&p), PACE_POLL);
	assert_int_equal(pace_next(&p), PACE_POLL);
}

/* A short read emptied the socket: pause so the next read takes a batch. */
static void test_pace_pauses_after_short_read(void **state)
{
	struct pace p = {.delay_us = 300};

	(void)state;
	p.read_bytes = 200;
	assert_int_equal(pace_next(&p), PACE_PAUSE);
	assert_int_equal(p.read_bytes, 0);
	assert_int_equal(pace_next(&p), PACE_POLL); /* nothing since */
}

/* Full reads are followed at once by more, up to 64 kB per pause: the pause
 * must not cap throughput at one libpq buffer per pause. */
static void test_pace_bursts_on_full_reads(void **state)
{
	struct pace p = {.delay_us = 300};

	(void)state;
	for (int i = 0; i < 3; i++) {
		p.read_bytes = 16000;
		assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	}
	p.read_bytes = 16000; /* 64,000 bytes: the budget is not spent yet */
	assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	p.read_bytes = 16000;
	assert_int_equal(pace_next(&p), PACE_PAUSE);
	/* The budget starts over after a pause ... */
	p.read_bytes = 16000;
	assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	/* ... a short read ends the burst ... */
	p.read_bytes = 1000;
	assert_int_equal(pace_next(&p), PACE_PAUSE);
	p.read_bytes = 16000;
	assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	/* ... and so does a read that found nothing: pause, then poll. */
	assert_int_equal(pace_next(&p), PACE_PAUSE);
	assert_int_equal(pace_next(&p), PACE_POLL);
}

/* TLS returns one record (one walsender message) per read: a short read
 * says nothing about what is left, so reading goes on until a read finds
 * nothing or the budget is spent. Pausing after each record would cap the
 * stream at one message per pause. */
static void test_pace_record_reads(void **state)
{
	struct pace p = {.delay_us = 300, .record_reads = true};
	int reads = 0;

	(void)state;
	do {
		p.read_bytes = 200;
		reads++;
	} while (pace_next(&p) == PACE_READ_AGAIN);
	assert_int_equal(reads, 64 * 1024 / 200 + 1);
	p.read_bytes = 200;
	assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	assert_int_equal(pace_next(&p), PACE_PAUSE); /* drained */
	assert_int_equal(pace_next(&p), PACE_POLL);  /* idle */
}

/* The hold, driven by hand: observe then decide, as stream_read_on does.
 * Times in microseconds; "wall" is the server's clock. */
#define MS 1000

static void observe(struct pace *p, size_t bytes, int64_t now, int64_t wall)
{
	p->read_bytes = bytes;
	pace_observe(p, now, wall);
	(void)pace_next(p);
}

/* 100 kB in 10 ms is 10 MB/s: over the 8 MB/s that starts the hold. */
static struct pace held(void)
{
	struct pace p = {.delay_us = 300, .hold_allowed = true};

	observe(&p, 100000, 1 * MS, 0);
	observe(&p, 0, 11 * MS, 0);
	return p;
}

static void test_hold_starts_under_load(void **state)
{
	struct pace p = held();

	(void)state;
	assert_true(p.holding);
	assert_int_equal(p.hold_budget, 64 * 1024);
	assert_int_equal(pace_delay(&p), 2000);
}

/* 5 MB/s (10,000 one-row transactions a second, say) keeps the short pause
 * and its latency; so does a connection where the hold is not allowed
 * (remote, Unix socket) or pacing is off, however much arrives. */
static void test_hold_not_below_rate_or_when_not_allowed(void **state)
{
	struct pace light = {.delay_us = 300, .hold_allowed = true};
	struct pace remote = {.delay_us = 300};
	struct pace unpaced = {.delay_us = 0, .hold_allowed = true};

	(void)state;
	for (int64_t t = 1; t <= 100; t++)
		observe(&light, 5000, t * MS, 0);
	assert_false(light.holding);
	assert_int_equal(pace_delay(&light), 300);
	for (int64_t t = 1; t <= 100; t++) {
		observe(&remote, 1000000, t * MS, 0);
		observe(&unpaced, 1000000, t * MS, 0);
	}
	assert_false(remote.holding);
	assert_false(unpaced.holding);
	assert_int_equal(pace_delay(&unpaced), 0);
}

/* Messages that waited over 30 ms on the server: one eighth more budget
 * per pause (2 ms), up to 4 MB; no more often than once a pause. */
static void test_hold_budget_grows_with_lag(void **state)
{
	struct pace p = held();
	int64_t t = 11 * MS;

	(void)state;
	p.last_sent = 1000 * MS;
	observe(&p, 50000, t += 2 * MS, p.last_sent + 50 * MS);
	assert_int_equal(p.hold_budget, 64 * 1024 + 8 * 1024);
	observe(&p, 50000, t + 1 * MS, p.last_sent + 50 * MS); /* same pause */
	assert_int_equal(p.hold_budget, 64 * 1024 + 8 * 1024);
	for (int i = 0; i < 100; i++)
		observe(&p, 50000, t += 2 * MS, p.last_sent + 50 * MS);
	assert_int_equal(p.hold_budget, 4 * 1024 * 1024);
	/* Between 10 and 30 ms: left as it is. */
	observe(&p, 50000, t += 2 * MS, p.last_sent + 20 * MS);
	assert_int_equal(p.hold_budget, 4 * 1024 * 1024);
	assert_true(p.holding);
}

/* Messages that hardly waited: the window must close sooner, down to one
 * libpq buffer (16 kB) per pause. The budget bounds each burst. */
static void test_hold_budget_shrinks_and_bounds_bursts(void **state)
{
	struct pace p = held();
	int64_t t = 11 * MS;

	(void)state;
	p.last_sent = 1000 * MS;
	observe(&p, 50000, t += 2 * MS, p.last_sent + 1 * MS);
	assert_int_equal(p.hold_budget, 64 * 1024 - 4 * 1024);
	for (int i = 0; i < 100; i++)
		observe(&p, 50000, t += 2 * MS, p.last_sent + 1 * MS);
	assert_int_equal(p.hold_budget, 16 * 1024);
	/* 16,000 bytes: under the budget, read on; 32,000: spent, pause. */
	p.read_bytes = 16000;
	assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	p.read_bytes = 16000;
	assert_int_equal(pace_next(&p), PACE_PAUSE);
}

/* Under 2 MB/s over 100 ms, the hold ends: the short pause is back. */
static void test_hold_ends_when_load_drops(void **state)
{
	struct pace p = held();
	int64_t t = 11 * MS;

	(void)state;
	for (int i = 0; i < 50; i++) /* 50 x 50 kB in 100 ms: 25 MB/s */
		observe(&p, 50000, t += 2 * MS, 0);
	assert_true(p.holding);
	for (int i = 0; i < 50; i++) /* 50 x 2 kB in 100 ms: 1 MB/s */
		observe(&p, 2000, t += 2 * MS, 0);
	assert_false(p.holding);
	assert_int_equal(pace_delay(&p), 300);
}

/* A pause the user set longer than the hold's is kept. */
static void test_hold_keeps_longer_user_pause(void **state)
{
	struct pace p = {.delay_us = 5000, .hold_allowed = true};

	(void)state;
	observe(&p, 100000, 1 * MS, 0);
	observe(&p, 0, 11 * MS, 0);
	assert_true(p.holding);
	assert_int_equal(pace_delay(&p), 5000);
}

/* The boundaries: 80,000 bytes in 10 ms is exactly 8 MB/s and starts the
 * hold, one byte less does not; a lag of exactly 30 ms or 10 ms leaves the
 * budget alone. */
static void test_hold_boundaries(void **state)
{
	struct pace under = {.delay_us = 300, .hold_allowed = true};
	struct pace at = {.delay_us = 300, .hold_allowed = true};
	int64_t t = 11 * MS;

	(void)state;
	observe(&under, 79999, 1 * MS, 0);
	observe(&under, 0, 11 * MS, 0);
	assert_false(under.holding);
	observe(&at, 80000, 1 * MS, 0);
	observe(&at, 0, 11 * MS, 0);
	assert_true(at.holding);
	at.last_sent = 1000 * MS;
	observe(&at, 50000, t += 2 * MS, at.last_sent + 30 * MS);
	assert_int_equal(at.hold_budget, 64 * 1024);
	observe(&at, 50000, t += 2 * MS, at.last_sent + 10 * MS);
	assert_int_equal(at.hold_budget, 64 * 1024);
	/* No send time seen yet: nothing to go by. */
	at.last_sent = 0;
	observe(&at, 50000, t += 2 * MS, 1000 * MS);
	assert_int_equal(at.hold_budget, 64 * 1024);
}

/* The send time is the server's: the oldest and newest possible ones must
 * not overflow anything (this runs under UBSan too). Far in the past reads
 * as a long wait, far in the future as none. */
static void test_hold_corrupt_send_time(void **state)
{
	struct pace p = held();
	int64_t t = 11 * MS;

	(void)state;
	p.last_sent = INT64_MIN;
	observe(&p, 50000, t += 2 * MS, 1000 * MS);
	assert_int_equal(p.hold_budget, 64 * 1024 + 8 * 1024);
	p.last_sent = INT64_MAX;
	observe(&p, 50000, t += 2 * MS, 1000 * MS);
	assert_int_equal(p.hold_budget, 64 * 1024 + 8 * 1024 - (64 * 1024 + 8 * 1024) / 16);
}

/* The hold ends only after a whole 100 ms under 2 MB/s, not 10 ms; when
 * the load comes back it starts again from the initial budget. */
static void test_hold_leaves_slowly_and_restarts_fresh(void **state)
{
	struct pace p = held();
	int64_t t = 11 * MS;

	(void)state;
	p.last_sent = 1000 * MS;
	for (int i = 0; i < 10; i++) /* budget grows away from the start */
		observe(&p, 50000, t += 2 * MS, p.last_sent + 50 * MS);
	assert_true(p.hold_budget > 64 * 1024);
	/* Nothing more comes. The window that began with the hold (at 11 ms)
	 * ends at 111 ms with 5 MB/s; the next, all idle, at 211 ms. */
	for (int i = 0; i < 89; i++)
		observe(&p, 0, t += 2 * MS, p.last_sent + 20 * MS);
	assert_int_equal(t, 209 * MS);
	assert_true(p.holding);
	observe(&p, 0, t += 2 * MS, p.last_sent + 20 * MS);
	assert_false(p.holding);
	observe(&p, 100000, t += 1 * MS, p.last_sent + 20 * MS);
	observe(&p, 0, t += 10 * MS, p.last_sent + 20 * MS);
	assert_true(p.holding);
	assert_int_equal(p.hold_budget, 64 * 1024);
}

/* Once released (the output stalled: conn_release_hold), the hold ends at
 * once and never comes back on this connection, however much arrives; the
 * short pause and its 64 kB burst are back. */
static void test_hold_released_for_good(void **state)
{
	struct pace p = held();
	int64_t t = 11 * MS;

	(void)state;
	pace_release_hold(&p);
	assert_false(p.holding);
	assert_false(p.hold_allowed);
	assert_int_equal(pace_delay(&p), 300);
	for (int i = 0; i < 100; i++)
		observe(&p, 100000, t += 2 * MS, 0);
	assert_false(p.holding);
	for (int i = 0; i < 4; i++) {
		p.read_bytes = 16000;
		assert_int_equal(pace_next(&p), PACE_READ_AGAIN);
	}
	p.read_bytes = 16000;
	assert_int_equal(pace_next(&p), PACE_PAUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pace_off),
	    cmocka_unit_test(test_pace_idle_polls),
	    cmocka_unit_test(test_pace_pauses_after_short_read),
	    cmocka_unit_test(test_pace_bursts_on_full_reads),
	    cmocka_unit_test(test_pace_record_reads),
	    cmocka_unit_test(test_hold_starts_under_load),
	    cmocka_unit_test(test_hold_not_below_rate_or_when_not_allowed),
	    cmocka_unit_test(test_hold_budget_grows_with_lag),
	    cmocka_unit_test(test_hold_budget_shrinks_and_bounds_bursts),
	    cmocka_unit_test(test_hold_ends_when_load_drops),
	    cmocka_unit_test(test_hold_keeps_longer_user_pause),
	    cmocka_unit_test(test_hold_boundaries),
	    cmocka_unit_test(test_hold_corrupt_send_time),
	    cmocka_unit_test(test_hold_leaves_slowly_and_restarts_fresh),
	    cmocka_unit_test(test_hold_released_for_good),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
