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
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "sink/kafka_topic.h"
#include "sink/seqwin.h"
#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

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

/* A topic handle and the table it is for, cached for the sink's life. */
struct topic_entry {
	char *schema; /* NULL: the messages topic */
	char *table;
	rd_kafka_topic_t *rkt;
};

/* An event waiting in the backlog; its value is the next value_len bytes
 * of s->out after the earlier waiting events', and key_len then
 * old_key_len bytes of key follow this header in k->backlog. */
struct pending {
	uint64_t seq, lsn, commit_lsn;
	struct topic_entry *topic;
	size_t value_len; /* with the newline */
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
	struct topic_entry **topics; /* open addressing by (schema, table) */
	size_t ntopics, topics_cap;  /* topics_cap: a power of two, or 0 */
	struct seqwin win;
	struct buf backlog;   /* struct pending + keys, oldest first */
	size_t backlog_bytes; /* of s->out, the waiting events' values */
	struct buf name;      /* scratch: a topic's name */
	bool opening;         /* errors go into the open's error, not the log */
	bool failed;          /* a message failed for good: every call says so */
	char failmsg[ERR_MSG_MAX];
	char last_error[256]; /* the last error line logged, and when */
	int64_t last_error_ms;
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
static rd_kafka_conf_t *build_conf(const struct sink_kafka_config *kc, struct err *e)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];

	if (conf == NULL) {
		err_set(e, "could not configure Kafka: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < sizeof DEFAULTS / sizeof DEFAULTS[0]; i++) {
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
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static int check_topics(const struct sink_kafka_config *kc, unsigned *uses, struct err *e)
{
	unsigned ignored;

	if (kafka_topic_check("kafka-topic", kc->topic, kc->prefix,
	                      KAFKA_TOPIC_PREFIX | KAFKA_TOPIC_SCHEMA | KAFKA_TOPIC_TABLE, uses,
	                      e) < 0)
		return -1;
	return kafka_topic_check("kafka-messages-topic", kc->messages_topic, kc->prefix,
	                         KAFKA_TOPIC_PREFIX, &ignored, e);
}

/* Everything librdkafka can judge without a broker: the properties one by
 * one, then together (rd_kafka_new refuses, for example, acks=1 with
 * idempotence), and the topic templates. */
static int kafka_check_config(const struct sink_config *cfg, struct err *e)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char errstr[512];
	unsigned uses;

	if (check_topics(&cfg->kafka, &uses, e) < 0)
		return -1;
	conf = build_conf(&cfg->kafka, e);
	if (conf == NULL)
		return -1;
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr); /* owns conf */
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		return err_set(e, "invalid Kafka configuration: %s", errstr);
	}
	rd_kafka_destroy(rk);
	return 0;
}

/* ---- callbacks (served by rd_kafka_poll on the daemon's thread) --------- */

static void fail(struct kafka_sink *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct kafka_sink *k, const char *fmt, ...)
{
	va_list ap;

	if (k->failed)
		return; /* the first failure is the one to report */
	va_start(ap, fmt);
	vsnprintf(k->failmsg, sizeof k->failmsg, fmt, ap);
	va_end(ap);
	k->failed = true;
}

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

	if (t && t->schema == NULL)
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
	fail(k,
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

/* The only place a message counts as delivered. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct sink *s = opaque;
	struct kafka_sink *k = s->backend;
	uint64_t seq = (uint64_t)(uintptr_t)m->_private;

	(void)rk;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		seqwin_delivered(&k->win, seq);
		return;
	}
	/* Never counted delivered: the window stops before this event. */
	fail_message(k, m->rkt, message_lsn(m), m->err, NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct sink *s = opaque;
	struct kafka_sink *k = s->backend;
	char fatal[512];
	int64_t now;

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof fatal);
		fail(k,
		     "could not produce to Kafka: fatal producer error: %s; restart pgstream "
		     "(nothing undelivered was acknowledged: Postgres sends it again)",
		     fatal);
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

/* librdkafka's own log (log.queue: served by rd_kafka_poll): debug level. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	log_debug("kafka: %s: %s", fac, buf);
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
	s->confirmed_seq = seqwin_confirmed(&k->win);
}

static int failed(const struct kafka_sink *k, struct err *e)
{
	return err_setk(e, ERR_SINK, "%s", k->failmsg);
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
	uint32_t xid;
	bool transactional, delete;
	struct topic_entry *topic;
	const char *value; /* without the newline */
	size_t value_len;
	const char *key, *old_key; /* NULL: none */
	size_t key_len, old_key_len;
};

static rd_kafka_headers_t *headers_for(const struct outgoing *o)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
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
	return h;
}

/* Hand one message of o to librdkafka, counted in the window until its
 * report. value NULL: a tombstone. */
static rd_kafka_resp_err_t produce_one(struct kafka_sink *k, const struct outgoing *o,
                                       const char *key, size_t key_len, const char *value,
                                       size_t value_len)
{
	rd_kafka_headers_t *h = headers_for(o);
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

/*
 * Produce what is left of o from message *stage on: 0 the event, 1 the
 * old key's tombstone, 2 the deleted key's. Returns 1 when all are out, 0
 * when librdkafka's queue or the window is full (*stage says where to go
 * on), -1 with *e set on a permanent error.
 */
static int produce_event(struct kafka_sink *k, const struct outgoing *o, unsigned *stage,
                         struct err *e)
{
	if (*stage == 0 && !seqwin_room(&k->win, o->seq))
		return 0;
	for (; *stage < 3; (*stage)++) {
		rd_kafka_resp_err_t err;

		if (*stage == 0)
			err = produce_one(k, o, o->key, o->key_len, o->value, o->value_len);
		else if (*stage == 1 && o->old_key && k->tombstones)
			err = produce_one(k, o, o->old_key, o->old_key_len, NULL, 0);
		else if (*stage == 2 && o->delete &&o->key && k->tombstones)
			err = produce_one(k, o, o->key, o->key_len, NULL, 0);
		else
			continue;
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return 0;
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			char why[160];

			if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
				snprintf(why, sizeof why, "%zu bytes is over message.max.bytes",
				         *stage == 0 ? o->value_len + o->key_len : o->key_len);
			fail_message(k, o->topic->rkt, o->lsn, err,
			             err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? why : NULL);
			return failed(k, e);
		}
	}
	seqwin_event_sent(&k->win, o->seq);
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
	    .topic = o->topic,
	    .value_len = o->value_len + 1,
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

/* Produce what waits in the backlog, oldest first, until librdkafka takes
 * no more. */
static int backlog_drain(struct sink *s, struct err *e)
{
	struct kafka_sink *k = s->backend;
	size_t off = 0, value_off = 0;
	int rc = 1;

	while (off < k->backlog.len) {
		struct pending p;
		struct outgoing o;

		memcpy(&p, k->backlog.data + off, sizeof p);
		o = (struct outgoing){
		    .seq = p.seq,
		    .lsn = p.lsn,
		    .commit_lsn = p.commit_lsn,
		    .xid = p.xid,
		    .transactional = p.transactional,
		    .delete = p.delete,
		    .topic = p.topic,
		    .value = s->out.data + value_off,
		    .value_len = p.value_len - 1,
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
	s->blocked = k->backlog.len > 0;
	return 0;
}

static int kafka_event_routed(struct sink *s, uint64_t seq, const struct sink_record *rec,
                              struct err *e)
{
	struct kafka_sink *k = s->backend;
	size_t len = s->out.len - k->backlog_bytes;
	unsigned stage = 0;
	struct outgoing o;
	int rc;

	if (k->failed)
		return failed(k, e);
	if (len == 0 || s->out.data[s->out.len - 1] != '\n')
		return err_setk(e, ERR_SINK,
		                "could not produce event %" PRIu64 ": not one JSON line", seq);
	o = (struct outgoing){
	    .seq = seq,
	    .lsn = rec->lsn,
	    .commit_lsn = rec->commit_lsn,
	    .xid = rec->xid,
	    .transactional = rec->transactional,
	    .delete = rec->delete,
	    .value = s->out.data + k->backlog_bytes,
	    .value_len = len - 1,
	    .key = rec->key,
	    .key_len = rec->key_len,
	    .old_key = rec->old_key,
	    .old_key_len = rec->old_key_len,
	};
	o.topic = topic_for(k, rec->schema, rec->table, e);
	if (o.topic == NULL)
		return -1;
	/* Serve reports as we go, as librdkafka's producer example does: they
	 * hold their messages' memory until served. */
	rd_kafka_poll(k->rk, 0);
	s->confirmed_seq = seqwin_confirmed(&k->win);
	if (k->backlog.len > 0) /* keep the order: behind those waiting */
		return backlog_push(s, &o, 0, e) < 0 ? -1 : backlog_drain(s, e);
	rc = produce_event(k, &o, &stage, e);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return backlog_push(s, &o, stage, e);
	buf_clear(&s->out);
	s->written_seq = seq;
	return 0;
}

/* Never blocks for long: a durable flush waits at most
 * KAFKA_DURABLE_WAIT_MS for the reports of what is produced. */
static int kafka_flush(struct sink *s, bool durable, struct err *e)
{
	struct kafka_sink *k = s->backend;
	int64_t deadline = now_ms() + KAFKA_DURABLE_WAIT_MS;
	uint64_t target;

	serve(s, 0);
	if (!k->failed && k->backlog.len > 0 && backlog_drain(s, e) < 0)
		return -1;
	target = k->win.sent;
	while (durable && !k->failed && seqwin_confirmed(&k->win) < target) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			break;
		serve(s, (int)left);
	}
	if (k->failed)
		return failed(k, e);
	return 0;
}

/* Reports arrive on the pipe; a blocked sink also looks now and then. */
static void kafka_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	struct kafka_sink *k = s->backend;

	if (ps->nfds < SINK_POLL_MAX)
		ps->fds[ps->nfds++] = (struct pollfd){.fd = k->wake[0], .events = POLLIN};
	if (s->blocked && (ps->timeout_ms < 0 || ps->timeout_ms > KAFKA_BLOCKED_POLL_MS))
		ps->timeout_ms = KAFKA_BLOCKED_POLL_MS;
}

static int kafka_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	struct kafka_sink *k = s->backend;

	(void)ps; /* serve() looks at the pipe itself */
	serve(s, 0);
	if (!k->failed && k->backlog.len > 0 && backlog_drain(s, e) < 0)
		return -1;
	return k->failed ? failed(k, e) : 0;
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

static int kafka_open(struct sink *s, const struct sink_config *cfg, struct err *e)
{
	struct kafka_sink *k = s->backend;
	const struct sink_kafka_config *kc = &cfg->kafka;
	rd_kafka_conf_t *conf;
	char errstr[512];

	k->wake[0] = k->wake[1] = -1;
	k->opening = true;
	buf_init(&k->backlog, 0);
	buf_init(&k->name, 0);
	k->tombstones = kc->tombstones;
	if (check_topics(kc, &k->topic_uses, e) < 0)
		return -1;
	k->prefix = strdup(kc->prefix);
	k->topic_tmpl = strdup(kc->topic);
	if (k->prefix == NULL || k->topic_tmpl == NULL)
		return err_set(e, "could not open the Kafka sink: out of memory");
	conf = build_conf(kc, e);
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
	return connect_check(s, kc, e);
}

static void kafka_close(struct sink *s)
{
	struct kafka_sink *k = s->backend;

	if (k->rk) {
		int left;

		/* After a failure nothing more is acknowledged: what waits
		 * would only be repeated. Otherwise deliver it, within a
		 * deadline, so that a restart repeats little. */
		if (k->failed)
			rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(k->rk, k->failed ? 0 : KAFKA_CLOSE_FLUSH_MS);
		left = rd_kafka_outq_len(k->rk);
		if (left > 0 && !k->failed)
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
	seqwin_reset(&k->win);
	buf_reset(&k->backlog);
	buf_reset(&k->name);
}

const struct sink_ops SINK_KAFKA = {
    .name = "kafka",
    .backend_size = sizeof(struct kafka_sink),
    .check_config = kafka_check_config,
    .open = kafka_open,
    .event_routed = kafka_event_routed,
    .flush = kafka_flush,
    .adjust_pollset = kafka_adjust_pollset,
    .process = kafka_process,
    .close = kafka_close,
};
