/*
 * test_nats_reply.c — a JetStream publish's reply read as the NATS sink
 * reads it, on the bytes nats-server 2.9 sends (captured from Debian's
 * server: note the space in "duplicate": true and before "seq"), and the
 * subject filters a stream must have to take pgstream's subjects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sink/nats_reply.h"

static struct nats_reply parse(const char *body)
{
	struct nats_reply r;

	nats_reply_parse(body, strlen(body), &r);
	return r;
}

static void test_acks(void **state)
{
	struct nats_reply r;

	(void)state;
	r = parse("{\"stream\":\"T\", \"seq\":1}");
	assert_int_equal(r.kind, NATS_REPLY_ACK);
	assert_int_equal(r.seq, 1);
	assert_false(r.duplicate);
	r = parse("{\"stream\":\"T\", \"seq\":18446744073709551615,\"duplicate\": true}");
	assert_int_equal(r.kind, NATS_REPLY_ACK);
	assert_true(r.seq == UINT64_MAX);
	assert_true(r.duplicate);
	r = parse("{\"stream\":\"T\",\"domain\":\"hub\",\"seq\":42,\"duplicate\":false}");
	assert_int_equal(r.seq, 42);
	assert_false(r.duplicate);
	/* A stream named "seq" does not make an ack of nothing. */
	r = parse("{\"stream\":\"seq\"}");
	assert_int_equal(r.kind, NATS_REPLY_OTHER);
}

static void test_errors(void **state)
{
	struct nats_reply r;

	(void)state;
	r = parse("{\"error\":{\"code\":400,\"err_code\":10071,\"description\":\"wrong last "
	          "sequence: 1\"},\"stream\":\"T\",\"seq\":0}");
	assert_int_equal(r.kind, NATS_REPLY_ERROR);
	assert_int_equal(r.err_code, 10071);
	assert_string_equal(r.description, "wrong last sequence: 1");
	r = parse("{\"error\":{\"code\":503,\"description\":\"JetStream system temporarily "
	          "unavailable \\u003e \\\"x\\\"\"}}");
	assert_int_equal(r.kind, NATS_REPLY_ERROR);
	assert_int_equal(r.err_code, 0);
	assert_string_equal(r.description, "JetStream system temporarily unavailable > \"x\"");
	/* Cut short: still an error, with what there is. */
	r = parse("{\"error\":{\"code\":400,\"err_code\":10054,\"description\":\"message size ex");
	assert_int_equal(r.kind, NATS_REPLY_ERROR);
	assert_int_equal(r.err_code, 10054);
	assert_string_equal(r.description, "message size ex");
	r = parse("{\"error\":{\"code\":400}}");
	assert_string_equal(r.description, "(no description)");
}

static void test_not_replies(void **state)
{
	const char *bodies[] = {"",
	                        "{",
	                        "\"",
	                        "{\"seq\"",
	                        "{\"seq\":",
	                        "{\"seq\":x}",
	                        "null",
	                        "{\"error\":3}",
	                        "NATS/1.0 503\r\n\r\n"};
	struct nats_reply r;

	(void)state;
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		r = parse(bodies[i]);
		assert_int_equal(r.kind, NATS_REPLY_OTHER);
	}
	nats_reply_parse(NULL, 0, &r);
	assert_int_equal(r.kind, NATS_REPLY_OTHER);
}

static void test_subject_covers(void **state)
{
	(void)state;
	assert_true(nats_subject_covers(">", "app"));
	assert_true(nats_subject_covers("app.>", "app"));
	assert_true(nats_subject_covers("app.>", "app.eu"));
	assert_true(nats_subject_covers("*.>", "app"));
	assert_true(nats_subject_covers("app.*.>", "app.eu"));
	assert_false(nats_subject_covers("app.*.>", "app"));
	assert_false(nats_subject_covers("app.*", "app"));
	assert_false(nats_subject_covers("app", "app"));
	assert_false(nats_subject_covers("ap.>", "app"));
	assert_false(nats_subject_covers("apps.>", "app"));
	assert_false(nats_subject_covers("elsewhere.>", "app"));
	assert_false(nats_subject_covers(".>", "app"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_acks),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_not_replies),
	    cmocka_unit_test(test_subject_covers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
