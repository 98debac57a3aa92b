/*
 * test_sink_kafka.c — the Kafka sink's parts: the delivery window
 * (seqwin.h) under reports in any order, topic templates (kafka_topic.h),
 * and the sink itself against librdkafka's in-process mock cluster
 * (test.mock.num.brokers): nothing confirmed before its delivery report,
 * everything after a durable flush, a message over message.max.bytes a
 * clear error that confirms nothing from it on, and bad properties refused
 * by sink_check_config; the exactly-once checkpoint record (kafka_offsets.h)
 * and, against the mock, nothing confirmed before its transaction commits,
 * and events at or before what Kafka holds confirmed without being sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sink/kafka_offsets.h"
#include "sink/kafka_topic.h"
#include "sink/seqwin.h"
#include "sink/sink.h"

/* ---- seqwin ------------------------------------------------------------- */

static void test_seqwin_out_of_order(void **state)
{
	struct seqwin w;

	(void)state;
	assert_int_equal(seqwin_init(&w, 4, 0), 0);
	/* events 1..3, one message each; event 2 has a second (a tombstone) */
	seqwin_message_sent(&w, 1);
	seqwin_event_sent(&w, 1);
	seqwin_message_sent(&w, 2);
	seqwin_message_sent(&w, 2);
	seqwin_event_sent(&w, 2);
	seqwin_message_sent(&w, 3);
	seqwin_event_sent(&w, 3);
	assert_int_equal(seqwin_confirmed(&w), 0); /* sent is not delivered */
	seqwin_delivered(&w, 3);
	assert_int_equal(seqwin_confirmed(&w), 0); /* 1 and 2 still out */
	seqwin_delivered(&w, 2);
	seqwin_delivered(&w, 1);
	assert_int_equal(seqwin_confirmed(&w), 1); /* 2 has a message out */
	seqwin_delivered(&w, 2);
	assert_int_equal(seqwin_confirmed(&w), 3);
	assert_int_equal(seqwin_in_flight(&w), 0);
	seqwin_reset(&w);
}

static void test_seqwin_full_and_wraps(void **state)
{
	struct seqwin w;
	uint64_t seq;

	(void)state;
	assert_int_equal(seqwin_init(&w, 3, 100), 0);
	for (seq = 101; seq <= 103; seq++) {
		assert_true(seqwin_room(&w, seq));
		seqwin_message_sent(&w, seq);
		seqwin_event_sent(&w, seq);
	}
	assert_false(seqwin_room(&w, 104)); /* three unconfirmed: full */
	seqwin_delivered(&w, 102);
	assert_false(seqwin_room(&w, 104)); /* 101 holds the window */
	seqwin_delivered(&w, 101);
	assert_int_equal(seqwin_confirmed(&w), 102);
	assert_true(seqwin_room(&w, 104));
	/* a message of the open event delivered before its last one is sent:
	 * the event is not confirmed until it is whole */
	seqwin_message_sent(&w, 104);
	seqwin_delivered(&w, 104);
	seqwin_delivered(&w, 103);
	assert_int_equal(seqwin_confirmed(&w), 103);
	seqwin_message_sent(&w, 104);
	seqwin_event_sent(&w, 104);
	assert_int_equal(seqwin_confirmed(&w), 103);
	seqwin_delivered(&w, 104);
	assert_int_equal(seqwin_confirmed(&w), 104);
	/* a hand-over that failed (queue full) is taken back */
	seqwin_message_sent(&w, 105);
	seqwin_message_unsent(&w, 105);
	seqwin_message_sent(&w, 105);
	seqwin_event_sent(&w, 105);
	seqwin_delivered(&w, 105);
	assert_int_equal(seqwin_confirmed(&w), 105);
	seqwin_reset(&w);
}

/* Many events reported in a shuffled order: confirmed is always the
 * longest delivered prefix, never more. */
static void test_seqwin_random_order(void **state)
{
	enum { N = 5000, CAP = 512 };
	static uint64_t order[N];
	static bool done[N + 1];
	struct seqwin w;
	uint32_t rng = 7;
	uint64_t next = 1, reported = 0;

	(void)state;
	assert_int_equal(seqwin_init(&w, CAP, 0), 0);
	while (reported < N) {
		/* send while there is room, report a random outstanding one */
		size_t out = 0;

		while (next <= N && seqwin_room(&w, next)) {
			seqwin_message_sent(&w, next);
			seqwin_event_sent(&w, next);
			next++;
		}
		for (uint64_t s = seqwin_confirmed(&w) + 1; s < next; s++)
			if (!done[s])
				order[out++] = s;
		assert_true(out > 0);
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		{
			uint64_t s = order[rng % out];
			uint64_t prefix = 0;

			seqwin_delivered(&w, s);
			done[s] = true;
			reported++;
			while (prefix < N && done[prefix + 1])
				prefix++;
			assert_int_equal(seqwin_confirmed(&w), prefix);
		}
	}
	assert_int_equal(seqwin_confirmed(&w), N);
	seqwin_reset(&w);
}

/* ---- topic templates ------------------------------------------------------ */

static void test_topic_templates(void **state)
{
	const unsigned all = KAFKA_TOPIC_PREFIX | KAFKA_TOPIC_SCHEMA | KAFKA_TOPIC_TABLE;
	struct err e = {0};
	unsigned uses;
	struct buf b;
	char longname[300];

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(
	    kafka_topic_check("kafka-topic", "{prefix}.{schema}.{table}", "app", all, &uses, &e),
	    0);
	assert_int_equal(uses, all);
	assert_true(kafka_topic_render(&b, "{prefix}.{schema}.{table}", "app", "public", "users"));
	assert_string_equal(b.data, "app.public.users");
	/* names Kafka cannot take: one '_' per character */
	buf_clear(&b);
	assert_true(kafka_topic_render(&b, "{prefix}.{schema}.{table}", "app", "other schema",
	                               "t\xc3\xa9st"));
	assert_string_equal(b.data, "app.other_schema.t_st");
	/* a fixed topic */
	assert_int_equal(kafka_topic_check("kafka-topic", "all-changes", "app", all, &uses, &e), 0);
	assert_int_equal(uses, 0);
	/* refused: unknown placeholder, one not allowed here, bad characters */
	assert_int_equal(kafka_topic_check("kafka-topic", "{prefix}.{db}", "app", all, &uses, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "--kafka-topic"));
	assert_int_equal(kafka_topic_check("kafka-messages-topic", "{prefix}.{table}", "app",
	                                   KAFKA_TOPIC_PREFIX, &uses, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "placeholders here: {prefix})"));
	assert_int_equal(kafka_topic_check("kafka-topic", "a b", "app", all, &uses, &e), -1);
	assert_int_equal(kafka_topic_check("kafka-topic", "{prefix}", "a/b", all, &uses, &e), -1);
	assert_non_null(strstr(e.msg, "--topic-prefix"));
	/* longer than Kafka allows */
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	buf_clear(&b);
	assert_false(kafka_topic_render(&b, "{prefix}.{schema}.{table}", "app", "s", longname));
	buf_reset(&b);
}

/* ---- the sink, against librdkafka's in-process mock cluster -------------- */

/* The sink's options as config.c would give them (sink.h): one config
 * at a time. */
static struct sink_value mock_values[8];

/* Set the option flag of cfg (a mock_config) to value, or add it. */
static void mock_set(struct sink_config *cfg, const char *flag, const char *value)
{
	size_t i = 0;

	while (i < cfg->nvalues && strcmp(mock_values[i].flag, flag) != 0)
		i++;
	assert_true(i < sizeof mock_values / sizeof mock_values[0]);
	mock_values[i] = (struct sink_value){.flag = flag, .value = value, .from_flag = true};
	if (i == cfg->nvalues)
		cfg->nvalues++;
}

static struct sink_config mock_config(const char *properties)
{
	struct sink_config cfg = {
	    .sink = "kafka",
	    .prefix = "t",
	    .values = mock_values,
	};

	mock_set(&cfg, "kafka-brokers", "localhost:9"); /* replaced by the mock's */
	if (properties)
		mock_set(&cfg, "kafka-property", properties);
	return cfg;
}

static int put(struct sink *s, uint64_t seq, const char *line, const char *key, bool del,
               struct err *e)
{
	struct sink_record rec = {
	    .schema = "public",
	    .table = "users",
	    .key = key,
	    .key_len = key ? strlen(key) : 0,
	    .delete = del,
	    .transactional = true,
	    .lsn = 0x1000 + seq,
	    .commit_lsn = 0x2000,
	    .xid = 7,
	};

	buf_puts(sink_buf(s), line);
	return sink_event_done(s, seq, &rec, e);
}

static void test_sink_confirms_on_reports(void **state)
{
	struct sink_config cfg = mock_config("test.mock.num.brokers=3\nlinger.ms=50");
	struct err e = {0};
	struct sink *s;

	(void)state;
	s = sink_open(&cfg, &e);
	if (s == NULL)
		fail_msg("%s", e.msg);
	assert_true(sink_wants_records(s));
	for (uint64_t seq = 1; seq <= 100; seq++)
		assert_int_equal(put(s, seq, "{\"op\":\"insert\"}\n", "{\"id\":1}", seq == 100, &e),
		                 0);
	/* produced, lingering: no report yet, nothing confirmed */
	assert_int_equal(sink_confirmed(s), 0);
	assert_false(sink_blocked(s));
	for (int i = 0; i < 20 && sink_confirmed(s) < 100; i++)
		assert_int_equal(sink_flush(s, true, &e), 0);
	assert_int_equal(sink_confirmed(s), 100);
	sink_close(s);
}

static void test_sink_too_large_is_permanent(void **state)
{
	struct sink_config cfg = mock_config("test.mock.num.brokers=1\nmessage.max.bytes=2000");
	struct err e = {0};
	char big[4000];
	struct sink *s;

	(void)state;
	s = sink_open(&cfg, &e);
	if (s == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(put(s, 1, "{\"small\":1}\n", "{\"id\":1}", false, &e), 0);
	memset(big, 'x', sizeof big - 2);
	big[sizeof big - 2] = '\n';
	big[sizeof big - 1] = '\0';
	assert_int_equal(put(s, 2, big, "{\"id\":2}", false, &e), -1);
	assert_int_equal(e.kind, ERR_SINK);
	assert_non_null(strstr(e.msg, "topic t.public.users (table public.users)"));
	assert_non_null(strstr(e.msg, "the event at 0/1002"));
	assert_non_null(strstr(e.msg, "message.max.bytes"));
	/* the failure stays: every later call reports it; 1 may be confirmed,
	 * never 2 or beyond */
	for (int i = 0; i < 10; i++)
		assert_int_equal(sink_flush(s, true, &e), -1);
	assert_true(sink_confirmed(s) <= 1);
	sink_close(s);
}

/* ---- exactly once --------------------------------------------------------- */

static void test_offsets_record(void **state)
{
	struct kafka_pos p = {.txn = 0x16B3F20, .index = 3, .lsn = 0x16B3E08}, q;
	struct kafka_pos a = {.txn = 5, .index = 9}, b = {.txn = 6, .index = 1};
	struct buf v;
	char what[96];

	(void)state;
	buf_init(&v, 0);
	kafka_offsets_format(&v, "app_slot", &p, "18c2f-17");
	assert_string_equal(v.data,
	                    "{\"slot\":\"app_slot\",\"commit_lsn\":\"0/16B3F20\",\"index\":3,"
	                    "\"lsn\":\"0/16B3E08\",\"kafka_txn\":\"18c2f-17\"}");
	assert_true(kafka_offsets_parse(v.data, v.len, &q));
	assert_int_equal(kafka_pos_cmp(&p, &q), 0);
	assert_int_equal(q.lsn, p.lsn);
	/* by hand, blanks and other order allowed */
	const char *hand = "{ \"index\" : 12 , \"commit_lsn\": \"1/0\" }";
	assert_true(kafka_offsets_parse(hand, strlen(hand), &q));
	assert_int_equal(q.txn, 0x100000000ULL);
	assert_int_equal(q.index, 12);
	assert_int_equal(q.lsn, 0);
	/* not a checkpoint: refused, never guessed */
	static const char *const bad[] = {
	    "",
	    "{}",
	    "{\"commit_lsn\":\"0/1\"}",
	    "{\"index\":3}",
	    "{\"commit_lsn\":\"0/1\",\"index\":0}",
	    "{\"commit_lsn\":\"0/0\",\"index\":1}",
	    "{\"commit_lsn\":\"zz\",\"index\":1}",
	    "{\"commit_lsn\":\"0/1\",\"index\":1x}",
	    "{\"commit_lsn\":\"0/1\",\"index\":-1}",
	    "{\"commit_lsn\":\"0/1\",\"index\":99999999999999999999}",
	    "{\"x_commit_lsn\":\"0/1\",\"index\":1}",
	    "{\"commit_lsn\":\"0/1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(kafka_offsets_parse(bad[i], strlen(bad[i]), &q));
	/* order: by transaction, then by the event's number in it */
	assert_true(kafka_pos_cmp(&a, &b) < 0);
	b.txn = 5;
	assert_true(kafka_pos_cmp(&a, &b) > 0);
	kafka_pos_describe(&p, what, sizeof what);
	assert_string_equal(what, "event 3 of the transaction committed at 0/16B3F20");
	buf_reset(&v);
}

static int put_at(struct sink *s, uint64_t seq, uint64_t commit_lsn, uint64_t index, struct err *e)
{
	struct sink_record rec = {
	    .schema = "public",
	    .table = "users",
	    .key = "{\"id\":1}",
	    .key_len = 8,
	    .transactional = true,
	    .lsn = commit_lsn - 0x100 + index,
	    .commit_lsn = commit_lsn,
	    .xid = 7,
	    .index = index,
	};

	buf_puts(sink_buf(s), "{\"op\":\"insert\"}\n");
	return sink_event_done(s, seq, &rec, e);
}

static void test_sink_exactly_once(void **state)
{
	struct sink_config cfg = mock_config("test.mock.num.brokers=3\nlinger.ms=50");
	struct err e = {0};
	struct sink *s;
	uint64_t seq = 0;

	(void)state;
	mock_set(&cfg, "kafka-exactly-once", "true");
	mock_set(&cfg, "kafka-offsets-topic", "{prefix}.pgstream.offsets");
	cfg.slot = "s";
	mock_set(&cfg, "kafka-commit-interval", "10"); /* only the durable flushes commit */
	s = sink_open(&cfg, &e);
	if (s == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(sink_resume_lsn(s), 0); /* nothing in Kafka yet */
	/* two transactions of 50 events */
	for (uint64_t t = 1; t <= 2; t++)
		for (uint64_t i = 1; i <= 50; i++)
			assert_int_equal(put_at(s, ++seq, 0x1000 * t, i, &e), 0);
	/* delivered or not, nothing is confirmed before the commit */
	for (int i = 0; i < 20; i++)
		assert_int_equal(sink_flush(s, false, &e), 0);
	assert_int_equal(sink_confirmed(s), 0);
	for (int i = 0; i < 20 && sink_confirmed(s) < 100; i++)
		assert_int_equal(sink_flush(s, true, &e), 0);
	assert_int_equal(sink_confirmed(s), 100);
	/* the server sends the second transaction again (a reconnect): held
	 * by Kafka, confirmed at once, nothing open */
	for (uint64_t i = 1; i <= 50; i++)
		assert_int_equal(put_at(s, ++seq, 0x2000, i, &e), 0);
	assert_int_equal(sink_confirmed(s), 150);
	assert_false(sink_blocked(s));
	/* then a new one: confirmed at its commit */
	assert_int_equal(put_at(s, ++seq, 0x3000, 1, &e), 0);
	assert_int_equal(sink_confirmed(s), 150);
	for (int i = 0; i < 20 && sink_confirmed(s) < 151; i++)
		assert_int_equal(sink_flush(s, true, &e), 0);
	assert_int_equal(sink_confirmed(s), 151);
	sink_close(s);
}

static void test_check_config(void **state)
{
	struct sink_config cfg;
	struct err e = {0};

	(void)state;
	cfg = mock_config("no.such.property=1");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "--kafka-property no.such.property"));
	cfg = mock_config("acks=banana");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "acks"));
	/* accepted one by one, refused together */
	cfg = mock_config("acks=1");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "invalid Kafka configuration"));
	cfg = mock_config("bootstrap.servers=x:1");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "--kafka-brokers"));
	cfg = mock_config("delivery.report.only.error=true");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	cfg = mock_config("compression.codec=lz4\nlinger.ms=20");
	assert_int_equal(sink_check_config(&cfg, &e), 0);
	cfg = mock_config(NULL);
	mock_set(&cfg, "kafka-topic", "{prefix}.{nope}");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	/* exactly once: librdkafka's transactional rules, the offsets topic */
	cfg = mock_config("enable.idempotence=false");
	mock_set(&cfg, "kafka-exactly-once", "true");
	mock_set(&cfg, "kafka-offsets-topic", "{prefix}.pgstream.offsets");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "enable.idempotence"));
	cfg = mock_config(NULL);
	mock_set(&cfg, "kafka-exactly-once", "true");
	mock_set(&cfg, "kafka-offsets-topic", "{table}");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "--kafka-offsets-topic"));
	mock_set(&cfg, "kafka-offsets-topic", "{prefix}.pgstream.offsets");
	mock_set(&cfg, "kafka-commit-interval", "0.1");
	assert_int_equal(sink_check_config(&cfg, &e), 0);
	/* committed well within the transaction's timeout */
	mock_set(&cfg, "kafka-property", "transaction.timeout.ms=1000");
	mock_set(&cfg, "kafka-commit-interval", "0.6");
	assert_int_equal(sink_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "--kafka-commit-interval (600 ms) must be at most half of "
	                              "transaction.timeout.ms (1000 ms)"));
	mock_set(&cfg, "kafka-commit-interval", "0.5");
	assert_int_equal(sink_check_config(&cfg, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seqwin_out_of_order),
	    cmocka_unit_test(test_seqwin_full_and_wraps),
	    cmocka_unit_test(test_seqwin_random_order),
	    cmocka_unit_test(test_topic_templates),
	    cmocka_unit_test(test_sink_confirms_on_reports),
	    cmocka_unit_test(test_sink_too_large_is_permanent),
	    cmocka_unit_test(test_offsets_record),
	    cmocka_unit_test(test_sink_exactly_once),
	    cmocka_unit_test(test_check_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
