/*
 * sink_nats.c — events published to a NATS JetStream stream with libnats,
 * exactly once.
 *
 * Each event is one message on its table's subject, {prefix}.{schema}.{table}
 * (logical messages: {prefix}.messages), all in one stream that takes
 * {prefix}.> (created at start unless told not to). The message is the
 * event's JSON line without its newline; its one header of pgstream's is
 * Nats-Msg-Id, the event's position ("0/16B3F20:3": its transaction's
 * commit LSN, or a non-transactional message's own LSN, and its number
 * within it), which is all a consumer needs to place or drop a message
 * without parsing it. (More headers, as the Kafka sink's lsn and xid,
 * would cost a fifth of pgstream's CPU here: libnats keeps headers in a
 * hash map per message.)
 *
 * Exactly once rests on three things:
 * - Order without gaps. Every publish carries Nats-Expected-Last-Sequence,
 *   the stream sequence the message before it will have, so the stream
 *   stores a message only right after its predecessor: one failed publish
 *   makes every later one fail too, and the stream never holds an event
 *   whose predecessor it lacks.
 * - Resuming from the stream itself. At start, and after any failure, the
 *   stream's last message says the last position stored: what the server
 *   sends again up to there is confirmed without being published again,
 *   however long ago it was stored, and publishing resumes right after it.
 * - Nats-Msg-Id, for what the two cannot see: a message sent again by
 *   libnats's reconnect buffer, or by another process, inside the stream's
 *   duplicate window is dropped by the stream.
 *
 * Publishing is asynchronous, and done here rather than with libnats's
 * js_PublishMsgAsync, whose per-message map, timer and parsed reply cost
 * more than the rest of pgstream: a JetStream publish is a core NATS
 * publish whose reply subject gets the stream's ack, so each message is
 * published with the reply subject {inbox}.{event number}, and one
 * subscription to {inbox}.* takes every ack. Its callback (ack_cb, on a
 * libnats thread) finds the event's entry from the number, marks it under
 * mu and wakes the loop through a pipe that is in the daemon's poll set;
 * the loop confirms the acknowledged front. Up to NATS_WINDOW events or
 * NATS_WINDOW_BYTES bytes may await acks; past that the sink is blocked
 * and the daemon stops decoding. No ack for NATS_ACK_WAIT_MS while some
 * are awaited fails every publish in flight (an ack that comes later is
 * not counted: the replay reads the stream instead).
 *
 * A failed publish is retried without limit when the failure is one a
 * healthy system gets over: no ack within NATS_ACK_WAIT_MS, no responders
 * while a cluster elects a stream leader, the connection lost (libnats
 * reconnects by itself), or a wrong last sequence that follows an earlier
 * failure. Once every publish in flight has its answer, and after a
 * backoff, the stream's last message is read again and everything after
 * it is published again, in order. Any other refusal (an event over the
 * server's or the stream's limits, the stream deleted, a message of
 * someone else's at the stream's end) stops pgstream with one line,
 * nothing from that event on acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "sink/nats_reply.h"
#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

/* --sink nats's settings: its options' values (NATS_OPTIONS), with the
 * prefix every sink shares. */
struct sink_nats_config {
	const char *url;         /* nats://[USER:PASSWORD@]HOST[:PORT], comma-separated */
	const char *prefix;      /* subjects are {prefix}.{schema}.{table} */
	const char *stream;      /* NULL: the prefix with '.' as '_' */
	const char *creds;       /* a .creds file (JWT and NKey seed), or NULL */
	bool create_stream;      /* create the stream if it is missing */
	int replicas;            /* of a stream pgstream creates */
	int duplicate_window_ms; /* of a stream pgstream creates */
};

#define N(field) offsetof(struct sink_nats_config, field)

static const struct sink_option NATS_OPTIONS[] = {
    {"nats-url", "NATS_URL", SINK_OPT_STRING, N(url), "URL",
     "with --sink nats: nats://[USER:PASSWORD@]HOST[:PORT], comma-separated for a cluster", NULL,
     NULL},
    {"nats-stream", "NATS_STREAM", SINK_OPT_STRING, N(stream), "NAME",
     "the JetStream stream (default: the topic prefix, '.' as '_'), taking {prefix}.>", NULL, NULL},
    {"nats-create-stream", "NATS_CREATE_STREAM", SINK_OPT_BOOL, N(create_stream), NULL,
     "create the stream if it is missing (default true)", "true", NULL},
    {"nats-replicas", "NATS_REPLICAS", SINK_OPT_COUNT, N(replicas), "N",
     "replicas of a stream pgstream creates, 1-5 (default 1)", "1", NULL},
    {"nats-duplicate-window", "NATS_DUPLICATE_WINDOW", SINK_OPT_SECONDS, N(duplicate_window_ms),
     "SECONDS", "duplicate window of a stream pgstream creates (default 120)", "120", NULL},
    {"nats-creds", "NATS_CREDS", SINK_OPT_STRING, N(creds), "FILE",
     "a NATS credentials file (JWT and NKey seed)", NULL, NULL},
    {0},
};

/* Events awaiting acks before the sink blocks. */
#define NATS_WINDOW       8192
#define NATS_WINDOW_BYTES (8u << 20)
/* Room beyond the window for events that arrive while the daemon finishes
 * a message after being told to stop. */
#define NATS_RING              (4 * NATS_WINDOW)
#define NATS_ACK_WAIT_MS       5000 /* a publish not acknowledged by then failed */
#define NATS_API_WAIT_MS       5000 /* stream info, last message, stream creation */
#define NATS_CONNECT_WAIT_MS   2000
#define NATS_BACKOFF_FIRST_MS  100
#define NATS_BACKOFF_MAX_MS    5000
#define NATS_RECONNECT_WAIT_MS 250
#define NATS_DRAIN_MS          1000 /* the ack subscription's, at close */

#define HDR_EXPECT "Nats-Expected-Last-Sequence"

/* Where an event stands in the stream of changes: the same every time the
 * server sends it (see kafka_offsets.h, which places events the same way). */
struct pos {
	uint64_t txn;   /* commit LSN (a non-transactional message: its LSN); 0: none */
	uint64_t index; /* number within it, from 1 */
};

static int pos_cmp(const struct pos *a, const struct pos *b)
{
	if (a->txn != b->txn)
		return a->txn < b->txn ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* "0/16B3F20:3" */
static int pos_format(const struct pos *p, char *out, size_t n)
{
	char lsn[LSN_STR_MAX];

	lsn_format(p->txn, lsn);
	return snprintf(out, n, "%s:%" PRIu64, lsn, p->index);
}

static bool pos_parse(const char *s, struct pos *p)
{
	char lsn[LSN_STR_MAX];
	const char *colon = s ? strchr(s, ':') : NULL;
	char *end;

	if (colon == NULL || (size_t)(colon - s) >= sizeof lsn)
		return false;
	memcpy(lsn, s, (size_t)(colon - s));
	lsn[colon - s] = '\0';
	if (!lsn_parse(lsn, &p->txn) || colon[1] < '0' || colon[1] > '9')
		return false;
	errno = 0;
	p->index = strtoull(colon + 1, &end, 10);
	return errno == 0 && *end == '\0' && p->index > 0;
}

enum entry_state {
	E_QUEUED, /* not published yet (a replay is due): msg is ours */
	E_SENT,   /* published, awaiting its ack: libnats holds msg */
	E_ACKED,  /* in the stream; msg destroyed */
	E_FAILED, /* its publish failed: msg is ours again, to send again */
};

/* The events not yet confirmed, in ring[seq % NATS_RING]: the daemon
 * numbers events one after the other. */
struct entry {
	natsMsg *msg; /* ours: libnats copies what it publishes */
	uint64_t seq; /* the event's number */
	struct pos pos;
	size_t bytes;
	unsigned char state; /* enum entry_state */
	bool after_read;     /* the first publish after the stream's end was read */
	natsStatus status;   /* E_FAILED: why */
	jsErrCode code;
};

struct nats_sink {
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *acks; /* {inbox}.* */
	char inbox[64];
	char *stream, *prefix, *url;

	/* Shared with the ack handler (a libnats thread): the entries' states
	 * and msg pointers, and the counters next to them. */
	pthread_mutex_t mu;
	bool mu_ready;
	struct entry *ring;
	size_t head, n;      /* the unconfirmed events, oldest first */
	size_t sent;         /* entries in E_SENT */
	int64_t last_ack_ms; /* when the last ack came (or the first of the sent went) */
	bool failure;        /* some entry is E_FAILED */
	uint64_t fail_seq;
	char fail_text[256]; /* the earliest failed entry's reason */
	bool woken;          /* a byte is in the pipe */
	uint64_t duplicates, disconnects, reconnects;
	char async_error[256]; /* a permission violation libnats reported */

	int wake[2]; /* the ack handler writes, the loop polls and reads */
	size_t bytes_inflight;
	uint64_t next_expect; /* the stream's last sequence once what was published is in */
	struct pos stored;    /* the last position the stream held when it was read */
	bool read_pending;    /* the next publish is the first after reading it */
	bool replay;          /* publishing waits for a replay */
	int64_t replay_at;
	unsigned attempts;
	uint64_t disconnects_seen, reconnects_seen;
	uint64_t skipped, stored_on_replay, republished;
	int64_t max_payload;
	int64_t replicas; /* the stream's, for the log */
	double window_s;  /* its duplicate window */

	struct buf subj;
	struct sink_failure f; /* the first failure that will not pass */
};

/* ---- configuration ------------------------------------------------------ */

/* A stream name may not hold what NATS subjects and API subjects use. */
static bool stream_name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s == '.' || *s == '*' || *s == '>' || *s == '/' || *s == '\\' ||
		    (unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* A subject prefix: dot-separated tokens, none empty, no wildcards. */
static bool prefix_ok(const char *s)
{
	bool token = false;

	for (; *s; s++) {
		if (*s == '.') {
			if (!token)
				return false;
			token = false;
		} else if (*s == '*' || *s == '>' || (unsigned char)*s <= ' ' || *s == 0x7f) {
			return false;
		} else {
			token = true;
		}
	}
	return token;
}

static int nats_check_config(const struct sink_config *cfg, void *settings, struct err *e)
{
	struct sink_nats_config *c = settings;

	c->prefix = cfg->prefix;

	if (c->url == NULL || *c->url == '\0')
		return err_set(e, "invalid options: --sink nats needs --nats-url "
		                  "nats://HOST[:PORT] (or NATS_URL)");
	if (strncmp(c->url, "nats://", 7) != 0 && strncmp(c->url, "tls://", 6) != 0)
		return err_set(e,
		               "invalid value for --nats-url: \"%.60s\" (expected "
		               "nats://[USER:PASSWORD@]HOST[:PORT], comma-separated for several)",
		               c->url);
	if (c->prefix == NULL || !prefix_ok(c->prefix))
		return err_set(e,
		               "invalid value for --topic-prefix: \"%.60s\" is not a NATS subject "
		               "prefix (dot-separated tokens without spaces, * or >)",
		               c->prefix ? c->prefix : "");
	if (c->stream && !stream_name_ok(c->stream))
		return err_set(e,
		               "invalid value for --nats-stream: \"%.60s\" (a stream name has no "
		               "spaces, '.', '*', '>', '/' or '\\')",
		               c->stream);
	if (c->replicas < 1 || c->replicas > 5)
		return err_set(e, "invalid value for --nats-replicas: %d (1 to 5)", c->replicas);
	if (c->duplicate_window_ms < 0)
		return err_set(e, "invalid value for --nats-duplicate-window: negative");
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static struct entry *entry_at(struct nats_sink *k, size_t i)
{
	return &k->ring[(k->head + i) % NATS_RING];
}

/* Record why en failed (called with mu held). */
static void mark_failed(struct nats_sink *k, struct entry *en, natsStatus st, jsErrCode code,
                        const char *why)
{
	en->state = E_FAILED;
	en->status = st;
	en->code = code;
	if (!k->failure || en->seq < k->fail_seq) {
		k->fail_seq = en->seq;
		snprintf(k->fail_text, sizeof k->fail_text, "%s", why);
	}
	k->failure = true;
}

/* libnats's last error text for this thread, without its stack. */
static const char *nats_why(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);

	return t && *t ? t : natsStatus_GetText(s);
}

/* Called with mu held. */
static void wake_loop(struct nats_sink *k)
{
	if (!k->woken && write(k->wake[1], "", 1) == 1)
		k->woken = true;
}

/* A failure a healthy system gets over (see the top). */
static bool transient(natsStatus s, jsErrCode code)
{
	if (code == 0)
		return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ||
		       s == NATS_CONNECTION_CLOSED || s == NATS_CONNECTION_DISCONNECTED ||
		       s == NATS_INSUFFICIENT_BUFFER || s == NATS_IO_ERROR ||
		       s == NATS_STALE_CONNECTION || s == NATS_NOT_YET_CONNECTED ||
		       s == NATS_DRAINING;
	return code == JSClusterNotAvailErr || code == JSClusterNotLeaderErr ||
	       code == JSStreamWrongLastSequenceErr;
}

/* ---- libnats's threads ------------------------------------------------------ */

/* A stream's answer to a publish: {"stream":"app","seq":7} (with
 * "duplicate":true for a Nats-Msg-Id it had), {"error":{"code":400,
 * "err_code":10071,"description":"wrong last sequence: 6"}}, or a status
 * message with no responders. */
static void ack_cb(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct nats_sink *k = closure;
	const char *subj = natsMsg_GetSubject(msg);
	size_t il = strlen(k->inbox);
	struct entry *en;
	uint64_t seq;
	char *end;

	(void)nc;
	(void)sub;
	if (strlen(subj) <= il + 1 || subj[il] != '.') {
		natsMsg_Destroy(msg);
		return;
	}
	seq = strtoull(subj + il + 1, &end, 10);
	pthread_mutex_lock(&k->mu);
	en = &k->ring[seq % NATS_RING];
	if (*end != '\0' || k->n == 0 || en->seq != seq || en->state != E_SENT) {
		pthread_mutex_unlock(&k->mu); /* late, after its publish was given up */
		natsMsg_Destroy(msg);
		return;
	}
	k->sent--;
	k->last_ack_ms = clock_ms();
	if (natsMsg_IsNoResponders(msg)) {
		mark_failed(k, en, NATS_NO_RESPONDERS, 0,
		            "no responders: the stream has no leader");
	} else {
		struct nats_reply r;

		nats_reply_parse(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &r);
		if (r.kind == NATS_REPLY_ACK) {
			en->state = E_ACKED;
			k->duplicates += r.duplicate;
		} else if (r.kind == NATS_REPLY_ERROR) {
			mark_failed(k, en, NATS_ERR, (jsErrCode)r.err_code, r.description);
		} else {
			mark_failed(k, en, NATS_ERR, 0, "an answer that is not a publish's ack");
		}
	}
	wake_loop(k);
	pthread_mutex_unlock(&k->mu);
	natsMsg_Destroy(msg);
}

static void disconnected_cb(natsConnection *nc, void *closure)
{
	struct nats_sink *k = closure;

	(void)nc;
	pthread_mutex_lock(&k->mu);
	k->disconnects++;
	wake_loop(k);
	pthread_mutex_unlock(&k->mu);
}

static void reconnected_cb(natsConnection *nc, void *closure)
{
	struct nats_sink *k = closure;

	(void)nc;
	pthread_mutex_lock(&k->mu);
	k->reconnects++;
	wake_loop(k);
	pthread_mutex_unlock(&k->mu);
}

/* Asynchronous errors: a publish the account may not make is answered with
 * nothing but this, and would otherwise be retried for ever. */
static void error_cb(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	struct nats_sink *k = closure;
	char text[256];

	(void)sub;
	if (err != NATS_NOT_PERMITTED)
		return;
	(void)nc;
	snprintf(text, sizeof text, "%s", natsStatus_GetText(err));
	pthread_mutex_lock(&k->mu);
	if (k->async_error[0] == '\0')
		snprintf(k->async_error, sizeof k->async_error, "%s", text);
	wake_loop(k);
	pthread_mutex_unlock(&k->mu);
}

/* ---- the stream -------------------------------------------------------------- */

/* Read the stream's last sequence and, from its last message, the last
 * position stored. 0; 1 when it could not be read now (why set: retry);
 * -1 when it never will be (fail set). */
static int read_end(struct nats_sink *k, char *why, size_t whylen)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsMsg *m = NULL;
	const char *id = NULL;
	uint64_t last;
	natsStatus s;

	s = js_GetStreamInfo(&si, k->js, k->stream, NULL, &jerr);
	if (s != NATS_OK) {
		snprintf(why, whylen, "could not read stream %s: %s", k->stream, nats_why(s));
		if (jerr == JSStreamNotFoundErr) {
			sink_fail(
			    &k->f,
			    "NATS stream %s is gone (deleted while pgstream published to it); "
			    "nothing after the last acknowledged event was acknowledged",
			    k->stream);
			return -1;
		}
		return 1;
	}
	last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	k->next_expect = last;
	k->read_pending = true;
	if (last == 0)
		return 0;
	s = js_GetMsg(&m, k->js, k->stream, last, NULL, &jerr);
	if (s != NATS_OK) {
		if (jerr == JSNoMessageFoundErr)
			return 0; /* deleted or aged out: no position to skip to */
		snprintf(why, whylen, "could not read the last message of stream %s: %s", k->stream,
		         nats_why(s));
		return 1;
	}
	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || !pos_parse(id, &k->stored)) {
		sink_fail(
		    &k->f,
		    "the last message of NATS stream %s (sequence %" PRIu64 ", subject %s) was not "
		    "published by pgstream: give pgstream a stream of its own (--nats-stream)",
		    k->stream, last, natsMsg_GetSubject(m));
		natsMsg_Destroy(m);
		return -1;
	}
	natsMsg_Destroy(m);
	return 0;
}

/* The stream exists (created if it is missing and allowed) and takes every
 * subject pgstream publishes to. */
static int ensure_stream(struct nats_sink *k, const struct sink_nats_config *c, struct err *e)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	char wild[512];
	bool ok = false;

	snprintf(wild, sizeof wild, "%s.>", k->prefix);
	s = js_GetStreamInfo(&si, k->js, k->stream, NULL, &jerr);
	if (s == NATS_NOT_FOUND && jerr == JSStreamNotFoundErr) {
		jsStreamConfig sc;
		const char *subjects[1] = {wild};

		if (!c->create_stream)
			return err_set(
			    e,
			    "NATS stream %s does not exist (and --nats-create-stream is "
			    "false): create it with subjects %s, or let pgstream create it",
			    k->stream, wild);
		jsStreamConfig_Init(&sc);
		sc.Name = k->stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Replicas = c->replicas;
		sc.Duplicates = (int64_t)c->duplicate_window_ms * 1000000;
		s = js_AddStream(&si, k->js, &sc, NULL, &jerr);
		if (s != NATS_OK)
			return err_set(
			    e, "could not create NATS stream %s (subjects %s, %d replicas): %s",
			    k->stream, wild, c->replicas, nats_why(s));
		log_info("nats: created stream %s (subjects %s, file storage, %d replicas, "
		         "duplicate window %.0f s)",
		         k->stream, wild, c->replicas, (double)c->duplicate_window_ms / 1000);
	} else if (s != NATS_OK) {
		if (s == NATS_NO_RESPONDERS || jerr == JSNotEnabledErr ||
		    jerr == JSNotEnabledForAccountErr)
			return err_set(
			    e,
			    "could not use JetStream at %s: %s (is the server started with "
			    "JetStream, nats-server -js?)",
			    k->url, nats_why(s));
		return err_set(e, "could not read NATS stream %s: %s", k->stream, nats_why(s));
	}
	for (int i = 0; i < si->Config->SubjectsLen; i++)
		ok = ok || nats_subject_covers(si->Config->Subjects[i], k->prefix);
	if (!ok) {
		char list[256] = "";

		for (int i = 0; i < si->Config->SubjectsLen; i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			         i ? ", " : "", si->Config->Subjects[i]);
		jsStreamInfo_Destroy(si);
		return err_set(
		    e,
		    "NATS stream %s does not take the subjects pgstream publishes to (%s; "
		    "its subjects: %s): add %s to it, or name another --nats-stream",
		    k->stream, wild, list[0] ? list : "none", wild);
	}
	k->replicas = si->Config->Replicas;
	k->window_s = (double)si->Config->Duplicates / 1e9;
	jsStreamInfo_Destroy(si);
	return 0;
}

/* ---- publishing ---------------------------------------------------------------- */

/* Publish entry en (E_QUEUED or E_FAILED) expecting the stream's last
 * sequence to be k->next_expect. 0 sent (or its failure recorded for a
 * replay); -1 with fail set on a failure that will not pass. */
static int publish(struct nats_sink *k, struct entry *en)
{
	natsStatus s = NATS_OK;
	char expect[24];

	if (k->next_expect == 0) {
		natsMsgHeader_Delete(en->msg, HDR_EXPECT); /* sent before with one */
	} else {
		snprintf(expect, sizeof expect, "%" PRIu64, k->next_expect);
		s = natsMsgHeader_Set(en->msg, HDR_EXPECT, expect);
	}
	pthread_mutex_lock(&k->mu);
	en->state = E_SENT;
	en->after_read = k->read_pending;
	if (k->sent++ == 0)
		k->last_ack_ms = clock_ms();
	pthread_mutex_unlock(&k->mu);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(k->nc, en->msg);
	if (s == NATS_OK) {
		k->next_expect++;
		k->read_pending = false;
		return 0;
	}
	pthread_mutex_lock(&k->mu);
	if (en->state == E_SENT) { /* (no ack can come for it) */
		k->sent--;
		mark_failed(k, en, s, 0, nats_why(s));
	}
	pthread_mutex_unlock(&k->mu);
	if (s == NATS_MAX_PAYLOAD) {
		char lsn[LSN_STR_MAX];

		lsn_format(en->pos.txn, lsn);
		sink_fail(
		    &k->f,
		    "could not publish the event of the transaction at %s to NATS: its %zu bytes "
		    "are more than the server's max_payload (%" PRId64
		    " bytes); raise max_payload, "
		    "then restart: nothing from it on was acknowledged",
		    lsn, en->bytes, k->max_payload);
		return -1;
	}
	return 0;
}

static int64_t backoff_ms(unsigned attempts)
{
	int64_t d = NATS_BACKOFF_FIRST_MS;

	for (unsigned i = 0; i < attempts && d < NATS_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d > NATS_BACKOFF_MAX_MS ? NATS_BACKOFF_MAX_MS : d;
}

/* Every publish in flight has its answer and one failed: read where the
 * stream stands and publish again, in order, what it lacks. */
static void replay(struct sink *s)
{
	struct nats_sink *k = s->backend;
	char why[320];
	size_t n;
	int rc;

	rc = read_end(k, why, sizeof why);
	if (rc < 0)
		return;
	if (rc > 0) {
		k->attempts++;
		k->replay_at = clock_ms() + backoff_ms(k->attempts);
		if (k->attempts == 1 || k->attempts % 10 == 0)
			log_warn("nats: %s; trying again in %.1f s (nothing after the last "
			         "acknowledged event is acknowledged)",
			         why, (double)backoff_ms(k->attempts) / 1000);
		return;
	}
	pthread_mutex_lock(&k->mu);
	k->failure = false;
	k->fail_text[0] = '\0';
	n = k->n;
	pthread_mutex_unlock(&k->mu);
	k->replay = false;
	for (size_t i = 0; i < n && !k->f.failed; i++) {
		struct entry *en = entry_at(k, i);

		if (en->state == E_ACKED)
			continue;
		if (pos_cmp(&en->pos, &k->stored) <= 0) { /* the stream has it */
			natsMsg_Destroy(en->msg);
			pthread_mutex_lock(&k->mu);
			en->msg = NULL;
			en->state = E_ACKED;
			pthread_mutex_unlock(&k->mu);
			k->stored_on_replay++;
			continue;
		}
		k->republished++;
		if (publish(k, en) < 0)
			return;
		if (k->failure) /* not taken now: settle() schedules the next round */
			break;
	}
}

/* Confirm the acknowledged front; start a replay once a failure's turn
 * has come. */
static void settle(struct sink *s)
{
	struct nats_sink *k = s->backend;
	char drain[64];
	bool failure;
	size_t sent;
	uint64_t disc, reco;

	while (read(k->wake[0], drain, sizeof drain) > 0)
		;
	pthread_mutex_lock(&k->mu);
	k->woken = false;
	while (k->n > 0 && entry_at(k, 0)->state == E_ACKED) {
		struct entry *en = entry_at(k, 0);

		s->confirmed_seq = en->seq;
		k->bytes_inflight -= en->bytes;
		natsMsg_Destroy(en->msg);
		en->msg = NULL;
		k->head = (k->head + 1) % NATS_RING;
		k->n--;
		k->attempts = 0;
	}
	if (k->sent > 0 && clock_ms() - k->last_ack_ms >= NATS_ACK_WAIT_MS) {
		/* Nothing heard for that long: every publish in flight failed. */
		for (size_t i = 0; i < k->n; i++)
			if (entry_at(k, i)->state == E_SENT)
				mark_failed(k, entry_at(k, i), NATS_TIMEOUT, 0,
				            "no ack from the stream within 5 s");
		k->sent = 0;
	}
	failure = k->failure;
	sent = k->sent;
	disc = k->disconnects;
	reco = k->reconnects;
	if (k->async_error[0])
		sink_fail(
		    &k->f,
		    "NATS refused a publish: %s; nothing after the last acknowledged event was "
		    "acknowledged",
		    k->async_error);
	pthread_mutex_unlock(&k->mu);

	if (disc != k->disconnects_seen) {
		k->disconnects_seen = disc;
		log_warn("nats: disconnected from the server; libnats reconnects (%zu events "
		         "unacknowledged, nothing after them acknowledged)",
		         k->n);
	}
	if (reco != k->reconnects_seen) {
		k->reconnects_seen = reco;
		log_info("nats: reconnected");
	}
	if (k->f.failed)
		return;
	if (failure && !k->replay) {
		struct entry *first = NULL;

		for (size_t i = 0; i < k->n && first == NULL; i++)
			if (entry_at(k, i)->state == E_FAILED)
				first = entry_at(k, i);
		if (first && !transient(first->status, first->code)) {
			sink_fail(
			    &k->f,
			    "NATS JetStream refused event %" PRIu64
			    " (stream %s): %s; nothing from it "
			    "on was acknowledged: fix the stream, then restart to send it again",
			    first->seq, k->stream, k->fail_text);
			return;
		}
		if (first && first->code == JSStreamWrongLastSequenceErr && first->after_read) {
			sink_fail(
			    &k->f,
			    "NATS stream %s took a message pgstream did not publish (%s): give "
			    "pgstream a stream of its own (--nats-stream)",
			    k->stream, k->fail_text);
			return;
		}
		k->replay = true;
		k->attempts++;
		k->replay_at = clock_ms() + backoff_ms(k->attempts);
		if (k->attempts == 1 || k->attempts % 10 == 0)
			log_warn("nats: a publish failed (%s); publishing again from event %" PRIu64
			         " once the %zu in flight are answered",
			         k->fail_text, first ? first->seq : 0, sent);
	}
	if (k->replay && sent == 0 && clock_ms() >= k->replay_at)
		replay(s);
}

static void update_blocked(struct sink *s)
{
	struct nats_sink *k = s->backend;

	s->blocked = !k->f.failed &&
	             (k->replay || k->n >= NATS_WINDOW || k->bytes_inflight >= NATS_WINDOW_BYTES);
}

/* ---- the loop's hooks ------------------------------------------------------------- */

static void nats_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	struct nats_sink *k = s->backend;
	size_t sent;
	int64_t at;

	if (k->f.failed)
		return;
	if (ps->nfds < SINK_POLL_MAX)
		ps->fds[ps->nfds++] = (struct pollfd){.fd = k->wake[0], .events = POLLIN};
	pthread_mutex_lock(&k->mu);
	sent = k->sent;
	at = k->last_ack_ms + NATS_ACK_WAIT_MS;
	pthread_mutex_unlock(&k->mu);
	if (k->replay || sent > 0) { /* a replay's time, or an ack's deadline */
		int64_t wait = (k->replay ? k->replay_at : at) - clock_ms();

		if (wait < 0)
			wait = 0;
		if (ps->timeout_ms < 0 || wait < ps->timeout_ms)
			ps->timeout_ms = (int)wait;
	}
}

static int nats_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	struct nats_sink *k = s->backend;

	(void)ps; /* settle() reads the pipe without waiting */
	settle(s);
	update_blocked(s);
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

/* The subject of an event: {prefix}.{schema}.{table}, with what a subject
 * token cannot hold ('.', '*', '>', spaces) as '_'. */
static void subject_for(struct nats_sink *k, const struct sink_record *rec)
{
	buf_clear(&k->subj);
	buf_puts(&k->subj, k->prefix);
	if (rec->schema == NULL) {
		buf_puts(&k->subj, ".messages");
		return;
	}
	for (int part = 0; part < 2; part++) {
		const char *p = part ? rec->table : rec->schema;

		buf_putc(&k->subj, '.');
		if (*p == '\0')
			buf_putc(&k->subj, '_');
		for (; *p; p++)
			buf_putc(&k->subj, *p == '.' || *p == '*' || *p == '>' ||
			                           (unsigned char)*p <= ' ' || *p == 0x7f
			                       ? '_'
			                       : *p);
	}
}

static int nats_event_routed(struct sink *s, uint64_t seq, const struct sink_record *rec,
                             struct err *e)
{
	struct nats_sink *k = s->backend;
	size_t len = s->out.len;
	struct entry *en;
	struct pos pos = {rec->transactional ? rec->commit_lsn : rec->lsn, rec->index};
	natsMsg *m = NULL;
	natsStatus st;
	char id[64], reply[96];

	if (k->f.failed)
		return sink_failed(&k->f, e);
	if (len == 0 || s->out.data[len - 1] != '\n')
		return err_setk(e, ERR_SINK, "could not send event %" PRIu64 ": not one JSON line",
		                seq);
	if (k->n >= NATS_RING - 1)
		return err_setk(e, ERR_SINK, "could not queue an event for NATS: %d unacknowledged",
		                NATS_RING);
	if (pos_cmp(&pos, &k->stored) <= 0) {
		/* The stream has it from an earlier run: confirmed once the
		 * events before it are. */
		k->skipped++;
	} else {
		subject_for(k, rec);
		if (!buf_ok(&k->subj))
			return err_setk(e, ERR_SINK,
			                "could not queue an event for NATS: out of memory");
		snprintf(reply, sizeof reply, "%s.%" PRIu64, k->inbox, seq);
		st = natsMsg_Create(&m, k->subj.data, reply, s->out.data, (int)(len - 1));
		pos_format(&pos, id, sizeof id);
		if (st == NATS_OK)
			st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
		if (st != NATS_OK) {
			natsMsg_Destroy(m);
			return err_setk(e, ERR_SINK,
			                "could not make a NATS message of event %" PRIu64 ": %s",
			                seq, nats_why(st));
		}
	}
	/* The slot may still be read by a late ack for the event RING before. */
	pthread_mutex_lock(&k->mu);
	if (k->n == 0)
		k->head = seq % NATS_RING; /* so that ring[seq % NATS_RING] is seq's */
	en = entry_at(k, k->n);
	*en = (struct entry){
	    .msg = m, .seq = seq, .pos = pos, .bytes = len, .state = m ? E_QUEUED : E_ACKED};
	k->n++;
	pthread_mutex_unlock(&k->mu);
	k->bytes_inflight += len;
	s->written_seq = seq;
	buf_clear(&s->out);
	if (en->state == E_QUEUED && !k->replay) {
		bool failure;

		pthread_mutex_lock(&k->mu);
		failure = k->failure;
		pthread_mutex_unlock(&k->mu);
		if (!failure && publish(k, en) < 0)
			return sink_failed(&k->f, e);
	}
	update_blocked(s);
	return 0;
}

/* Never waits: what the stream has acknowledged by now is confirmed. */
static int nats_flush(struct sink *s, bool durable, struct err *e)
{
	struct nats_sink *k = s->backend;

	(void)durable; /* an ack means the stream stored it, as its replicas keep it */
	settle(s);
	update_blocked(s);
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

static uint64_t nats_resume_lsn(const struct sink *s)
{
	const struct nats_sink *k = s->backend;

	return k->stored.txn;
}

/* A comma-separated list of URLs, each a server to try. */
static natsStatus set_servers(natsOptions *o, const char *list)
{
	const char *servers[16];
	char *copy = strdup(list), *save = NULL;
	int n = 0;
	natsStatus st;

	if (copy == NULL)
		return NATS_NO_MEMORY;
	for (char *t = strtok_r(copy, ", ", &save); t && n < 16; t = strtok_r(NULL, ", ", &save))
		servers[n++] = t;
	st = natsOptions_SetServers(o, servers, n);
	free(copy);
	return st;
}

/* url without the user and password of each of its servers: for messages. */
static void redact_url(const char *url, char *out, size_t n)
{
	size_t o = 0;

	while (*url && o + 1 < n) {
		size_t len = strcspn(url, ","), scheme;
		const char *at = memchr(url, '@', len), *sep = strstr(url, "://");

		scheme = sep && sep < url + len ? (size_t)(sep + 3 - url) : 0;
		o += (size_t)snprintf(out + o, n - o, "%.*s", (int)scheme, url);
		if (at && o < n)
			o += (size_t)snprintf(out + o, n - o, "%.*s", (int)(url + len - at - 1),
			                      at + 1);
		else if (o < n)
			o += (size_t)snprintf(out + o, n - o, "%.*s", (int)(len - scheme),
			                      url + scheme);
		url += len;
		if (*url == ',' && o + 1 < n) {
			out[o++] = ',';
			url++;
		}
	}
	out[o < n ? o : n - 1] = '\0';
}

/* ---- open and close ---------------------------------------------------------------- */

static int nats_open(struct sink *s, const struct sink_config *cfg, void *settings, struct err *e)
{
	struct nats_sink *k = s->backend;
	const struct sink_nats_config *c = settings;
	jsOptions jo;
	natsInbox *inbox = NULL;
	char acks[80];
	natsStatus st;
	char why[320], at[96];
	int rc;

	k->wake[0] = k->wake[1] = -1;
	buf_init(&k->subj, 0);
	if (pthread_mutex_init(&k->mu, NULL) != 0)
		return err_set(e, "could not open the NATS sink: %s", strerror(errno));
	k->mu_ready = true;
	if (nats_check_config(cfg, settings, e) < 0)
		return -1;
	k->prefix = strdup(c->prefix);
	k->url = strdup(c->url);
	if (c->stream) {
		k->stream = strdup(c->stream);
	} else if ((k->stream = strdup(c->prefix)) != NULL) {
		for (char *p = k->stream; *p; p++)
			if (*p == '.')
				*p = '_';
	}
	k->ring = calloc(NATS_RING, sizeof *k->ring);
	if (k->prefix == NULL || k->url == NULL || k->stream == NULL || k->ring == NULL)
		return err_set(e, "could not open the NATS sink: out of memory");
	if (pipe(k->wake) < 0 || fcntl(k->wake[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(k->wake[1], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(k->wake[0], F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(k->wake[1], F_SETFD, FD_CLOEXEC) < 0)
		return err_set(e, "could not open the NATS sink: %s", strerror(errno));

	st = natsOptions_Create(&k->opts);
	if (st == NATS_OK)
		st = set_servers(k->opts, c->url);
	if (st == NATS_OK)
		st = natsOptions_SetName(k->opts, "pgstream");
	if (st == NATS_OK)
		st = natsOptions_SetTimeout(k->opts, NATS_CONNECT_WAIT_MS);
	/* Reconnect for ever: an outage only delays acknowledgement. */
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(k->opts, -1);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectWait(k->opts, NATS_RECONNECT_WAIT_MS);
	if (st == NATS_OK)
		st = natsOptions_SetDisconnectedCB(k->opts, disconnected_cb, k);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectedCB(k->opts, reconnected_cb, k);
	if (st == NATS_OK)
		st = natsOptions_SetErrorHandler(k->opts, error_cb, k);
	if (st == NATS_OK && c->creds)
		st = natsOptions_SetUserCredentialsFromFiles(k->opts, c->creds, NULL);
	if (st != NATS_OK)
		return err_set(e, "invalid NATS settings: %s", nats_why(st));
	redact_url(c->url, at, sizeof at);
	st = natsConnection_Connect(&k->nc, k->opts);
	if (st != NATS_OK)
		return err_set(e, "could not connect to NATS at %s: %s", at, nats_why(st));
	k->max_payload = natsConnection_GetMaxPayload(k->nc);

	jsOptions_Init(&jo);
	jo.Wait = NATS_API_WAIT_MS;
	st = natsConnection_JetStream(&k->js, k->nc, &jo);
	if (st == NATS_OK)
		st = natsInbox_Create(&inbox);
	if (st == NATS_OK) {
		snprintf(k->inbox, sizeof k->inbox, "%s", inbox);
		snprintf(acks, sizeof acks, "%s.*", inbox);
		natsInbox_Destroy(inbox);
		st = natsConnection_Subscribe(&k->acks, k->nc, acks, ack_cb, k);
	}
	/* The window bounds what can be waiting; libnats's default limit
	 * of 65536 messages is above it. */
	if (st != NATS_OK)
		return err_set(e, "could not use JetStream at %s: %s", at, nats_why(st));
	if (ensure_stream(k, c, e) < 0)
		return -1;
	rc = read_end(k, why, sizeof why);
	if (rc < 0)
		return err_set(e, "%s", k->f.msg);
	if (rc > 0)
		return err_set(e, "%s", why);
	if (k->stored.txn) {
		char p[64];

		pos_format(&k->stored, p, sizeof p);
		log_info("nats: connected to %s, stream %s (%" PRId64 " replicas, duplicate window "
		         "%.0f s) ends at sequence %" PRIu64
		         " with event %s: what the server sends "
		         "again up to there is skipped",
		         at, k->stream, k->replicas, k->window_s, k->next_expect, p);
	} else {
		log_info("nats: connected to %s, stream %s (%" PRId64 " replicas, duplicate window "
		         "%.0f s), subjects %s.{schema}.{table}",
		         at, k->stream, k->replicas, k->window_s, k->prefix);
	}
	return 0;
}

static void nats_close(struct sink *s)
{
	struct nats_sink *k = s->backend;

	if (k->skipped || k->duplicates || k->stored_on_replay)
		log_info("nats: %" PRIu64 " events skipped as already in the stream, %" PRIu64
		         " found stored on a retry, %" PRIu64
		         " dropped by the stream as duplicates",
		         k->skipped, k->stored_on_replay, k->duplicates);
	if (k->republished)
		log_info("nats: %" PRIu64 " events published again after a failure",
		         k->republished);
	/* Replies still queued in the ack subscription at its close are freed
	 * by its delivery thread as it ends, through libnats's garbage
	 * collector, which nats_CloseAndWait may have stopped by then: they
	 * would be lost (LeakSanitizer saw it under load). A drain hands them
	 * to ack_cb first, and waits at most NATS_DRAIN_MS. */
	if (k->acks && natsSubscription_DrainTimeout(k->acks, NATS_DRAIN_MS) == NATS_OK)
		natsSubscription_WaitForDrainCompletion(k->acks, NATS_DRAIN_MS);
	/* The messages still ours go while the library is up (its garbage
	 * collector takes them); the ring goes once its threads, which mark
	 * entries, have ended. */
	if (k->nc)
		natsConnection_Close(k->nc);
	natsSubscription_Destroy(k->acks);
	if (k->ring) {
		pthread_mutex_lock(&k->mu);
		for (size_t i = 0; i < k->n; i++) {
			struct entry *en = entry_at(k, i);

			natsMsg_Destroy(en->msg);
			en->msg = NULL;
		}
		pthread_mutex_unlock(&k->mu);
	}
	jsCtx_Destroy(k->js);
	natsConnection_Destroy(k->nc);
	natsOptions_Destroy(k->opts);
	if (k->nc || k->opts)
		nats_CloseAndWait(2000);
	free(k->ring);
	if (k->mu_ready)
		pthread_mutex_destroy(&k->mu);
	for (int i = 0; i < 2; i++)
		if (k->wake[i] >= 0)
			close(k->wake[i]);
	free(k->prefix);
	free(k->url);
	free(k->stream);
	buf_reset(&k->subj);
}

const struct sink_ops SINK_NATS = {
    .name = "nats",
    .backend_size = sizeof(struct nats_sink),
    .options = NATS_OPTIONS,
    .settings_size = sizeof(struct sink_nats_config),
    .json_lines_only = true,
    .check_config = nats_check_config,
    .open = nats_open,
    .event_routed = nats_event_routed,
    .positions_only = true,
    .flush = nats_flush,
    .adjust_pollset = nats_adjust_pollset,
    .process = nats_process,
    .resume_lsn = nats_resume_lsn,
    .close = nats_close,
};
