/* kafka_offsets.c — the checkpoint record of --kafka-exactly-once: its
 * value, the topic it lives in, and reading the newest back (see
 * kafka_offsets.h). */
#include "sink/kafka_offsets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/lsn.h"

void kafka_pos_describe(const struct kafka_pos *p, char *out, size_t n)
{
	char at[LSN_STR_MAX];

	if (p->txn == 0) {
		snprintf(out, n, "none yet");
		return;
	}
	lsn_format(p->txn, at);
	snprintf(out, n, "event %" PRIu64 " of the transaction committed at %s", p->index, at);
}

void kafka_offsets_format(struct buf *out, const char *slot, const struct kafka_pos *p,
                          const char *kafka_txn)
{
	char txn[LSN_STR_MAX], lsn[LSN_STR_MAX];

	lsn_format(p->txn, txn);
	lsn_format(p->lsn, lsn);
	/* slot names are [a-z0-9_] (config.c), the label [0-9a-f-]: no escaping */
	buf_printf(out,
	           "{\"slot\":\"%s\",\"commit_lsn\":\"%s\",\"index\":%" PRIu64
	           ",\"lsn\":\"%s\",\"kafka_txn\":\"%s\"}",
	           slot, txn, p->index, lsn, kafka_txn);
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The value of field name at the top level of value (after the colon and
 * any blanks), NULL if absent. Only checkpoint records are read, so a
 * field is found by its name after '{' or ',' (and blanks): written by
 * pgstream, or by hand. */
static const char *field(const char *v, size_t n, const char *name, const char **end)
{
	size_t len = strlen(name);

	*end = v + n;
	for (size_t i = 0; i < n; i++) {
		size_t j = i + 1;

		if (v[i] != '{' && v[i] != ',')
			continue;
		while (j < n && space(v[j]))
			j++;
		if (j + len + 2 > n || v[j] != '"' || memcmp(v + j + 1, name, len) != 0 ||
		    v[j + 1 + len] != '"')
			continue;
		for (j += len + 2; j < n && space(v[j]); j++)
			;
		if (j >= n || v[j] != ':')
			continue;
		for (j++; j < n && space(v[j]); j++)
			;
		return v + j;
	}
	return NULL;
}

static bool lsn_field(const char *v, size_t n, const char *name, uint64_t *out)
{
	const char *end, *p = field(v, n, name, &end);
	char text[LSN_STR_MAX + 1];
	size_t len;

	if (p == NULL || p >= end || *p != '"')
		return false;
	p++;
	for (len = 0; p + len < end && p[len] != '"'; len++)
		if (len >= LSN_STR_MAX)
			return false;
	if (p + len >= end)
		return false;
	memcpy(text, p, len);
	text[len] = '\0';
	return lsn_parse(text, out);
}

bool kafka_offsets_parse(const char *value, size_t len, struct kafka_pos *p)
{
	const char *end, *q = field(value, len, "index", &end);
	uint64_t index = 0;
	int digits = 0;

	if (q == NULL)
		return false;
	for (; q < end && *q >= '0' && *q <= '9' && digits < 19; q++, digits++)
		index = index * 10 + (uint64_t)(*q - '0');
	while (q < end && space(*q))
		q++;
	if (digits == 0 || index == 0 || q >= end || (*q != ',' && *q != '}'))
		return false;
	if (!lsn_field(value, len, "commit_lsn", &p->txn) || p->txn == 0)
		return false;
	if (!lsn_field(value, len, "lsn", &p->lsn))
		p->lsn = 0;
	p->index = index;
	return true;
}

/* ---- the topic ----------------------------------------------------------- */

static int topic_exists(rd_kafka_t *rk, const char *topic, int timeout_ms, int *partitions,
                        struct err *e)
{
	const struct rd_kafka_metadata *md;
	/* every topic: asking for one by name may have the brokers create it
	 * (auto.create.topics.enable), not compacted */
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);

	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return err_set(e, "could not list the Kafka topics: %s", rd_kafka_err2str(err));
	*partitions = 0;
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, topic) == 0 &&
		    md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			*partitions = md->topics[i].partition_cnt;
	rd_kafka_metadata_destroy(md);
	return *partitions > 0;
}

int kafka_offsets_create(rd_kafka_t *rk, const char *topic, int timeout_ms, struct err *e)
{
	char errstr[512];
	rd_kafka_NewTopic_t *nt;
	rd_kafka_AdminOptions_t *opts;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	int partitions, rc;

	rc = topic_exists(rk, topic, timeout_ms, &partitions, e);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	nt = rd_kafka_NewTopic_new(topic, 1, -1, errstr, sizeof errstr);
	if (nt == NULL)
		return err_set(e, "could not create Kafka topic %s: %s", topic, errstr);
	if (rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact") !=
	    RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_NewTopic_destroy(nt);
		return err_set(e, "could not create Kafka topic %s: out of memory", topic);
	}
	opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr, sizeof errstr);
	rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr, sizeof errstr);
	q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
	ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
	rc = -1;
	if (ev == NULL) {
		err_set(e, "could not create Kafka topic %s: no answer within %d s", topic,
		        timeout_ms / 1000);
	} else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		err_set(e, "could not create Kafka topic %s: %s", topic,
		        rd_kafka_event_error_string(ev));
	} else {
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t n = 0;
		const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
		rd_kafka_resp_err_t err =
		    n ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR_UNKNOWN;

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			rc = 1;
		else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			rc = 0;
		else
			err_set(e, "could not create Kafka topic %s: %s", topic,
			        n && rd_kafka_topic_result_error_string(tr[0])
			            ? rd_kafka_topic_result_error_string(tr[0])
			            : rd_kafka_err2str(err));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_NewTopic_destroy(nt);
	return rc;
}

/* ---- reading it back ------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Partition p of rkt from its first record to its end (for read_committed
 * the last stable offset: what committed transactions hold), keeping the
 * newest checkpoint under key in *out. */
static int read_partition(rd_kafka_topic_t *rkt, int32_t p, const char *key, int64_t deadline,
                          struct kafka_pos *out, bool *found, struct err *e)
{
	size_t key_len = strlen(key);
	int rc = 0;

	if (rd_kafka_consume_start(rkt, p, RD_KAFKA_OFFSET_BEGINNING) < 0)
		return err_set(e, "could not read Kafka topic %s: %s", rd_kafka_topic_name(rkt),
		               rd_kafka_err2str(rd_kafka_last_error()));
	for (;;) {
		int64_t left = deadline - mono_ms();
		rd_kafka_message_t *m;
		struct kafka_pos pos;

		if (left <= 0) {
			rc = err_set(
			    e,
			    "could not read the checkpoint from Kafka topic %s: partition %d "
			    "not read to its end in time (a transaction of another producer "
			    "still open?)",
			    rd_kafka_topic_name(rkt), (int)p);
			break;
		}
		m = rd_kafka_consume(rkt, p, left > 500 ? 500 : (int)left);
		if (m == NULL)
			continue; /* nothing yet: a slow broker, or fetching */
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			break;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			rc = err_set(e, "could not read the checkpoint from Kafka topic %s: %s",
			             rd_kafka_topic_name(rkt), rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			break;
		}
		if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0) {
			if (m->payload == NULL || !kafka_offsets_parse(m->payload, m->len, &pos)) {
				rc = err_set(
				    e,
				    "could not read the checkpoint from Kafka topic %s: the "
				    "record at partition %d offset %" PRId64 " under key %s is "
				    "not one pgstream wrote",
				    rd_kafka_topic_name(rkt), (int)p, m->offset, key);
				rd_kafka_message_destroy(m);
				break;
			}
			/* The newest record is the last one; positions only grow,
			 * so the largest is the same one unless the topic was
			 * repartitioned (the key's records then span partitions). */
			if (!*found || kafka_pos_cmp(&pos, out) > 0)
				*out = pos;
			*found = true;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consume_stop(rkt, p);
	return rc;
}

int kafka_offsets_read(rd_kafka_conf_t *conf, const char *topic, const char *key, int timeout_ms,
                       struct kafka_pos *out, bool *found, struct err *e)
{
	static const char *const SETTINGS[][2] = {
	    {"isolation.level", "read_committed"},
	    {"enable.partition.eof", "true"},
	    {"enable.auto.commit", "false"},
	    {"enable.auto.offset.store", "false"},
	    /* at the end of a partition, a fetch waits this long for more
	     * (default 500 ms): there is no more to wait for */
	    {"fetch.wait.max.ms", "10"},
	};
	int64_t deadline = mono_ms() + timeout_ms;
	char errstr[512];
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	int partitions, rc;

	*found = false;
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < sizeof SETTINGS / sizeof SETTINGS[0]; i++)
		if (rd_kafka_conf_set(conf, SETTINGS[i][0], SETTINGS[i][1], errstr,
		                      sizeof errstr) != RD_KAFKA_CONF_OK) {
			rd_kafka_conf_destroy(conf);
			return err_set(e, "could not configure the Kafka checkpoint reader: %s",
			               errstr);
		}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr); /* owns conf */
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		return err_set(e, "could not configure the Kafka checkpoint reader: %s", errstr);
	}
	rc = topic_exists(rk, topic, timeout_ms, &partitions, e);
	if (rc <= 0) {
		rd_kafka_destroy(rk);
		return rc; /* 0: no topic, no checkpoint */
	}
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL) {
		rd_kafka_destroy(rk);
		return err_set(e, "could not read Kafka topic %s: %s", topic,
		               rd_kafka_err2str(rd_kafka_last_error()));
	}
	rc = 0;
	for (int32_t p = 0; p < partitions && rc == 0; p++)
		rc = read_partition(rkt, p, key, deadline, out, found, e);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return rc;
}
