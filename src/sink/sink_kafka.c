/*
 * sink_kafka.c — events produced to Kafka with librdkafka, at least once.
 *
 * Each event becomes one message on its table's topic (kafka_topic.h;
 * logical messages on a topic of their own), keyed by the event's key
 * (event/key.h), its value the event's JSON line without the newline, with
 * headers lsn, commit_lsn and xid (the last two left out for a
 * non-transactional message) so consumers can drop repeats without parsing
 * the value. A DELETE is followed by a tombstone, its key with a null value,
 * so log-compacted topics forget the row; so is the old key of an UPDATE
 * that changed the key. Tombstones carry the same headers.
 *
 * Delivered means librdkafka's delivery report said so, and nothing else
 * does: the report comes once per message, after the brokers have it
 * (acks=all: every in-sync replica) or it failed for good, and across
 * partitions in no particular order, which seqwin.h turns into the
 * confirmed sequence number. A failed report stops the sink: every later
 * call returns it (one line naming the topic, the table, the event's LSN
 * and what to do), and nothing at or after that event is ever confirmed, so
 * Postgres sends it again after a restart. Retriable errors never get that
 * far: librdkafka retries them, and with message.timeout.ms=0 it retries for
 * as long as the brokers are away.
 *
 * Back-pressure: when librdkafka's queue is full (QUEUE_FULL), or the
 * window of unconfirmed events is, the event waits in a backlog (its bytes
 * stay in s->out, its record is copied) and the sink is blocked. The daemon
 * then stops decoding and waits on our poll set: a pipe librdkafka writes
 * to when it queues a report (rd_kafka_queue_io_event_enable), with a
 * timeout as a safety net. The librdkafka queue is bounded (the defaults
 * below), so a broker that is down for minutes holds memory flat.
 *
 * Threads: librdkafka's run its I/O; every callback here (delivery, error,
 * log) is served by rd_kafka_poll() on the daemon's thread, so the state
 * needs no lock.
 *
 * Exactly once (--kafka-exactly-once): a transactional producer
 * (transactional.id {prefix}.pgstream.{slot} by default). Events go into a
 * Kafka transaction, begun at the first event after the last commit and
 * committed --kafka-commit-interval after (100 ms by default, Kafka
 * Streams' commit.interval.ms under exactly-once; sooner before a status
 * update, and at exit): first every message of it is delivered (the sink is blocked
 * meanwhile, as when librdkafka's queue is full), then the checkpoint
 * record (kafka_offsets.h: the position of its last event) is produced to
 * the offsets topic in the same transaction, then it is committed. Only
 * then are its events confirmed, so Postgres is acknowledged only what a
 * committed transaction holds. At start, init_transactions() fences any
 * older producer with the same transactional.id and aborts what it left
 * open; then the newest committed checkpoint is read back (read_committed),
 * and every event the server sends again at or before it is confirmed
 * without being produced: a read_committed consumer sees it once. The
 * events of the open transaction count as produced too, so a reconnect to
 * Postgres repeats nothing either. An abortable error (a message that
 * failed for a reason a retry may cure, a commit that failed) aborts the
 * transaction; every event after the last commit is then dropped and the
 * call returns ERR_REPLAY, on which the daemon numbers events again from
 * the last confirmed one and streams again from the last acknowledged
 * position. A fatal error (fenced by a newer producer with the same
 * transactional.id, among others) stops the sink as a failed delivery
 * does. Memory stays as flat as at least once: a transaction is never kept
 * here, only in the brokers; its size is bounded by the commit interval.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "sink/kafka_offsets.h"
#include "sink/kafka_topic.h"
#include "sink/seqwin.h"
#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

/* The sink's settings: its options' values (KAFKA_OPTIONS), completed by
 * kafka_settle from the settings every sink shares. */
struct sink_kafka_config {
	const char *brokers;        /* bootstrap.servers */
	const char *prefix;         /* {prefix} in the templates */
	const char *topic;          /* template: {prefix}, {schema}, {table} */
	const char *messages_topic; /* template for logical messages: {prefix} */
	const char *properties;     /* "k=v" lines for rd_kafka_conf_set, or NULL */
	bool tombstones;            /* DELETE (and a key-changing UPDATE): tombstone */
	/* --kafka-exactly-once: transactions, and a checkpoint in Kafka. */
	bool exactly_once;
	const char *transactional_id; /* NULL: {prefix}.pgstream.{slot} */
	const char *offsets_topic;    /* template: {prefix} */
	const char *slot;             /* named in the checkpoint record */
	int commit_interval_ms;       /* a transaction is committed this long after it began */
	/* --tx-events: template of the begin and commit events' topic,
	 * {prefix} (Debezium's topic.transaction); NULL: no such events. */
	const char *transaction_topic;
};

#define K(field) offsetof(struct sink_kafka_config, field)

static const struct sink_option KAFKA_OPTIONS[] = {
    {"kafka-brokers", "KAFKA_BROKERS", SINK_OPT_STRING, K(brokers), "HOST:PORT,...",
     "with --sink kafka: bootstrap brokers", NULL, NULL},
    {"kafka-topic", "KAFKA_TOPIC", SINK_OPT_STRING, K(topic), "TEMPLATE",
     "topic per table (default {prefix}.{schema}.{table}; no placeholder: one topic)",
     "{prefix}.{schema}.{table}", NULL},
    {"kafka-messages-topic", "KAFKA_MESSAGES_TOPIC", SINK_OPT_STRING, K(messages_topic), "TEMPLATE",
     "topic of logical messages (default {prefix}.messages)", "{prefix}.messages", NULL},
    {"kafka-transaction-topic", "KAFKA_TRANSACTION_TOPIC", SINK_OPT_STRING, K(transaction_topic),
     "TEMPLATE",
     "with --tx-events: topic of the begin and commit events (default {prefix}.transaction)", NULL,
     "--sink kafka and --tx-events"},
    {"kafka-tombstones", "KAFKA_TOMBSTONES", SINK_OPT_BOOL, K(tombstones), NULL,
     "after a DELETE (or a key change) a tombstone for the key (default true)", "true", NULL},
    {"kafka-property", "KAFKA_PROPERTIES", SINK_OPT_PROPERTY, K(properties), "KEY=VALUE",
     "librdkafka producer property, repeatable (environment: KEY=VALUE;KEY=VALUE)", NULL, NULL},
    {"kafka-exactly-once", "KAFKA_EXACTLY_ONCE", SINK_OPT_BOOL, K(exactly_once), NULL,
     "Kafka transactions with a checkpoint in Kafka: read_committed consumers see each "
     "change once",
     NULL, "--sink kafka (it is Kafka's transactions)"},
    {"kafka-transactional-id", "KAFKA_TRANSACTIONAL_ID", SINK_OPT_STRING, K(transactional_id), "ID",
     "with --kafka-exactly-once: the producer's transactional.id (default "
     "{prefix}.pgstream.{slot})",
     NULL, NULL},
    {"kafka-commit-interval", "KAFKA_COMMIT_INTERVAL", SINK_OPT_SECONDS, K(commit_interval_ms),
     "SECONDS",
     "with --kafka-exactly-once: how often a Kafka transaction is committed (default "
     "0.1)",
     NULL, NULL},
    {"kafka-offsets-topic", "KAFKA_OFFSETS_TOPIC", SINK_OPT_STRING, K(offsets_topic), "TEMPLATE",
     "with --kafka-exactly-once: the checkpoint topic (default "
     "{prefix}.pgstream.offsets)",
     NULL, NULL},
    {0},
};

/* The rules between the options, and the defaults that depend on the
 * settings every sink shares (the prefix, the slot, --tx-events). */
static int kafka_settle(const struct sink_config *cfg, struct sink_kafka_config *kc, struct err *e)
{
	if (kc->brokers == NULL)
		return err_set(e, "invalid options: --sink kafka needs --kafka-brokers "
		                  "HOST:PORT,... (or KAFKA_BROKERS)");
	if (kc->transaction_topic && !cfg->tx_events)
		return err_set(e, "invalid options: --kafka-transaction-topic needs --sink kafka "
		                  "and --tx-events");
	if (cfg->format && strcmp(cfg->format, "pretty") == 0)
		return err_set(
		    e, "invalid options: --sink kafka sends --format json or debezium, not %s",
		    cfg->format);
	if (!kc->exactly_once && kc->transactional_id)
		return err_set(e, "invalid options: --kafka-transactional-id needs "
		                  "--kafka-exactly-once");
	if (!kc->exactly_once && kc->offsets_topic)
		return err_set(e,
		               "invalid options: --kafka-offsets-topic needs --kafka-exactly-once");
	if (!kc->exactly_once && kc->commit_interval_ms)
		return err_set(
		    e, "invalid options: --kafka-commit-interval needs --kafka-exactly-once");
	if (kc->transactional_id && *kc->transactional_id == '\0')
		return err_set(e, "invalid value for --kafka-transactional-id: empty");
	kc->prefix = cfg->prefix;
	kc->slot = cfg->slot;
	if (cfg->tx_events && kc->transaction_topic == NULL)
		kc->transaction_topic = "{prefix}.transaction";
	if (kc->offsets_topic == NULL)
		kc->offsets_topic = "{prefix}.pgstream.offsets";
	if (kc->commit_interval_ms == 0)
		kc->commit_interval_ms = 100;
	return 0;
}

/*
 * Set before the user's --kafka-property, which may override them:
 * - idempotence and acks=all: a retried message is written once and in
 *   order, and a delivery report means every in-sync replica has it;
 * - murmur2_random: the Java client's partitioner, so a key lands in the
 *   partition Debezium's and other Java producers' would pick;
 * - message.timeout.ms=0: retry for as long as the brokers are away
 *   (back-pressure holds pgstream meanwhile) rather than fail the message;
 * - a bounded queue: librdkafka's default (100,000 messages, 1 GiB) is far
 *   beyond pgstream's flat memory. 16,384 messages or 16 MiB, whichever
 *   comes first, keep several full batches in flight per broker.
 */
static const char *const DEFAULTS[][2] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    {"partitioner", "murmur2_random"},
    {"message.timeout.ms", "0"},
    {"queue.buffering.max.messages", "16384"},
    {"queue.buffering.max.kbytes", "16384"},
    {"log.queue", "true"},
};

/* Properties pgstream relies on, which a user may not change. */
static const char *const MANAGED[] = {
    "bootstrap.servers",
    "metadata.broker.list",
    "delivery.report.only.error",
    "transactional.id",
    "log.queue",
    "opaque",
};

/* How long sink_open waits for the brokers to answer at all. */
#define KAFKA_CONNECT_TIMEOUT_MS 10000
/* How long a durable flush (before each status update) waits for the
 * reports of what was produced so far: what arrives in time is
 * acknowledged now, the rest at the next update. */
#define KAFKA_DURABLE_WAIT_MS 500
/* At close, how long librdkafka may take to deliver what it holds. */
#define KAFKA_CLOSE_FLUSH_MS 10000
/* While blocked, the longest wait between two looks at the queue. */
#define KAFKA_BLOCKED_POLL_MS 1000
/* The same error line from librdkafka is logged at most this often. */
#define KAFKA_ERROR_REPEAT_MS 30000
/* The longest one step of a commit or an abort blocks the daemon's thread;
 * the next step comes at the sink's next turn. */
#define KAFKA_TXN_SLICE_MS 100
/* How long start-up waits for init_transactions() and for the checkpoint
 * to be read back. */
#define KAFKA_INIT_TXN_MS 30000
/* How long an abort the brokers refuse is tried again before pgstream
 * gives up (exit 1; the next start's init_transactions aborts it). */
#define KAFKA_ABORT_GIVE_UP_MS 30000
/* How long start-up waits for the offsets topic to be created (the mock
 * cluster, which cannot create it, takes all of it). */
#define KAFKA_CREATE_TIMEOUT_MS  3000
#define KAFKA_CHECKPOINT_READ_MS 30000

/* A topic handle and the table it is for, cached for the sink's life. */
struct topic_entry {
	char *schema; /* NULL: the messages topic, or the transaction topic */
	char *table;
	bool boundaries; /* the transaction topic (--tx-events) */
	rd_kafka_topic_t *rkt;
};

/* An event waiting in the backlog; its value is the next value_len bytes
 * of s->out after the earlier waiting events', and key_len then
 * old_key_len bytes of key follow this header in k->backlog. */
struct pending {
	uint64_t seq, lsn, commit_lsn;
	struct kafka_pos pos;
	struct topic_entry *topic;
	size_t value_len; /* with the newline */
	size_t second;    /* struct sink_record's */
	size_t key_len, old_key_len;
	uint32_t xid;
	bool has_key, has_old_key, delete, transactional;
	unsigned stage; /* messages of it already produced */
};

struct kafka_sink {
	rd_kafka_t *rk;
	rd_kafka_queue_t *mainq; /* where reports, errors and logs are queued */
	int wake[2];             /* librdkafka writes to [1] when mainq fills */
	char *prefix, *topic_tmpl;
	unsigned topic_uses; /* KAFKA_TOPIC_* placeholders of topic_tmpl */
	bool tombstones;
	struct topic_entry messages; /* the logical messages' topic */
	struct topic_entry txtopic;  /* --tx-events: transaction boundaries' */
	struct topic_entry **topics; /* open addressing by (schema, table) */
	size_t ntopics, topics_cap;  /* topics_cap: a power of two, or 0 */
	struct seqwin win;
	struct buf backlog;    /* struct pending + keys, oldest first */
	size_t backlog_bytes;  /* of s->out, the waiting events' values */
	struct buf name;       /* scratch: a topic's name */
	bool opening;          /* errors go into the open's error, not the log */
	struct sink_failure f; /* the first failure that will not pass */
	char last_error[256];  /* the last error line logged, and when */
	int64_t last_error_ms;

	/* Exactly once (see the top of the file). */
	bool eos;
	enum {
		TXN_NONE,  /* no transaction open: the next event begins one */
		TXN_OPEN,  /* events go in until txn_due_ms */
		TXN_DRAIN, /* closing: waiting for its messages' reports */
		TXN_END,   /* the checkpoint is produced: committing */
	} txn;
	int64_t txn_due_ms;
	int txn_interval_ms; /* --kafka-commit-interval */
	uint64_t txn_n;      /* transactions begun by this process */
	char run[20];        /* this process's part of the labels */
	char txn_label[48];  /* the open one's: kafka_txn header, checkpoint */
	char *txn_id;        /* transactional.id */
	char *slot;          /* named in the checkpoint */
	char *offsets_name;  /* the offsets topic */
	rd_kafka_topic_t *offsets_rkt;
	struct kafka_pos produced;  /* the last event handed over or held by Kafka */
	struct kafka_pos committed; /* the last event a committed transaction holds */
	struct kafka_pos restored;  /* ... as read back at start */
	uint64_t committed_seq;     /* every event <= this is in a committed one */
	struct kafka_pos txn_pos;   /* TXN_END: what the closing one will hold */
	uint64_t txn_seq;
	bool abort_needed; /* an abortable error: abort, then replay */
	bool abort_cause;  /* ... abort_why says why (not only what followed) */
	int64_t abort_retry_ms, abort_failing_ms; /* an abort that failed: again when */
	bool aborting; /* ... under way: reports of purged messages are no news */
	bool closing;  /* at close: commit what is open, begin nothing */
	char abort_why[300];
	uint64_t commits, aborts, skipped;
	int64_t closing_since_ms, closing_ms; /* time spent committing */
	struct buf mark;                      /* scratch: the checkpoint's value */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ----------------------------------------------------- */

/* The user's "k=v" lines into conf. Values are not repeated in messages
 * (a password could be one); librdkafka's own message names what it
 * refuses. */
static int set_user_properties(rd_kafka_conf_t *conf, const char *lines, struct err *e)
{
	for (const char *p = lines; p && *p;) {
		size_t n = strcspn(p, "\n");
		char line[1024], errstr[512];
		char *eq;

		if (n >= sizeof line)
			return err_set(e,
			               "invalid value for --kafka-property: longer than %zu bytes",
			               sizeof line - 1);
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (p[n] == '\n');
		eq = strchr(line, '=');
		if (eq == NULL || eq == line)
			return err_set(e, "invalid value for --kafka-property: expected KEY=VALUE");
		*eq = '\0';
		for (size_t i = 0; i < sizeof MANAGED / sizeof MANAGED[0]; i++)
			if (strcmp(line, MANAGED[i]) == 0)
				return err_set(
				    e,
				    "invalid value for --kafka-property: %s is pgstream's "
				    "to set%s",
				    line,
				    strcmp(line, "bootstrap.servers") == 0 ||
				            strcmp(line, "metadata.broker.list") == 0
				        ? " (use --kafka-brokers)"
				        : "");
		if (rd_kafka_conf_set(conf, line, eq + 1, errstr, sizeof errstr) !=
		    RD_KAFKA_CONF_OK)
			return err_set(e, "invalid value for --kafka-property %s: %s", line,
			               errstr);
	}
	return 0;
}

/* pgstream's defaults, the brokers, then the user's properties. */
static rd_kafka_conf_t *build_conf(const struct sink_kafka_config *kc, const char *txn_id,
                                   struct err *e)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];

	if (conf == NULL) {
		err_set(e, "could not configure Kafka: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < sizeof DEFAULTS / sizeof DEFAULTS[0]; i++) {
		/* A transaction times out (transaction.timeout.ms) long before an
		 * endless message would: librdkafka then sets message.timeout.ms
		 * to the transaction's timeout, and a message that times out
		 * aborts the transaction, which is replayed. */
		if (kc->exactly_once && strcmp(DEFAULTS[i][0], "message.timeout.ms") == 0)
			continue;
		if (rd_kafka_conf_set(conf, DEFAULTS[i][0], DEFAULTS[i][1], errstr,
		                      sizeof errstr) != RD_KAFKA_CONF_OK) {
			err_set(e, "could not configure Kafka: %s", errstr);
			goto fail;
		}
	}
	if (kc->brokers == NULL || *kc->brokers == '\0') {
		err_set(e, "invalid options: --sink kafka needs --kafka-brokers HOST:PORT,...");
		goto fail;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", kc->brokers, errstr, sizeof errstr) !=
	    RD_KAFKA_CONF_OK) {
		err_set(e, "invalid value for --kafka-brokers: %s", errstr);
		goto fail;
	}
	if (set_user_properties(conf, kc->properties, e) < 0)
		goto fail;
	if (txn_id && rd_kafka_conf_set(conf, "transactional.id", txn_id, errstr, sizeof errstr) !=
	                  RD_KAFKA_CONF_OK) {
		err_set(e, "invalid value for --kafka-transactional-id: %s", errstr);
		goto fail;
	}
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/* The transactional.id of kc: --kafka-transactional-id, or one derived from
 * the prefix and the slot (a slot is one stream of changes; the prefix
 * keeps two servers' slots of one name apart, as it does their topics).
 * Allocated; NULL when out of memory. */
static char *transactional_id(const struct sink_kafka_config *kc)
{
	const char *slot = kc->slot ? kc->slot : "pgstream_slot";
	size_t n;
	char *id;

	if (kc->transactional_id)
		return strdup(kc->transactional_id);
	n = strlen(kc->prefix) + strlen(slot) + sizeof ".pgstream.";
	id = malloc(n);
	if (id)
		snprintf(id, n, "%s.pgstream.%s", kc->prefix, slot);
	return id;
}

static int check_topics(const struct sink_kafka_config *kc, unsigned *uses, struct err *e)
{
	unsigned ignored;

	if (kafka_topic_check("kafka-topic", kc->topic, kc->prefix,
	                      KAFKA_TOPIC_PREFIX | KAFKA_TOPIC_SCHEMA | KAFKA_TOPIC_TABLE, uses,
	                      e) < 0)
		return -1;
	if (kc->exactly_once && kafka_topic_check("kafka-offsets-topic", kc->offsets_topic,
	                                          kc->prefix, KAFKA_TOPIC_PREFIX, &ignored, e) < 0)
		return -1;
	if (kc->transaction_topic &&
	    kafka_topic_check("kafka-transaction-topic", kc->transaction_topic, kc->prefix,
	                      KAFKA_TOPIC_PREFIX, &ignored, e) < 0)
		return -1;
	return kafka_topic_check("kafka-messages-topic", kc->messages_topic, kc->prefix,
	                         KAFKA_TOPIC_PREFIX, &ignored, e);
}

/* A transaction must be committed well within transaction.timeout.ms, after
 * which the coordinator aborts it. */
static int commit_interval_check(const struct sink_kafka_config *kc, rd_kafka_conf_t *conf,
                                 struct err *e)
{
	char v[32];
	size_t n = sizeof v;
	long timeout;

	if (rd_kafka_conf_get(conf, "transaction.timeout.ms", v, &n) != RD_KAFKA_CONF_OK)
		return 0;
	timeout = strtol(v, NULL, 10);
	if (kc->commit_interval_ms * 2L > timeout)
		return err_set(
		    e,
		    "invalid options: --kafka-commit-interval (%d ms) must be at most half "
		    "of transaction.timeout.ms (%ld ms), after which the brokers abort an "
		    "open transaction",
		    kc->commit_interval_ms, timeout);
	return 0;
}

/* Everything librdkafka can judge without a broker: the properties one by
 * one, then together (rd_kafka_new refuses, for example, acks=1 with
 * idempotence), and the topic templates. */
static int kafka_check_config(const struct sink_config *cfg, void *settings, struct err *e)
{
	struct sink_kafka_config *kc = settings;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char errstr[512];
	unsigned uses;

	char *txn_id = NULL;

	if (kafka_settle(cfg, kc, e) < 0 || check_topics(kc, &uses, e) < 0)
		return -1;
	if (kc->exactly_once && (txn_id = transactional_id(kc)) == NULL)
		return err_set(e, "could not check the Kafka configuration: out of memory");
	conf = build_conf(kc, txn_id, e);
	free(txn_id);
	if (conf == NULL)
		return -1;
	if (kc->exactly_once && commit_interval_check(kc, conf, e) < 0) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr); /* owns conf */
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		return err_set(e, "invalid Kafka configuration: %s", errstr);
	}
	rd_kafka_destroy(rk);
	return 0;
}

/* ---- callbacks (served by rd_kafka_poll on the daemon's thread) --------- */

/* What to do about a message that failed with err. */
static const char *remedy(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		return "raise the limit (--kafka-property message.max.bytes=N, and the topic's "
		       "max.message.bytes on the brokers), then restart";
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
		return "grant pgstream's principal Write and IdempotentWrite on the topic, then "
		       "restart";
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
		return "create the topic (or allow auto.create.topics.enable on the brokers), then "
		       "restart";
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
		return "the brokers did not take it within message.timeout.ms: check them, then "
		       "restart";
	default:
		return "fix the cause, then restart";
	}
}

/* The topic's table, for messages: "public.users", or "logical messages". */
static void describe_topic(const rd_kafka_topic_t *rkt, char *out, size_t n)
{
	const struct topic_entry *t = rd_kafka_topic_opaque(rkt);

	if (t && t->boundaries)
		snprintf(out, n, " (transaction boundaries)");
	else if (t && t->schema == NULL)
		snprintf(out, n, " (logical messages)");
	else if (t && *t->schema)
		snprintf(out, n, " (table %s.%s)", t->schema, t->table);
	else
		*out = '\0'; /* one topic for every table */
}

static void fail_message(struct kafka_sink *k, const rd_kafka_topic_t *rkt, uint64_t lsn,
                         rd_kafka_resp_err_t err, const char *why)
{
	char what[300], at[LSN_STR_MAX];

	describe_topic(rkt, what, sizeof what);
	lsn_format(lsn, at);
	sink_fail(
	    &k->f,
	    "could not produce to Kafka topic %s%s: the event at %s: %s; %s (nothing from it on "
	    "was acknowledged: Postgres sends it again)",
	    rd_kafka_topic_name(rkt), what, at, why ? why : rd_kafka_err2str(err), remedy(err));
}

/* The lsn header of a message, 0 if it has none. */
static uint64_t message_lsn(const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *hdrs;
	const void *v;
	size_t n;
	char text[LSN_STR_MAX + 1];
	uint64_t lsn = 0;

	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(hdrs, "lsn", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    v == NULL || n >= sizeof text)
		return 0;
	memcpy(text, v, n);
	text[n] = '\0';
	return lsn_parse(text, &lsn) ? lsn : 0;
}

/* Exactly once: an error that sending again would only meet again (the
 * user must act), rather than one that aborting and replaying may cure. */
static bool recurring(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
		return true;
	default:
		return false;
	}
}

/* Exactly once: the open transaction must be aborted. The first reason is
 * the one told, unless it was only a consequence (messages librdkafka
 * purged because the transaction had failed) and the cause comes later. */
static void need_abort_why(struct kafka_sink *k, bool cause, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void need_abort_why(struct kafka_sink *k, bool cause, const char *fmt, va_list ap)
{
	/* (while aborting, only a cause that comes after what it caused) */
	if ((k->abort_needed || k->aborting) && (k->abort_cause || !cause))
		return;
	if (k->aborting && !k->abort_needed)
		return; /* rewound already */
	vsnprintf(k->abort_why, sizeof k->abort_why, fmt, ap);
	k->abort_needed = true;
	k->abort_cause = cause;
}

static void need_abort(struct kafka_sink *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void need_abort(struct kafka_sink *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	need_abort_why(k, true, fmt, ap);
	va_end(ap);
}

static void need_abort_purged(struct kafka_sink *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void need_abort_purged(struct kafka_sink *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	need_abort_why(k, false, fmt, ap);
	va_end(ap);
}

static bool fenced(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
	       err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* librdkafka raised a fatal error: the producer can do nothing more. */
static void fail_fatal(struct kafka_sink *k, rd_kafka_resp_err_t err, const char *reason)
{
	if (k->eos && fenced(err))
		sink_fail(
		    &k->f,
		    "could not produce to Kafka: fenced: a newer producer with transactional.id "
		    "%s has started (another pgstream streaming this slot?), so this one stops; "
		    "run one pgstream per transactional.id (nothing this one had not committed "
		    "was acknowledged) [%s]",
		    k->txn_id, reason);
	else
		sink_fail(&k->f,
		          "could not produce to Kafka: fatal producer error: %s; restart pgstream "
		          "(nothing undelivered was acknowledged: Postgres sends it again)",
		          reason);
}

/* The only place a message counts as delivered. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct sink *s = opaque;
	struct kafka_sink *k = s->backend;
	uint64_t seq = (uint64_t)(uintptr_t)m->_private;
	char at[LSN_STR_MAX];

	(void)rk;
	if (seq == 0) { /* exactly once: the checkpoint; commit waits for it */
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (recurring(m->err) && !k->aborting)
				sink_fail(
				    &k->f,
				    "could not produce the checkpoint to Kafka topic %s: %s; %s",
				    rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
				    remedy(m->err));
			else
				need_abort(k, "the checkpoint was not delivered to %s: %s",
				           rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
		}
		return;
	}
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		seqwin_delivered(&k->win, seq);
		return;
	}
	/* Never counted delivered: the window stops before this event. */
	if (k->eos && !recurring(m->err)) {
		/* (while aborting: purged by the abort, or failed with it,
		 * replayed anyway; at most the reason gets better) */
		lsn_format(message_lsn(m), at);
		if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
		    m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
			need_abort_purged(k, "librdkafka purged the transaction's messages");
		else
			need_abort(k, "a message to %s (the event at %s) failed: %s",
			           rd_kafka_topic_name(m->rkt), at, rd_kafka_err2str(m->err));
		return;
	}
	fail_message(k, m->rkt, message_lsn(m), m->err, NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct sink *s = opaque;
	struct kafka_sink *k = s->backend;
	char fatal[512];
	int64_t now;

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, fatal, sizeof fatal);

		fail_fatal(k, code, fatal);
		return;
	}
	if (k->opening) {
		snprintf(k->last_error, sizeof k->last_error, "%s", reason);
		return;
	}
	/* Brokers going away and coming back: worth a line, not a flood. */
	now = now_ms();
	if (strcmp(reason, k->last_error) == 0 && now - k->last_error_ms < KAFKA_ERROR_REPEAT_MS)
		return;
	snprintf(k->last_error, sizeof k->last_error, "%s", reason);
	k->last_error_ms = now;
	log_warn("kafka: %s", reason);
}

/* librdkafka's own log (log.queue: served by rd_kafka_poll): debug level.
 * Exactly once, it is also where librdkafka says why a transaction failed
 * (TXNERR, before it purges the transaction's messages). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct sink *s = rd_kafka_opaque(rk);

	log_debug("kafka: %s: %s", fac, buf);
	if (s && level == 3 && strcmp(fac, "TXNERR") == 0 &&
	    ((struct kafka_sink *)s->backend)->eos) {
		const char *why = buf, *p;

		/* "[thrd:main]: Current transaction failed in state X: why" */
		if (*why == '[' && (p = strstr(why, "]: ")) != NULL)
			why = p + 3;
		if (strncmp(why, "Current transaction failed in state ", 36) == 0 &&
		    (p = strstr(why + 36, ": ")) != NULL)
			why = p + 2;
		need_abort(s->backend, "%s", why);
	}
}

/* Serve whatever librdkafka has queued for us, waiting up to timeout_ms
 * for the first of it, and confirm what the reports allow. */
static void serve(struct sink *s, int timeout_ms)
{
	struct kafka_sink *k = s->backend;
	char drain[64];

	while (read(k->wake[0], drain, sizeof drain) > 0)
		; /* the wake-up has done its job */
	rd_kafka_poll(k->rk, timeout_ms);
	s->confirmed_seq = k->eos ? k->committed_seq : seqwin_confirmed(&k->win);
}

/* ---- topics ------------------------------------------------------------ */

static uint64_t topic_hash(const char *schema, const char *table)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const char *p = schema; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0) * 1099511628211ULL;
	for (const char *p = table; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* A handle for the topic name in k->name, its opaque t (error messages
 * name t's table). */
static rd_kafka_topic_t *topic_open(struct kafka_sink *k, struct topic_entry *t, struct err *e)
{
	rd_kafka_topic_conf_t *tconf = rd_kafka_default_topic_conf_dup(k->rk);
	rd_kafka_topic_t *rkt;

	if (tconf == NULL) {
		err_setk(e, ERR_SINK, "could not open Kafka topic %s: out of memory", k->name.data);
		return NULL;
	}
	rd_kafka_topic_conf_set_opaque(tconf, t);
	rkt = rd_kafka_topic_new(k->rk, k->name.data, tconf); /* owns tconf on success */
	if (rkt == NULL) {
		rd_kafka_topic_conf_destroy(tconf);
		err_setk(e, ERR_SINK, "could not open Kafka topic %s: %s", k->name.data,
		         rd_kafka_err2str(rd_kafka_last_error()));
	}
	return rkt;
}

static int topics_grow(struct kafka_sink *k)
{
	size_t cap = k->topics_cap ? k->topics_cap * 2 : 64;
	struct topic_entry **t = calloc(cap, sizeof *t);

	if (t == NULL)
		return -1;
	for (size_t i = 0; i < k->topics_cap; i++) {
		struct topic_entry *old = k->topics[i];
		size_t j;

		if (old == NULL)
			continue;
		for (j = topic_hash(old->schema, old->table) & (cap - 1); t[j];
		     j = (j + 1) & (cap - 1))
			;
		t[j] = old;
	}
	free(k->topics);
	k->topics = t;
	k->topics_cap = cap;
	return 0;
}

/* The topic of schema.table (NULL schema: a logical message), opened on
 * first use and kept. */
static struct topic_entry *topic_for(struct kafka_sink *k, const char *schema, const char *table,
                                     struct err *e)
{
	struct topic_entry *t;
	size_t i;

	if (schema == NULL)
		return &k->messages;
	if (!(k->topic_uses & (KAFKA_TOPIC_SCHEMA | KAFKA_TOPIC_TABLE)))
		schema = table = ""; /* one topic for every table */
	if (k->topics_cap) {
		for (i = topic_hash(schema, table) & (k->topics_cap - 1); (t = k->topics[i]);
		     i = (i + 1) & (k->topics_cap - 1))
			if (strcmp(t->schema, schema) == 0 && strcmp(t->table, table) == 0)
				return t;
	}
	if ((k->ntopics + 1) * 2 > k->topics_cap && topics_grow(k) < 0)
		goto nomem;
	buf_clear(&k->name);
	if (!kafka_topic_render(&k->name, k->topic_tmpl, k->prefix, schema, table)) {
		err_setk(
		    e, ERR_SINK,
		    "could not produce to Kafka: the topic name for table %s.%s is longer than "
		    "%d characters; shorten it with --kafka-topic or --topic-prefix",
		    schema, table, KAFKA_TOPIC_MAX);
		return NULL;
	}
	t = calloc(1, sizeof *t);
	if (t == NULL || (t->schema = strdup(schema)) == NULL || (t->table = strdup(table)) == NULL)
		goto nomem_entry;
	t->rkt = topic_open(k, t, e);
	if (t->rkt == NULL) {
		free(t->schema);
		free(t->table);
		free(t);
		return NULL;
	}
	for (i = topic_hash(schema, table) & (k->topics_cap - 1); k->topics[i];
	     i = (i + 1) & (k->topics_cap - 1))
		;
	k->topics[i] = t;
	k->ntopics++;
	return t;
nomem_entry:
	if (t) {
		free(t->schema);
		free(t);
	}
nomem:
	err_setk(e, ERR_SINK, "could not open a Kafka topic: out of memory");
	return NULL;
}

/* ---- producing ---------------------------------------------------------- */

/* One event as the messages it becomes. */
struct outgoing {
	uint64_t seq, lsn, commit_lsn;
	struct kafka_pos pos; /* exactly once: where it is in the stream */
	uint32_t xid;
	bool transactional, delete;
	struct topic_entry *topic;
	const char *value; /* without the newline */
	size_t value_len;
	/* debezium's key change (struct sink_record): value holds the delete's
	 * line, then from here the create's */
	size_t second;
	const char *key, *old_key; /* NULL: none */
	size_t key_len, old_key_len;
};

static rd_kafka_headers_t *headers_for(const struct kafka_sink *k, const struct outgoing *o)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	char text[LSN_STR_MAX];
	int n;

	n = lsn_format(o->lsn, text);
	rd_kafka_header_add(h, "lsn", 3, text, n);
	if (o->transactional) {
		n = lsn_format(o->commit_lsn, text);
		rd_kafka_header_add(h, "commit_lsn", 10, text, n);
		n = snprintf(text, sizeof text, "%" PRIu32, o->xid);
		rd_kafka_header_add(h, "xid", 3, text, n);
	}
	if (k->eos) /* which transaction wrote it: its checkpoint says the same */
		rd_kafka_header_add(h, "kafka_txn", 9, k->txn_label, -1);
	return h;
}

/* Hand one message of o to librdkafka, counted in the window until its
 * report. value NULL: a tombstone. */
static rd_kafka_resp_err_t produce_one(struct kafka_sink *k, const struct outgoing *o,
                                       const char *key, size_t key_len, const char *value,
                                       size_t value_len)
{
	rd_kafka_headers_t *h = headers_for(k, o);
	rd_kafka_resp_err_t err;

	seqwin_message_sent(&k->win, o->seq);
	err = rd_kafka_producev(
	    k->rk, RD_KAFKA_V_RKT(o->topic->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
	    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)o->seq), RD_KAFKA_V_END);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		seqwin_message_unsent(&k->win, o->seq);
		rd_kafka_headers_destroy(h); /* producev owns it only on success */
	}
	return err;
}

/* Exactly once: librdkafka refuses messages once the transaction has
 * failed (it must be aborted: __STATE) or the producer has (__FATAL). True
 * if that is why err came; the reason is then recorded. */
static bool txn_refused(struct kafka_sink *k, rd_kafka_resp_err_t err)
{
	char reason[512];

	if (err != RD_KAFKA_RESP_ERR__STATE && err != RD_KAFKA_RESP_ERR__FATAL)
		return false;
	rd_kafka_poll(k->rk, 0); /* the report that says why, if it is there */
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_resp_err_t code = rd_kafka_fatal_error(k->rk, reason, sizeof reason);

		fail_fatal(k, code, reason);
	} else {
		need_abort_purged(k, "librdkafka refused a message: the transaction has failed");
	}
	return true;
}

/* Exactly once: a transaction for the events that follow. */
static int txn_begin(struct kafka_sink *k, struct err *e)
{
	rd_kafka_error_t *error = rd_kafka_begin_transaction(k->rk);

	if (error) {
		if (rd_kafka_error_is_fatal(error))
			fail_fatal(k, rd_kafka_error_code(error), rd_kafka_error_string(error));
		else
			sink_fail(&k->f, "could not begin a Kafka transaction: %s",
			          rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		return sink_failed(&k->f, e);
	}
	k->txn = TXN_OPEN;
	k->txn_n++;
	k->txn_due_ms = now_ms() + k->txn_interval_ms;
	snprintf(k->txn_label, sizeof k->txn_label, "%s-%" PRIu64, k->run, k->txn_n);
	return 0;
}

/*
 * Produce what is left of o from message *stage on: 0 the event, 1 the
 * old key's tombstone, 2 the deleted key's. Returns 1 when all are out, 0
 * when librdkafka's queue or the window is full (*stage says where to go
 * on), -1 with *e set on a permanent error.
 *
 * Exactly once, an event at or before what Kafka holds (the checkpoint read
 * at start, or what this process produced) is sent again by the server
 * only because it was not acknowledged yet: it counts as sent, with no
 * message, and as soon as no transaction is open, as committed.
 */
static int produce_event(struct kafka_sink *k, const struct outgoing *o, unsigned *stage,
                         struct err *e)
{
	if (*stage == 0 && !seqwin_room(&k->win, o->seq))
		return 0;
	if (k->eos && *stage == 0) {
		if (kafka_pos_cmp(&o->pos, &k->produced) <= 0) {
			seqwin_event_sent(&k->win, o->seq);
			if (k->txn == TXN_NONE)
				k->committed_seq = o->seq;
			k->skipped++;
			return 1;
		}
		if (k->txn == TXN_NONE && txn_begin(k, e) < 0)
			return -1;
	}
	/* Stages: the value (or, for a key change written as two records, the
	 * delete under the old key), the old key's tombstone, a delete's
	 * tombstone, and the second record (the create) under the new key:
	 * Debezium's order for a primary key update. */
	for (; *stage < 4; (*stage)++) {
		rd_kafka_resp_err_t err;

		if (*stage == 0 && o->second)
			err = produce_one(k, o, o->old_key ? o->old_key : o->key,
			                  o->old_key ? o->old_key_len : o->key_len, o->value,
			                  o->second - 1);
		else if (*stage == 0)
			err = produce_one(k, o, o->key, o->key_len, o->value, o->value_len);
		else if (*stage == 3 && o->second)
			err = produce_one(k, o, o->key, o->key_len, o->value + o->second,
			                  o->value_len - o->second);
		else if (*stage == 1 && o->old_key && k->tombstones)
			err = produce_one(k, o, o->old_key, o->old_key_len, NULL, 0);
		else if (*stage == 2 && o->delete &&o->key && k->tombstones)
			err = produce_one(k, o, o->key, o->key_len, NULL, 0);
		else
			continue;
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return 0;
		if (k->eos && txn_refused(k, err)) /* parked; the next turn aborts */
			return k->f.failed ? sink_failed(&k->f, e) : 0;
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			char why[160];

			if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
				snprintf(why, sizeof why, "%zu bytes is over message.max.bytes",
				         *stage == 0 || *stage == 3 ? o->value_len + o->key_len
				                                    : o->key_len);
			fail_message(k, o->topic->rkt, o->lsn, err,
			             err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? why : NULL);
			return sink_failed(&k->f, e);
		}
	}
	seqwin_event_sent(&k->win, o->seq);
	if (k->eos)
		k->produced = o->pos;
	return 1;
}

/* Park o, whose first `stage` messages are out, in the backlog (its value
 * stays in s->out). */
static int backlog_push(struct sink *s, const struct outgoing *o, unsigned stage, struct err *e)
{
	struct kafka_sink *k = s->backend;
	struct pending p = {
	    .seq = o->seq,
	    .lsn = o->lsn,
	    .commit_lsn = o->commit_lsn,
	    .pos = o->pos,
	    .topic = o->topic,
	    .value_len = o->value_len + 1,
	    .second = o->second,
	    .key_len = o->key ? o->key_len : 0,
	    .old_key_len = o->old_key ? o->old_key_len : 0,
	    .xid = o->xid,
	    .has_key = o->key != NULL,
	    .has_old_key = o->old_key != NULL,
	    .delete = o->delete,
	    .transactional = o->transactional,
	    .stage = stage,
	};

	buf_append(&k->backlog, &p, sizeof p);
	if (p.key_len)
		buf_append(&k->backlog, o->key, p.key_len);
	if (p.old_key_len)
		buf_append(&k->backlog, o->old_key, p.old_key_len);
	if (!buf_ok(&k->backlog))
		return err_setk(e, ERR_SINK, "could not queue an event for Kafka: out of memory");
	k->backlog_bytes += p.value_len;
	s->blocked = true;
	return 0;
}

/* Exactly once: whether events may go to Kafka now (not while a commit or
 * an abort is under way). */
static bool producing(const struct kafka_sink *k)
{
	return !k->eos || (k->txn <= TXN_OPEN && !k->abort_needed && !k->aborting);
}

/* Blocked while events wait, or while a transaction is being closed. */
static void update_blocked(struct sink *s)
{
	struct kafka_sink *k = s->backend;

	s->blocked = k->backlog.len > 0 || !producing(k);
}

/* Produce what waits in the backlog, oldest first, until librdkafka takes
 * no more; with head_only, only the first event, and only if it is half
 * produced (a transaction closes between whole events). */
static int backlog_drain(struct sink *s, bool head_only, struct err *e)
{
	struct kafka_sink *k = s->backend;
	size_t off = 0, value_off = 0;
	int rc = 1;

	while (off < k->backlog.len) {
		struct pending p;
		struct outgoing o;

		memcpy(&p, k->backlog.data + off, sizeof p);
		if (head_only && (off > 0 || p.stage == 0))
			break;
		o = (struct outgoing){
		    .seq = p.seq,
		    .lsn = p.lsn,
		    .commit_lsn = p.commit_lsn,
		    .pos = p.pos,
		    .xid = p.xid,
		    .transactional = p.transactional,
		    .delete = p.delete,
		    .topic = p.topic,
		    .value = s->out.data + value_off,
		    .value_len = p.value_len - 1,
		    .second = p.second,
		    .key = p.has_key ? k->backlog.data + off + sizeof p : NULL,
		    .key_len = p.key_len,
		    .old_key = p.has_old_key ? k->backlog.data + off + sizeof p + p.key_len : NULL,
		    .old_key_len = p.old_key_len,
		};
		rc = produce_event(k, &o, &p.stage, e);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			memcpy(k->backlog.data + off, &p, sizeof p); /* where to go on */
			break;
		}
		off += sizeof p + p.key_len + p.old_key_len;
		value_off += p.value_len;
	}
	buf_consume(&k->backlog, off);
	buf_consume(&s->out, value_off);
	k->backlog_bytes -= value_off;
	s->written_seq = k->win.sent;
	update_blocked(s);
	return 0;
}

static bool head_half_produced(const struct kafka_sink *k)
{
	struct pending p;

	if (k->backlog.len == 0)
		return false;
	memcpy(&p, k->backlog.data, sizeof p);
	return p.stage > 0;
}

/* ---- exactly once: closing a transaction ----------------------------------- */

/* The checkpoint of the transaction being closed: the position of its last
 * event, to the offsets topic, keyed by the transactional.id. 1 produced,
 * 0 no room yet, -1 failed. */
static int produce_checkpoint(struct kafka_sink *k, struct err *e)
{
	rd_kafka_resp_err_t err;

	buf_clear(&k->mark);
	kafka_offsets_format(&k->mark, k->slot, &k->produced, k->txn_label);
	if (!buf_ok(&k->mark)) {
		sink_fail(&k->f, "could not produce the checkpoint: out of memory");
		return sink_failed(&k->f, e);
	}
	err = rd_kafka_producev(
	    k->rk, RD_KAFKA_V_RKT(k->offsets_rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_KEY(k->txn_id, strlen(k->txn_id)),
	    RD_KAFKA_V_VALUE(k->mark.data, k->mark.len), RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return 0;
	if (txn_refused(k, err))
		return k->f.failed ? sink_failed(&k->f, e) : 0;
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		sink_fail(&k->f, "could not produce the checkpoint to Kafka topic %s: %s; %s",
		          k->offsets_name, rd_kafka_err2str(err), remedy(err));
		return sink_failed(&k->f, e);
	}
	k->txn_pos = k->produced;
	k->txn_seq = k->win.sent;
	return 1;
}

/* Every event after the last commit is dropped: the server sends them again
 * (ERR_REPLAY) and the daemon numbers them again from committed_seq. */
static void txn_rewind(struct sink *s)
{
	struct kafka_sink *k = s->backend;

	k->txn = TXN_NONE;
	k->abort_needed = k->aborting = k->abort_cause = false;
	k->abort_retry_ms = k->abort_failing_ms = 0;
	k->produced = k->committed;
	buf_clear(&k->backlog);
	k->backlog_bytes = 0;
	buf_clear(&s->out);
	seqwin_restart(&k->win, k->committed_seq);
	s->buffered_seq = s->written_seq = s->confirmed_seq = k->committed_seq;
	s->blocked = false;
	k->aborts++;
}

/* Abort the open transaction (within a slice; resumed at the next turn
 * while it takes longer), then rewind: -1 with ERR_REPLAY. */
static int txn_abort(struct sink *s, struct err *e)
{
	struct kafka_sink *k = s->backend;
	char from[96], label[sizeof k->txn_label];

	k->aborting = true;
	s->blocked = true;
	if (k->txn != TXN_NONE) {
		rd_kafka_error_t *error;
		int64_t now = now_ms();

		if (now < k->abort_retry_ms)
			return 0;
		error = rd_kafka_abort_transaction(k->rk, KAFKA_TXN_SLICE_MS);
		if (error) {
			/* Not done within the slice (retriable): resumed at the next
			 * turn. Refused (the coordinator's EndTxn failed): tried
			 * again every KAFKA_TXN_SLICE_MS, for a while. */
			if (rd_kafka_error_is_fatal(error)) {
				fail_fatal(k, rd_kafka_error_code(error),
				           rd_kafka_error_string(error));
			} else if (!rd_kafka_error_is_retriable(error)) {
				if (k->abort_failing_ms == 0)
					k->abort_failing_ms = now;
				if (now - k->abort_failing_ms >= KAFKA_ABORT_GIVE_UP_MS)
					sink_fail(
					    &k->f,
					    "could not abort the Kafka transaction (%s) for %d s: "
					    "%s; "
					    "restart pgstream (nothing of it was acknowledged)",
					    k->abort_why, KAFKA_ABORT_GIVE_UP_MS / 1000,
					    rd_kafka_error_string(error));
				k->abort_retry_ms = now + KAFKA_TXN_SLICE_MS;
			}
			rd_kafka_error_destroy(error);
			return k->f.failed ? sink_failed(&k->f, e) : 0;
		}
	}
	snprintf(label, sizeof label, "%s", k->txn_label);
	txn_rewind(s);
	kafka_pos_describe(&k->committed, from, sizeof from);
	return err_setk(e, ERR_REPLAY,
	                "Kafka transaction %s aborted: %s; everything after the last commit (%s) "
	                "is sent again (none of it was acknowledged)",
	                label, k->abort_why, from);
}

/* Exactly once: close the open transaction now rather than at its time. */
static void txn_close_now(struct sink *s)
{
	struct kafka_sink *k = s->backend;

	if (k->txn == TXN_OPEN) {
		k->txn = TXN_DRAIN;
		k->closing_since_ms = now_ms();
		s->blocked = true;
	}
}

/*
 * Move the transaction on as far as it goes now (each wait at most a
 * slice): an open one past its time starts closing; a closing one waits
 * for its messages' reports, then gets its checkpoint and is committed; a
 * committed one confirms its events, and the next transaction begins with
 * the events that waited. 0, or -1 with *e set: failed (ERR_SINK) or
 * aborted (ERR_REPLAY).
 */
static int txn_step(struct sink *s, struct err *e)
{
	struct kafka_sink *k = s->backend;

	if (k->f.failed)
		return sink_failed(&k->f, e);
	if (k->abort_needed || k->aborting)
		return txn_abort(s, e);
	if (k->txn == TXN_OPEN && now_ms() >= k->txn_due_ms)
		txn_close_now(s);
	if (k->txn == TXN_DRAIN) {
		if (head_half_produced(k)) {
			/* its remaining tombstones first: an event is never split
			 * between two transactions */
			serve(s, 0);
			if (!k->f.failed && backlog_drain(s, true, e) < 0)
				return -1;
			if (head_half_produced(k))
				serve(s, KAFKA_TXN_SLICE_MS);
		}
		if (!k->f.failed && !head_half_produced(k)) {
			/* flush: linger.ms does not hold the last batches back */
			rd_kafka_flush(k->rk, KAFKA_TXN_SLICE_MS);
			serve(s, 0);
		}
		if (k->f.failed)
			return sink_failed(&k->f, e);
		if (k->abort_needed)
			return txn_abort(s, e);
		if (!head_half_produced(k) && seqwin_confirmed(&k->win) == k->win.sent) {
			int rc = produce_checkpoint(k, e);

			if (rc < 0)
				return -1;
			if (k->abort_needed)
				return txn_abort(s, e);
			if (rc > 0)
				k->txn = TXN_END;
		}
	}
	if (k->txn == TXN_END) {
		rd_kafka_error_t *error = rd_kafka_commit_transaction(k->rk, KAFKA_TXN_SLICE_MS);

		if (error) {
			if (rd_kafka_error_is_fatal(error))
				fail_fatal(k, rd_kafka_error_code(error),
				           rd_kafka_error_string(error));
			else if (rd_kafka_error_txn_requires_abort(error))
				need_abort(k, "the commit failed: %s",
				           rd_kafka_error_string(error));
			else if (!rd_kafka_error_is_retriable(error))
				sink_fail(&k->f, "could not commit the Kafka transaction: %s",
				          rd_kafka_error_string(error));
			/* else: not done within the slice; resumed at the next turn */
			rd_kafka_error_destroy(error);
			if (k->f.failed)
				return sink_failed(&k->f, e);
			if (k->abort_needed)
				return txn_abort(s, e);
			return 0;
		}
		k->txn = TXN_NONE;
		k->committed = k->txn_pos;
		k->committed_seq = k->txn_seq;
		k->commits++;
		k->closing_ms += now_ms() - k->closing_since_ms;
		if (log_get_level() <= LOG_DEBUG) {
			char what[96];

			kafka_pos_describe(&k->committed, what, sizeof what);
			log_debug("kafka: committed transaction %s, up to %s", k->txn_label, what);
		}
		s->confirmed_seq = k->committed_seq;
		update_blocked(s);
		/* what waited behind the commit goes into the next one */
		if (!k->closing && k->backlog.len > 0 && backlog_drain(s, false, e) < 0)
			return -1;
	}
	s->confirmed_seq = k->committed_seq;
	return 0;
}

/* ---- the sink's calls ------------------------------------------------------ */

static int kafka_event_routed(struct sink *s, uint64_t seq, const struct sink_record *rec,
                              struct err *e)
{
	struct kafka_sink *k = s->backend;
	size_t len = s->out.len - k->backlog_bytes;
	unsigned stage = 0;
	struct outgoing o;
	int rc;

	if (k->f.failed)
		return sink_failed(&k->f, e);
	if (len == 0 || s->out.data[s->out.len - 1] != '\n')
		return err_setk(e, ERR_SINK,
		                "could not produce event %" PRIu64 ": not one JSON line", seq);
	o = (struct outgoing){
	    .seq = seq,
	    .lsn = rec->lsn,
	    .commit_lsn = rec->commit_lsn,
	    .pos =
	        {
	            .txn = rec->transactional ? rec->commit_lsn : rec->lsn,
	            .index = rec->index,
	            .lsn = rec->lsn,
	        },
	    .xid = rec->xid,
	    .transactional = rec->transactional,
	    .delete = rec->delete,
	    .value = s->out.data + k->backlog_bytes,
	    .value_len = len - 1,
	    .second = rec->second < len ? rec->second : 0,
	    .key = rec->key,
	    .key_len = rec->key_len,
	    .old_key = rec->old_key,
	    .old_key_len = rec->old_key_len,
	};
	if (rec->boundary && k->txtopic.rkt == NULL)
		return err_setk(e, ERR_SINK,
		                "could not produce to Kafka: a transaction boundary "
		                "without a transaction topic");
	o.topic = rec->boundary ? &k->txtopic : topic_for(k, rec->schema, rec->table, e);
	if (o.topic == NULL)
		return -1;
	/* Serve reports as we go, as librdkafka's producer example does: they
	 * hold their messages' memory until served. */
	rd_kafka_poll(k->rk, 0);
	s->confirmed_seq = k->eos ? k->committed_seq : seqwin_confirmed(&k->win);
	if (k->eos) {
		/* Never waits here: an abort, or a transaction due to close,
		 * is seen to at the sink's next turn. */
		if (k->f.failed)
			return sink_failed(&k->f, e);
		if (k->abort_needed)
			return txn_abort(s, e);
		if (k->txn == TXN_OPEN && now_ms() >= k->txn_due_ms)
			txn_close_now(s);
	}
	if (k->backlog.len > 0 || !producing(k)) { /* keep the order: behind those waiting */
		if (backlog_push(s, &o, 0, e) < 0)
			return -1;
		return producing(k) ? backlog_drain(s, false, e) : 0;
	}
	rc = produce_event(k, &o, &stage, e);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return backlog_push(s, &o, stage, e);
	buf_clear(&s->out);
	s->written_seq = seq;
	s->confirmed_seq = k->eos ? k->committed_seq : seqwin_confirmed(&k->win);
	return 0;
}

/* Never blocks for long: a durable flush waits at most
 * KAFKA_DURABLE_WAIT_MS for the reports of what is produced (exactly once:
 * for the open transaction to commit). */
static int kafka_flush(struct sink *s, bool durable, struct err *e)
{
	struct kafka_sink *k = s->backend;
	int64_t deadline = now_ms() + KAFKA_DURABLE_WAIT_MS;
	uint64_t target, txn_n;

	serve(s, 0);
	if (k->eos && txn_step(s, e) < 0)
		return -1;
	if (!k->f.failed && k->backlog.len > 0 && producing(k) && backlog_drain(s, false, e) < 0)
		return -1;
	if (k->eos && durable) {
		txn_close_now(s);
		txn_n = k->txn_n;
		while (k->txn != TXN_NONE && k->txn_n == txn_n && now_ms() < deadline) {
			serve(s, 1); /* (no spin while an abort waits to be tried again) */
			if (txn_step(s, e) < 0)
				return -1;
		}
		return 0;
	}
	target = k->win.sent;
	while (durable && !k->f.failed && seqwin_confirmed(&k->win) < target) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			break;
		serve(s, (int)left);
	}
	if (k->f.failed)
		return sink_failed(&k->f, e);
	return 0;
}

/* Reports arrive on the pipe; a blocked sink also looks now and then.
 * Exactly once, an open transaction wants its turn when it is due, and one
 * being closed (or aborted) at once: its steps wait themselves. */
static void kafka_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	struct kafka_sink *k = s->backend;
	int want = -1;

	if (ps->nfds < SINK_POLL_MAX)
		ps->fds[ps->nfds++] = (struct pollfd){.fd = k->wake[0], .events = POLLIN};
	if (s->blocked)
		want = KAFKA_BLOCKED_POLL_MS;
	if (k->eos && k->txn == TXN_OPEN) {
		int64_t left = k->txn_due_ms - now_ms();

		if (left < want || want < 0)
			want = left > 0 ? (int)left : 0;
	}
	if (k->eos && (!producing(k) || k->txn > TXN_OPEN)) {
		int64_t left = k->abort_retry_ms - now_ms();

		want = left > 0 ? (int)left : 0;
	}
	if (want >= 0 && (ps->timeout_ms < 0 || ps->timeout_ms > want))
		ps->timeout_ms = want;
}

static int kafka_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	struct kafka_sink *k = s->backend;

	(void)ps; /* serve() looks at the pipe itself */
	serve(s, 0);
	if (k->eos && txn_step(s, e) < 0)
		return -1;
	if (!k->f.failed && k->backlog.len > 0 && producing(k) && backlog_drain(s, false, e) < 0)
		return -1;
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

static uint64_t kafka_resume_lsn(const struct sink *s)
{
	const struct kafka_sink *k = s->backend;

	return k->eos ? k->restored.txn : 0;
}

/* ---- open and close ------------------------------------------------------ */

/* The window spans as many events as librdkafka may hold messages: more
 * could never be in flight at once. */
static uint64_t window_size(rd_kafka_conf_t *conf)
{
	char v[32];
	size_t n = sizeof v;
	unsigned long long cap = 0;

	if (rd_kafka_conf_get(conf, "queue.buffering.max.messages", v, &n) == RD_KAFKA_CONF_OK)
		cap = strtoull(v, NULL, 10);
	return cap >= 1024 ? cap : 1024;
}

static int connect_check(struct sink *s, const struct sink_kafka_config *kc, struct err *e)
{
	struct kafka_sink *k = s->backend;
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err = rd_kafka_metadata(k->rk, 0, NULL, &md, KAFKA_CONNECT_TIMEOUT_MS);

	serve(s, 0); /* errors and logs of the attempt */
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return err_set(e,
		               "could not connect to Kafka at %s: %s (no answer within %d s%s%s)",
		               kc->brokers, rd_kafka_err2str(err), KAFKA_CONNECT_TIMEOUT_MS / 1000,
		               *k->last_error ? "; " : "", k->last_error);
	k->opening = false;
	k->last_error[0] = '\0';
	log_info("connected to Kafka (%d brokers)", md->broker_cnt);
	rd_kafka_metadata_destroy(md);
	return 0;
}

/* A user may trade safety for speed with --kafka-property; say once, at
 * start, what the trade risks, since pgstream acknowledges to Postgres on
 * the delivery reports those properties make weaker. */
static void warn_weak_delivery(rd_kafka_conf_t *conf)
{
	char acks[16] = "", idem[16] = "";
	size_t n = sizeof acks, m = sizeof idem;
	const char *a = "", *i = "";

	if (rd_kafka_conf_get(conf, "acks", acks, &n) != RD_KAFKA_CONF_OK)
		acks[0] = '\0';
	if (rd_kafka_conf_get(conf, "enable.idempotence", idem, &m) != RD_KAFKA_CONF_OK)
		idem[0] = '\0';
	if (strcmp(acks, "0") == 0)
		a = "acks=0: a delivery report no longer means a broker has the message, so "
		    "changes acknowledged to Postgres can be lost; ";
	else if (strcmp(acks, "1") == 0)
		a = "acks=1: a delivery report means only the partition leader has the message, so "
		    "changes acknowledged to Postgres are lost if it fails before its replicas "
		    "copy "
		    "them; ";
	if (strcmp(idem, "false") == 0)
		i = "enable.idempotence=false: librdkafka's retries may duplicate and reorder "
		    "messages within a partition; ";
	if (*a || *i)
		log_warn("kafka: delivery weakened by --kafka-property: %s%s"
		         "remove these properties for pgstream's guarantees",
		         a, i);
}

/* Exactly once, after connecting: fence older producers of our
 * transactional.id (and abort what they left open), make sure the offsets
 * topic exists, and read back the last committed checkpoint. */
static int eos_open(struct sink *s, const struct sink_kafka_config *kc, struct err *e)
{
	struct kafka_sink *k = s->backend;
	rd_kafka_error_t *error;
	rd_kafka_conf_t *conf;
	struct err ce;
	char what[96];
	bool found;
	int rc;

	error = rd_kafka_init_transactions(k->rk, KAFKA_INIT_TXN_MS);
	serve(s, 0);
	if (error) {
		err_set(e, "could not start Kafka transactions for transactional.id %s: %s%s%s",
		        k->txn_id, rd_kafka_error_string(error), *k->last_error ? "; " : "",
		        k->last_error);
		rd_kafka_error_destroy(error);
		return -1;
	}
	if (k->f.failed)
		return err_set(e, "%s", k->f.msg);
	log_debug("kafka: transactions initialized (transactional.id %s)", k->txn_id);
	buf_clear(&k->name);
	if (!kafka_topic_render(&k->name, kc->offsets_topic, kc->prefix, NULL, NULL))
		return err_set(e,
		               "invalid value for --kafka-offsets-topic: longer than %d characters",
		               KAFKA_TOPIC_MAX);
	if ((k->offsets_name = strdup(k->name.data)) == NULL)
		return err_set(e, "could not open the Kafka sink: out of memory");
	rc = kafka_offsets_create(k->rk, k->offsets_name, KAFKA_CREATE_TIMEOUT_MS, &ce);
	if (rc < 0)
		log_warn(
		    "kafka: %s; it will be created on first use by the brokers, not compacted: "
		    "create it with cleanup.policy=compact",
		    ce.msg);
	else if (rc > 0)
		log_info("kafka: created the checkpoint topic %s (cleanup.policy=compact)",
		         k->offsets_name);
	k->offsets_rkt = topic_open(k, NULL, e);
	if (k->offsets_rkt == NULL)
		return -1;
	log_debug("kafka: reading the checkpoint back from %s", k->offsets_name);
	/* A consumer of the same brokers and properties (the producer's own
	 * ones it ignores, at debug level) */
	conf = rd_kafka_conf_new();
	if (conf == NULL)
		return err_set(e, "could not read the checkpoint: out of memory");
	rd_kafka_conf_set_log_cb(conf, on_log);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", kc->brokers, ce.msg, sizeof ce.msg) !=
	        RD_KAFKA_CONF_OK ||
	    set_user_properties(conf, kc->properties, e) < 0) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	if (kafka_offsets_read(conf, k->offsets_name, k->txn_id, KAFKA_CHECKPOINT_READ_MS,
	                       &k->committed, &found, e) < 0)
		return -1;
	k->produced = k->restored = k->committed;
	kafka_pos_describe(&k->committed, what, sizeof what);
	if (found)
		log_info(
		    "kafka: exactly once, transactional.id %s: Kafka holds everything up to %s "
		    "(checkpoint in %s); what the server sends again up to there is skipped",
		    k->txn_id, what, k->offsets_name);
	else
		log_info("kafka: exactly once, transactional.id %s: no checkpoint in %s yet",
		         k->txn_id, k->offsets_name);
	return 0;
}

static int kafka_open(struct sink *s, const struct sink_config *cfg, void *settings, struct err *e)
{
	struct kafka_sink *k = s->backend;
	struct sink_kafka_config *kc = settings;
	rd_kafka_conf_t *conf;
	char errstr[512];
	struct timespec now;

	k->wake[0] = k->wake[1] = -1;
	k->opening = true;
	buf_init(&k->backlog, 0);
	buf_init(&k->name, 0);
	buf_init(&k->mark, 0);
	k->tombstones = kc->tombstones;
	if (kafka_settle(cfg, kc, e) < 0 || check_topics(kc, &k->topic_uses, e) < 0)
		return -1;
	k->prefix = strdup(kc->prefix);
	k->topic_tmpl = strdup(kc->topic);
	if (k->prefix == NULL || k->topic_tmpl == NULL)
		return err_set(e, "could not open the Kafka sink: out of memory");
	k->eos = kc->exactly_once;
	k->txn_interval_ms = kc->commit_interval_ms > 0 ? kc->commit_interval_ms : 1;
	if (k->eos) {
		k->txn_id = transactional_id(kc);
		k->slot = strdup(kc->slot ? kc->slot : "pgstream_slot");
		if (k->txn_id == NULL || k->slot == NULL)
			return err_set(e, "could not open the Kafka sink: out of memory");
		/* this process's part of the transactions' labels */
		clock_gettime(CLOCK_REALTIME, &now);
		snprintf(k->run, sizeof k->run, "%llx",
		         (unsigned long long)now.tv_sec * 1000000 +
		             (unsigned long long)(now.tv_nsec / 1000));
	}
	conf = build_conf(kc, k->txn_id, e);
	if (conf == NULL)
		return -1;
	warn_weak_delivery(conf);
	if (seqwin_init(&k->win, window_size(conf), 0) < 0) {
		rd_kafka_conf_destroy(conf);
		return err_set(e, "could not open the Kafka sink: out of memory");
	}
	rd_kafka_conf_set_opaque(conf, s);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr); /* owns conf */
	if (k->rk == NULL) {
		rd_kafka_conf_destroy(conf);
		return err_set(e, "invalid Kafka configuration: %s", errstr);
	}
	rd_kafka_set_log_queue(k->rk, NULL); /* logs to the main queue: our thread */
	k->mainq = rd_kafka_queue_get_main(k->rk);
	if (pipe(k->wake) < 0 || fcntl(k->wake[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(k->wake[1], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(k->wake[0], F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(k->wake[1], F_SETFD, FD_CLOEXEC) < 0)
		return err_set(e, "could not open the Kafka sink: %s", strerror(errno));
	rd_kafka_queue_io_event_enable(k->mainq, k->wake[1], "1", 1);
	buf_clear(&k->name);
	if (!kafka_topic_render(&k->name, kc->messages_topic, kc->prefix, NULL, NULL))
		return err_set(e,
		               "invalid value for --kafka-messages-topic: longer than %d "
		               "characters",
		               KAFKA_TOPIC_MAX);
	k->messages.rkt = topic_open(k, &k->messages, e);
	if (k->messages.rkt == NULL)
		return -1;
	if (kc->transaction_topic) {
		buf_clear(&k->name);
		if (!kafka_topic_render(&k->name, kc->transaction_topic, kc->prefix, NULL, NULL))
			return err_set(
			    e,
			    "invalid value for --kafka-transaction-topic: longer than %d "
			    "characters",
			    KAFKA_TOPIC_MAX);
		k->txtopic.boundaries = true;
		k->txtopic.rkt = topic_open(k, &k->txtopic, e);
		if (k->txtopic.rkt == NULL)
			return -1;
	}
	if (connect_check(s, kc, e) < 0)
		return -1;
	return k->eos ? eos_open(s, kc, e) : 0;
}

/* Exactly once, at close: commit what the open transaction holds (the
 * server need not send it again), within the close's deadline; what cannot
 * be committed is aborted. Nothing new begins. */
static void eos_close(struct sink *s)
{
	struct kafka_sink *k = s->backend;
	int64_t deadline = now_ms() + KAFKA_CLOSE_FLUSH_MS;
	struct err ignored;
	uint64_t txn_n = k->txn_n;

	k->closing = true;
	log_debug("kafka: %" PRIu64 " transactions committed (%.1f ms each to close, on average), "
	          "%" PRIu64 " aborted, %" PRIu64 " events skipped as already in Kafka",
	          k->commits, k->commits ? (double)k->closing_ms / (double)k->commits : 0.0,
	          k->aborts, k->skipped);
	if (k->f.failed || k->txn == TXN_NONE)
		return;
	txn_close_now(s);
	while (k->txn != TXN_NONE && k->txn_n == txn_n && !k->f.failed && now_ms() < deadline) {
		serve(s, 1);
		if (txn_step(s, &ignored) < 0)
			break; /* failed, or aborted (rewound) */
	}
	if (k->txn != TXN_NONE && !k->f.failed) {
		rd_kafka_error_t *error = rd_kafka_abort_transaction(k->rk, 1000);

		if (error)
			rd_kafka_error_destroy(error);
		log_warn("kafka: the open transaction could not be committed within %d s at exit "
		         "(aborted: Postgres sends it again)",
		         KAFKA_CLOSE_FLUSH_MS / 1000);
	}
}

static void kafka_close(struct sink *s)
{
	struct kafka_sink *k = s->backend;

	if (k->rk) {
		int left;

		if (k->eos)
			eos_close(s);
		/* After a failure nothing more is acknowledged: what waits
		 * would only be repeated. Otherwise deliver it, within a
		 * deadline, so that a restart repeats little (exactly once,
		 * the transaction is committed or aborted by now). */
		if (k->f.failed || k->eos)
			rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(k->rk, k->f.failed || k->eos ? 0 : KAFKA_CLOSE_FLUSH_MS);
		left = rd_kafka_outq_len(k->rk);
		if (left > 0 && !k->f.failed && !k->eos)
			log_warn("kafka: %d messages not delivered within %d s at exit (not "
			         "acknowledged: Postgres sends them again)",
			         left, KAFKA_CLOSE_FLUSH_MS / 1000);
		for (size_t i = 0; i < k->topics_cap; i++) {
			struct topic_entry *t = k->topics[i];

			if (t == NULL)
				continue;
			rd_kafka_topic_destroy(t->rkt);
			free(t->schema);
			free(t->table);
			free(t);
		}
		if (k->messages.rkt)
			rd_kafka_topic_destroy(k->messages.rkt);
		if (k->txtopic.rkt)
			rd_kafka_topic_destroy(k->txtopic.rkt);
		if (k->offsets_rkt)
			rd_kafka_topic_destroy(k->offsets_rkt);
		if (k->mainq) {
			rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
			rd_kafka_queue_destroy(k->mainq);
		}
		rd_kafka_destroy(k->rk);
		k->rk = NULL;
	}
	for (int i = 0; i < 2; i++)
		if (k->wake[i] >= 0)
			close(k->wake[i]);
	free(k->topics);
	free(k->prefix);
	free(k->topic_tmpl);
	free(k->txn_id);
	free(k->slot);
	free(k->offsets_name);
	buf_reset(&k->mark);
	seqwin_reset(&k->win);
	buf_reset(&k->backlog);
	buf_reset(&k->name);
}

const struct sink_ops SINK_KAFKA = {
    .name = "kafka",
    .backend_size = sizeof(struct kafka_sink),
    .options = KAFKA_OPTIONS,
    .settings_size = sizeof(struct sink_kafka_config),
    .check_config = kafka_check_config,
    .open = kafka_open,
    .event_routed = kafka_event_routed,
    .flush = kafka_flush,
    .adjust_pollset = kafka_adjust_pollset,
    .process = kafka_process,
    .resume_lsn = kafka_resume_lsn,
    .close = kafka_close,
};
