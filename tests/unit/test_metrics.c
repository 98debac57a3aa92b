/*
 * test_metrics.c — ops/metrics.c without a server: counts per table and
 * operation, label escaping, the histogram's cumulative buckets, renamed
 * tables, the snapshot's progress, the lag in bytes, and the health
 * verdict's states and its acknowledgement clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "jsoncheck.h"
#include "ops/metrics.h"

static struct metrics M;
static struct buf RB, HB; /* the last render and health text */

static int setup(void **state)
{
	struct err e;

	(void)state;
	/* A 10 ms status interval: the acknowledgement limit is 30 ms. */
	return metrics_init(&M, "my_slot", "my_pub", 10, &e);
}

static int teardown(void **state)
{
	(void)state;
	metrics_reset(&M);
	buf_reset(&RB);
	buf_reset(&HB);
	return 0;
}

static char *render(void)
{
	buf_reset(&RB);
	buf_init(&RB, 0);
	metrics_render(&M, &RB);
	assert_true(buf_ok(&RB));
	return RB.data;
}

static char *health(bool *ok)
{
	buf_reset(&HB);
	buf_init(&HB, 0);
	*ok = metrics_health(&M, &HB);
	return HB.data;
}

static char *live(bool *ok)
{
	buf_reset(&HB);
	buf_init(&HB, 0);
	*ok = metrics_live(&M, &HB);
	return HB.data;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_counts_and_labels(void **state)
{
	char *t;

	(void)state;
	metrics_relation(&M, 100, "public", "users");
	metrics_relation(&M, 200, "we\"ird\\", "new\nline");
	metrics_event(&M, 100, METRICS_INSERT, 10);
	metrics_event(&M, 100, METRICS_INSERT, 10);
	metrics_event(&M, 100, METRICS_DELETE, 5);
	metrics_event(&M, 200, METRICS_TRUNCATE, 7);
	metrics_event(&M, 0, METRICS_MESSAGE, 3);      /* a message */
	metrics_event(&M, 999, METRICS_UPDATE, 1);     /* no Relation seen: totals only */
	metrics_event(&M, 100, METRICS_READ, 4);       /* a snapshot's row */
	metrics_event(&M, 0, METRICS_BYTES_ONLY, 100); /* a transaction boundary */
	t = render();
	/* Not published yet: the HTTP side sees the last snapshot only. */
	assert_non_null(strstr(t, "pgstream_output_bytes_total 0\n"));
	metrics_tick(&M, 1, 1, 1, false, true);
	t = render();
	assert_non_null(strstr(
	    t, "pgstream_events_total{schema=\"public\",table=\"users\",op=\"insert\"} 2\n"));
	assert_non_null(strstr(
	    t, "pgstream_events_total{schema=\"public\",table=\"users\",op=\"delete\"} 1\n"));
	assert_non_null(strstr(
	    t, "pgstream_events_total{schema=\"public\",table=\"users\",op=\"update\"} 0\n"));
	assert_non_null(strstr(t, "pgstream_events_total{schema=\"we\\\"ird\\\\\",table="
	                          "\"new\\nline\",op=\"truncate\"} 1\n"));
	assert_non_null(
	    strstr(t, "pgstream_events_total{schema=\"public\",table=\"users\",op=\"read\"} 1\n"));
	assert_non_null(strstr(t, "pgstream_messages_total 1\n"));
	assert_non_null(strstr(t, "pgstream_output_bytes_total 140\n"));
	assert_non_null(strstr(t, "pgstream_info{version=\"" PGSTREAM_VERSION
	                          "\",slot=\"my_slot\",publication=\"my_pub\"} 1\n"));
	assert_non_null(strstr(t, "# TYPE pgstream_events_total counter\n"));
}

static void test_renamed_table_gets_new_series(void **state)
{
	char *t;

	(void)state;
	metrics_relation(&M, 100, "public", "old_name");
	metrics_event(&M, 100, METRICS_INSERT, 1);
	metrics_relation(&M, 100, "public", "new_name");
	metrics_event(&M, 100, METRICS_INSERT, 1);
	metrics_event(&M, 100, METRICS_INSERT, 1);
	metrics_relation(&M, 100, "public", "old_name"); /* renamed back: same series */
	metrics_event(&M, 100, METRICS_INSERT, 1);
	metrics_tick(&M, 0, 0, 0, false, true);
	t = render();
	assert_non_null(strstr(
	    t, "pgstream_events_total{schema=\"public\",table=\"old_name\",op=\"insert\"} 2\n"));
	assert_non_null(strstr(
	    t, "pgstream_events_total{schema=\"public\",table=\"new_name\",op=\"insert\"} 2\n"));
}

static void test_histogram_is_cumulative(void **state)
{
	char *t;

	(void)state;
	metrics_sink_flush(&M, 50);      /* <= 0.0001 */
	metrics_sink_flush(&M, 100);     /* <= 0.0001: the bound is inclusive */
	metrics_sink_flush(&M, 300);     /* <= 0.0005 */
	metrics_sink_flush(&M, 2000000); /* <= 5 */
	metrics_sink_flush(&M, 9000000); /* +Inf only */
	metrics_tick(&M, 0, 0, 0, false, true);
	t = render();
	assert_non_null(
	    strstr(t, "pgstream_sink_flush_duration_seconds_bucket{le=\"0.0001\"} 2\n"));
	assert_non_null(
	    strstr(t, "pgstream_sink_flush_duration_seconds_bucket{le=\"0.00025\"} 2\n"));
	assert_non_null(
	    strstr(t, "pgstream_sink_flush_duration_seconds_bucket{le=\"0.0005\"} 3\n"));
	assert_non_null(strstr(t, "pgstream_sink_flush_duration_seconds_bucket{le=\"1\"} 3\n"));
	assert_non_null(strstr(t, "pgstream_sink_flush_duration_seconds_bucket{le=\"5\"} 4\n"));
	assert_non_null(strstr(t, "pgstream_sink_flush_duration_seconds_bucket{le=\"+Inf\"} 5\n"));
	assert_non_null(strstr(t, "pgstream_sink_flush_duration_seconds_count 5\n"));
	assert_non_null(strstr(t, "pgstream_sink_flush_duration_seconds_sum 11.000450\n"));
	assert_non_null(strstr(t, "# TYPE pgstream_sink_flush_duration_seconds histogram\n"));
}

static void test_snapshot_progress(void **state)
{
	char *t;

	(void)state;
	metrics_relation(&M, 100, "public", "users");
	metrics_relation(&M, 200, "public", "fresh");
	metrics_relation(&M, 300, "public", "other"); /* not in the snapshot */
	metrics_tick(&M, 0, 0, 0, false, true);
	/* No snapshot: no family at all, rather than zeros. */
	assert_null(strstr(render(), "pgstream_snapshot"));
	metrics_snapshot_table(&M, 100, 5000, false);
	metrics_snapshot_table(&M, 200, -1, false); /* never analyzed */
	metrics_snapshot_table(&M, 999, 7, true);   /* no Relation: not counted */
	metrics_event(&M, 100, METRICS_READ, 10);
	metrics_tick(&M, 0, 0, 0, false, true);
	t = render();
	assert_non_null(strstr(t, "pgstream_snapshot_tables 2\n"));
	assert_non_null(strstr(t, "pgstream_snapshot_tables_done 0\n"));
	assert_non_null(strstr(
	    t, "pgstream_snapshot_rows_estimated{schema=\"public\",table=\"users\"} 5000\n"));
	assert_null(
	    strstr(t, "pgstream_snapshot_rows_estimated{schema=\"public\",table=\"fresh\"}"));
	assert_null(strstr(t, "pgstream_snapshot_table_done{schema=\"public\",table=\"other\"}"));
	assert_non_null(
	    strstr(t, "pgstream_snapshot_table_done{schema=\"public\",table=\"fresh\"} 0\n"));
	assert_non_null(strstr(t, "# TYPE pgstream_snapshot_rows_estimated gauge\n"));
	/* Done: the estimate is the rows read. */
	metrics_snapshot_table(&M, 200, 3, true);
	metrics_tick(&M, 0, 0, 0, false, true);
	t = render();
	assert_non_null(strstr(t, "pgstream_snapshot_tables_done 1\n"));
	assert_non_null(
	    strstr(t, "pgstream_snapshot_rows_estimated{schema=\"public\",table=\"fresh\"} 3\n"));
	assert_non_null(
	    strstr(t, "pgstream_snapshot_table_done{schema=\"public\",table=\"fresh\"} 1\n"));
}

static void test_lag_bytes_counts_the_catalogs_wal_end(void **state)
{
	(void)state;
	/* The walsender's frames say 1000; the catalog knows of WAL to 5000. */
	metrics_frame(&M, 1000, 1000);
	metrics_tick(&M, 1000, 1000, 1000, false, true);
	assert_non_null(strstr(render(), "pgstream_replication_lag_bytes 0\n"));
	metrics_slot(&M, 5000, 900, 1000, true);
	metrics_tick(&M, 1000, 1000, 1000, false, true);
	assert_non_null(strstr(render(), "pgstream_replication_lag_bytes 4000\n"));
	assert_non_null(strstr(RB.data, "pgstream_server_wal_lsn 5000\n"));
	/* An older catalog answer never moves the WAL end back. */
	metrics_slot(&M, 3000, 900, 1000, true);
	metrics_tick(&M, 1000, 1000, 1000, false, true);
	assert_non_null(strstr(render(), "pgstream_server_wal_lsn 5000\n"));
}

static void test_health_states(void **state)
{
	struct err e = {.kind = ERR_TRANSIENT};
	bool ok;
	char *h;

	(void)state;
	h = health(&ok);
	assert_false(ok);
	assert_non_null(strstr(h, "starting for "));
	metrics_state(&M, METRICS_STREAMING, NULL);
	h = health(&ok);
	assert_true(ok);
	assert_string_equal(h, "ok: streaming for 0 s, acknowledged up to 0/0\n");
	metrics_state(&M, METRICS_SINK_BLOCKED, "output is not being read");
	h = health(&ok);
	assert_false(ok);
	assert_string_equal(h, "sink_blocked for 0 s: output is not being read\n");
	assert_non_null(strstr(render(), "pgstream_state{state=\"sink_blocked\"} 1\n"));
	assert_non_null(strstr(render(), "pgstream_healthy 0\n"));
	metrics_state(&M, METRICS_STREAMING, NULL);
	strcpy(e.msg, "could not read replication stream: server closed the connection");
	metrics_error(&M, &e, true);
	h = health(&ok);
	assert_false(ok);
	assert_string_equal(h, "reconnecting for 0 s: could not read replication stream: server "
	                       "closed the connection\n");
	assert_non_null(strstr(render(), "pgstream_reconnects_total 1\n"));
	assert_non_null(strstr(render(), "pgstream_errors_total{kind=\"transient\"} 1\n"));
	assert_non_null(strstr(render(), "pgstream_errors_total{kind=\"sink\"} 0\n"));
}

/* A snapshot is alive, not yet healthy; a wait on the server is alive; a
 * loop that stopped publishing is neither. */
static void test_live_states(void **state)
{
	bool ok;
	char *h;

	(void)state;
	metrics_state(&M, METRICS_SNAPSHOT, NULL);
	metrics_tick(&M, 0, 0, 0, false, true);
	h = health(&ok);
	assert_false(ok);
	assert_non_null(strstr(h, "snapshot in progress for 0 s"));
	h = live(&ok);
	assert_true(ok);
	assert_string_equal(h, "ok: snapshot for 0 s\n");
	metrics_state(&M, METRICS_STREAMING, NULL);
	sleep_ms(5000 + 2 * 10 + 100); /* past the staleness limit (10 ms status intervals) */
	h = live(&ok);
	assert_false(ok);
	assert_non_null(strstr(h, "streaming silent for 5 s"));
	metrics_tick(&M, 0, 0, 0, false, true);
	h = live(&ok);
	assert_true(ok);
	metrics_state(&M, METRICS_RECONNECTING, "server closed the connection");
	h = live(&ok);
	assert_true(ok); /* waiting on the server: a restart would not help */
	assert_string_equal(h, "ok: reconnecting for 0 s\n");
}

static void test_health_acknowledgement_clock(void **state)
{
	bool ok;
	char *h;

	(void)state;
	metrics_state(&M, METRICS_STREAMING, NULL);
	/* Something waits to be acknowledged, and the acknowledgement stays. */
	metrics_tick(&M, 0x2000, 0x1000, 0x1000, true, true);
	h = health(&ok);
	assert_true(ok);
	sleep_ms(60); /* past 3 status intervals of 10 ms */
	metrics_tick(&M, 0x2000, 0x1000, 0x1000, true, true);
	h = health(&ok);
	assert_false(ok);
	assert_non_null(
	    strstr(h, "acknowledgement stuck at 0/1000 for 0 s (written up to 0/2000)"));
	/* It moves: healthy again. */
	metrics_tick(&M, 0x2000, 0x2000, 0x2000, true, true);
	h = health(&ok);
	assert_true(ok);
	assert_non_null(strstr(h, "acknowledged up to 0/2000"));
	/* Nothing pending: a still acknowledgement is no fault. */
	sleep_ms(60);
	metrics_tick(&M, 0x2000, 0x2000, 0x2000, false, true);
	h = health(&ok);
	assert_true(ok);
}

static void test_status_json(void **state)
{
	struct err e = {.kind = ERR_SINK};
	struct buf b;

	(void)state;
	assert_int_equal(metrics_keep_history(&M, &e), 0);
	metrics_relation(&M, 1, "s\"q", "t\\b\x01\n");
	metrics_event(&M, 1, METRICS_INSERT, 1);
	strcpy(e.msg, "could not write to \"out\": \x02 broken\nline");
	for (int i = 0; i < 12; i++) /* more than the ring keeps */
		metrics_error(&M, &e, true);
	metrics_state(&M, METRICS_STREAMING, NULL);
	sleep_ms(1100); /* a second sample, with a rate */
	metrics_event(&M, 1, METRICS_INSERT, 1);
	metrics_tick(&M, 5, 5, 5, false, true);
	buf_init(&b, 0);
	metrics_render_status(&M, &b);
	assert_true(buf_ok(&b));
	assert_true(jsoncheck_line(b.data, b.len));
	assert_non_null(strstr(b.data, "\"slot\":\"my_slot\""));
	assert_non_null(strstr(b.data, "\"state\":\"streaming\",\"healthy\":true"));
	assert_non_null(strstr(b.data, "\"schema\":\"s\\\"q\",\"table\":\"t\\\\b\\u0001\\u000a\","
	                               "\"events\":2"));
	/* The ring keeps the last 10 errors. */
	{
		int n = 0;

		for (const char *p = b.data; (p = strstr(p, "\"msg\":")) != NULL; p++)
			n++;
		assert_int_equal(n, 10);
	}
	assert_non_null(strstr(b.data, "\"history\":[["));
	buf_reset(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_counts_and_labels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_renamed_table_gets_new_series, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_histogram_is_cumulative, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot_progress, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lag_bytes_counts_the_catalogs_wal_end, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_health_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_health_acknowledgement_clock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
