/* test_config.c — precedence (flags > env > .env) and clear errors for bad
 * values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "daemon.h"
#include "event/encoder.h"

static char envfile[] = "/tmp/pgstream-test-envXXXXXX";

static int setup(void **state)
{
	int fd = mkstemp(envfile);
	FILE *f = fdopen(fd, "w");

	(void)state;
	fputs("# comment\n"
	      "export DATABASE_URL=\"postgres://dotenv@h/db\"\n"
	      "SLOT_NAME=dotenv_slot\n"
	      "PUBLICATION_NAME='dotenv_pub'\n"
	      "OTHER_TOOL_SETTING=ignored\n",
	      f);
	fclose(f);
	unsetenv("DATABASE_URL");
	unsetenv("SLOT_NAME");
	unsetenv("PUBLICATION_NAME");
	unsetenv("ENV_FILE");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(envfile);
	return 0;
}

static int load(struct config *cfg, struct err *e, char **argv)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	return config_load(cfg, argc, argv, e);
}

static void test_precedence(void **state)
{
	struct config cfg;
	struct err e;
	char *argv[] = {"pgstream", "--env-file", envfile, "--slot=flag_slot", NULL};

	(void)state;
	setenv("SLOT_NAME", "env_slot", 1);
	setenv("PUBLICATION_NAME", "env_pub", 1);
	setenv("ORIGIN", "any", 1);
	assert_int_equal(load(&cfg, &e, argv), 0);
	assert_int_equal(cfg.origin, ORIGIN_ANY);
	assert_string_equal(cfg.slot, "flag_slot");                      /* flag beats env */
	assert_string_equal(cfg.publication, "env_pub");                 /* env beats .env */
	assert_string_equal(cfg.database_url, "postgres://dotenv@h/db"); /* .env */
	config_reset(&cfg);
	unsetenv("SLOT_NAME");
	unsetenv("PUBLICATION_NAME");
	unsetenv("ORIGIN");
}

static void test_defaults(void **state)
{
	struct config cfg;
	struct err e;
	char *argv[] = {"pgstream", "--env-file", "/dev/null", NULL};

	(void)state;
	assert_int_equal(load(&cfg, &e, argv), 0);
	assert_null(cfg.database_url);
	assert_string_equal(cfg.slot, "pgstream_slot");
	assert_string_equal(cfg.publication, "pgstream_pub");
	assert_int_equal(cfg.status_interval_ms, 10000);
	assert_int_equal(cfg.read_delay_us, 300);
	assert_true(cfg.read_hold);
	assert_int_equal(cfg.invalid_utf8, UTF8_REPLACE);
	assert_true(cfg.fsync);
	assert_false(cfg.temporary_slot);
	assert_int_equal(cfg.origin, ORIGIN_UNSET); /* not sent: the server's own default */
	config_reset(&cfg);
}

static void test_values_parse(void **state)
{
	struct config cfg;
	struct err e;
	char *argv[] = {"pgstream",
	                "--env-file",
	                "/dev/null",
	                "--format",
	                "pretty",
	                "--start-lsn",
	                "0/10",
	                "--end-lsn=1/0",
	                "--status-interval",
	                "0.5",
	                "--create-publication",
	                "--fsync=false",
	                "--read-delay-us=0",
	                "--read-hold=false",
	                "--invalid-utf8=fail",
	                "--origin=none",
	                NULL};

	(void)state;
	assert_int_equal(load(&cfg, &e, argv), 0);
	assert_string_equal(cfg.format, "pretty");
	assert_true(cfg.start_lsn == 0x10);
	assert_true(cfg.end_lsn == UINT64_C(0x100000000));
	assert_int_equal(cfg.status_interval_ms, 500);
	assert_true(cfg.create_publication);
	assert_false(cfg.fsync);
	assert_int_equal(cfg.read_delay_us, 0);
	assert_false(cfg.read_hold);
	assert_int_equal(cfg.invalid_utf8, UTF8_FAIL);
	assert_int_equal(cfg.origin, ORIGIN_NONE);
	config_reset(&cfg);
}

/* Each bad argv must fail with a message containing the given text. */
static void expect_error(char **argv, const char *text)
{
	struct config cfg;
	struct err e = {0};

	assert_int_equal(load(&cfg, &e, argv), -1);
	if (strstr(e.msg, text) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", e.msg, text);
	assert_null(strchr(e.msg, '\n'));
	config_reset(&cfg);
}

static void test_bad_values(void **state)
{
	char *a1[] = {"pgstream", "--format", "xml", NULL};
	char *a2[] = {"pgstream", "--slot", "Bad-Slot", NULL};
	char *a3[] = {"pgstream", "--start-lsn", "12", NULL};
	char *a4[] = {"pgstream", "--status-interval", "-1", NULL};
	char *a5[] = {"pgstream", "--bogus", NULL};
	char *a6[] = {"pgstream", "--slot", NULL};
	char *a7[] = {"pgstream", "--temporary-slot=maybe", NULL};
	char *a8[] = {"pgstream", "--env-file", "/nonexistent/.env", NULL};
	char *a9[] = {"pgstream", "--env-file=/dev/null", "--tables", "a", NULL};
	char *a10[] = {"pgstream", "--env-file=/dev/null", "--start-lsn=0/2", "--end-lsn=0/1",
	               NULL};
	char *a11[] = {"pgstream", "stray", NULL};
	char *a12[] = {"pgstream", "--log-level", "loud", NULL};
	char *a13[] = {"pgstream", "--env-file=/dev/null", "--temporary-slot", "--start-lsn=0/1",
	               NULL};
	char *a14[] = {"pgstream", "--read-delay-us", "100001", NULL};
	char *a15[] = {"pgstream", "--read-delay-us", " 5", NULL};
	char *a16[] = {"pgstream", "--invalid-utf8", "ignore", NULL};
	char *a17[] = {"pgstream", "--origin", "local", NULL};

	(void)state;
	expect_error(a1, "--format");
	expect_error(a2, "--slot");
	expect_error(a3, "--start-lsn");
	expect_error(a4, "--status-interval");
	expect_error(a5, "unknown option \"--bogus\"");
	expect_error(a6, "needs a value");
	expect_error(a7, "--temporary-slot");
	expect_error(a8, "could not open /nonexistent/.env");
	expect_error(a9, "--tables needs --create-publication");
	expect_error(a10, "--end-lsn is before --start-lsn");
	expect_error(a11, "unexpected argument");
	expect_error(a12, "--log-level");
	expect_error(a13, "--start-lsn cannot be used with --temporary-slot");
	expect_error(a14, "from 0 to 100000");
	expect_error(a15, "--read-delay-us");
	expect_error(a16, "(expected replace or fail)");
	expect_error(a17, "invalid value for --origin: \"local\" (expected any or none)");
}

/* --format debezium and its --debezium-decimal (default precise). */
static void test_debezium_options(void **state)
{
	char *a1[] = {"pgstream", "--env-file=/dev/null", "--format", "debezium", NULL};
	char *a2[] = {
	    "pgstream", "--env-file=/dev/null", "--format=debezium", "--debezium-decimal", "string",
	    NULL};
	char *a3[] = {"pgstream", "--env-file=/dev/null", "--debezium-decimal=double", NULL};
	char *a4[] = {"pgstream", "--debezium-decimal", "exact", NULL};
	struct config cfg;
	struct err e;

	(void)state;
	assert_int_equal(load(&cfg, &e, a1), 0);
	assert_string_equal(cfg.format, "debezium");
	assert_int_equal(cfg.debezium_decimal, ENCODER_DECIMAL_PRECISE);
	config_reset(&cfg);
	assert_int_equal(load(&cfg, &e, a2), 0);
	assert_int_equal(cfg.debezium_decimal, ENCODER_DECIMAL_STRING);
	config_reset(&cfg);
	assert_int_equal(load(&cfg, &e, a3), 0);
	assert_int_equal(cfg.debezium_decimal, ENCODER_DECIMAL_DOUBLE);
	config_reset(&cfg);
	expect_error(a4, "(expected precise, string or double)");
}

static void test_bad_env_value_names_source(void **state)
{
	char *argv[] = {"pgstream", "--env-file=/dev/null", NULL};

	(void)state;
	setenv("FORMAT", "yaml", 1);
	expect_error(argv, "environment variable for --format");
	unsetenv("FORMAT");
}

/* Whatever the input, an error is one line: control characters in a value
 * are escaped, not copied into the message. */
static void test_error_is_one_line(void **state)
{
	char *a1[] = {"pgstream", "--slot", "a\nb", NULL};
	char *a2[] = {"pgstream", "--x\ny", NULL};
	char *a3[] = {"pgstream", "--env-file", "/nonexistent/\n", NULL};

	(void)state;
	expect_error(a1, "\"a\\x0ab\"");
	expect_error(a2, "unknown option \"--x\\x0ay\"");
	expect_error(a3, "could not open /nonexistent/\\x0a");
}

/* A NUL byte inside a .env line is named as such (fgets used to call the
 * line "too long"). */
static void test_dotenv_nul_byte(void **state)
{
	static const char text[] = "SLOT_NAME=ok\nPUBLICATION_NAME=a\0b\n";
	char path[] = "/tmp/pgstream-test-nulXXXXXX";
	char *argv[] = {"pgstream", "--env-file", path, NULL};
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	expect_error(argv, "line 2 contains a NUL byte");
	unlink(path);
}

/* The value config_load kept for a sink's option, NULL if none was given. */
static const char *sink_value(const struct config *cfg, const char *flag)
{
	for (size_t i = 0; i < cfg->nsink_values; i++)
		if (strcmp(cfg->sink_values[i].flag, flag) == 0)
			return cfg->sink_values[i].value;
	return NULL;
}

/* --kafka-property repeats and accumulates; the environment gives several
 * separated by ';' and is ignored once a flag gave any; the sink's
 * settings are checked against each other (the sink's check). */
static void test_kafka_settings(void **state)
{
	struct config cfg;
	struct err e;
	char *flags[] = {"pgstream",
	                 "--env-file",
	                 "/dev/null",
	                 "--sink",
	                 "kafka",
	                 "--kafka-brokers",
	                 "k1:9092",
	                 "--kafka-property",
	                 "linger.ms=20",
	                 "--kafka-property",
	                 "acks=all",
	                 "--kafka-tombstones=false",
	                 NULL};
	char *env_only[] = {"pgstream", "--env-file", "/dev/null", "--sink=kafka", NULL};
	char *no_brokers[] = {"pgstream", "--env-file", "/dev/null", "--sink", "kafka", NULL};
	char *bad_prop[] = {"pgstream", "--env-file", "/dev/null", "--kafka-property", "=x", NULL};
	char *file_no_out[] = {"pgstream", "--env-file", "/dev/null", "--sink", "file", NULL};
	char *pretty[] = {"pgstream", "--env-file", "/dev/null",       "--sink", "kafka",
	                  "--format", "pretty",     "--kafka-brokers", "k:1",    NULL};
	char *eos_stdout[] = {"pgstream", "--env-file", "/dev/null", "--kafka-exactly-once", NULL};
	char *nats_kafka[] = {"pgstream",        "--env-file", "/dev/null",  "--sink",   "kafka",
	                      "--kafka-brokers", "k:1",        "--nats-url", "nats://x", NULL};
	char *env_only_brokers[] = {"pgstream", "--env-file",      "/dev/null", "--sink",
	                            "kafka",    "--kafka-brokers", "k:1",       NULL};

	(void)state;
	setenv("KAFKA_PROPERTIES", "compression.type=lz4;batch.size=100000", 1);
	assert_int_equal(load(&cfg, &e, flags), 0);
	assert_string_equal(cfg.sink, "kafka");
	assert_string_equal(sink_value(&cfg, "kafka-brokers"), "k1:9092");
	assert_string_equal(sink_value(&cfg, "kafka-property"), "linger.ms=20\nacks=all");
	assert_string_equal(sink_value(&cfg, "kafka-tombstones"), "false");
	assert_int_equal(daemon_check_config(&cfg, &e), 0);
	config_reset(&cfg);
	setenv("KAFKA_BROKERS", "env:9092", 1);
	assert_int_equal(load(&cfg, &e, env_only), 0);
	assert_string_equal(sink_value(&cfg, "kafka-property"),
	                    "compression.type=lz4\nbatch.size=100000");
	assert_string_equal(sink_value(&cfg, "kafka-brokers"), "env:9092");
	assert_null(sink_value(&cfg, "kafka-tombstones")); /* the sink's default: */
	{
		const char *sink;
		const struct sink_option *o = sink_option_flag("kafka-tombstones", 16, &sink);

		assert_non_null(o);
		assert_string_equal(sink, "kafka");
		assert_string_equal(o->def, "true");
	}
	assert_null(cfg.topic_prefix); /* the daemon uses the slot name */
	config_reset(&cfg);
	unsetenv("KAFKA_BROKERS");
	unsetenv("KAFKA_PROPERTIES");
	assert_int_equal(load(&cfg, &e, no_brokers), 0);
	assert_int_equal(daemon_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "--kafka-brokers"));
	config_reset(&cfg);
	assert_int_equal(load(&cfg, &e, bad_prop), -1);
	assert_non_null(strstr(e.msg, "KEY=VALUE"));
	config_reset(&cfg);
	assert_int_equal(load(&cfg, &e, file_no_out), -1);
	assert_non_null(strstr(e.msg, "--output"));
	config_reset(&cfg);
	assert_int_equal(load(&cfg, &e, pretty), 0);
	assert_int_equal(daemon_check_config(&cfg, &e), -1);
	assert_non_null(strstr(e.msg, "--format json"));
	config_reset(&cfg);
	/* another sink's option: refused as a flag, left alone from the
	 * environment (shared with other tools) */
	assert_int_equal(load(&cfg, &e, eos_stdout), 0);
	assert_int_equal(daemon_check_config(&cfg, &e), -1);
	assert_string_equal(e.msg, "invalid options: --kafka-exactly-once needs --sink kafka (it "
	                           "is Kafka's transactions)");
	config_reset(&cfg);
	assert_int_equal(load(&cfg, &e, nats_kafka), 0);
	assert_int_equal(daemon_check_config(&cfg, &e), -1);
	assert_string_equal(e.msg, "invalid options: --nats-url needs --sink nats");
	config_reset(&cfg);
	setenv("NATS_URL", "nats://localhost:4222", 1);
	assert_int_equal(load(&cfg, &e, env_only_brokers), 0);
	assert_int_equal(daemon_check_config(&cfg, &e), 0);
	config_reset(&cfg);
	unsetenv("NATS_URL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_values_parse),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_debezium_options),
	    cmocka_unit_test(test_bad_env_value_names_source),
	    cmocka_unit_test(test_error_is_one_line),
	    cmocka_unit_test(test_dotenv_nul_byte),
	    cmocka_unit_test(test_kafka_settings),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
