/*
 * sink.h — where events go.
 *
 * The sink owns an output buffer the encoder writes events straight into
 * (sink_buf), so an event is never copied between encoding and write(). The
 * daemon numbers events 1, 2, 3...; a sink accepts them in order and confirms
 * later, possibly much later (Kafka delivery reports, HTTP batches): the
 * confirmed sequence number says every event numbered <= it is durably out.
 * Only confirmed events may be acknowledged to Postgres (see checkpoint.h).
 * Sinks never see Postgres types: only bytes, sequence numbers and, for a
 * sink that routes events by table and key (Kafka), a neutral record of
 * each event (struct sink_record) that the daemon builds only for sinks
 * that ask for it (sink_wants_records), so stdout and files pay nothing.
 *
 * A sink with its own sockets, pipes or background threads tells the loop
 * what to wait on (sink_adjust_pollset: descriptors, and a deadline when it
 * needs time of its own) and gets its turn after every wait (sink_process),
 * where it serves its callbacks and confirms what was delivered. The loop
 * never looks inside: backends are private (sink_int.h).
 */
#ifndef PGSTREAM_SINK_H
#define PGSTREAM_SINK_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct sink;

enum sink_kind {
	SINK_KIND_DEFAULT, /* stdout, or the file --output names */
	SINK_KIND_STDOUT,
	SINK_KIND_FILE,
	SINK_KIND_KAFKA,
	SINK_KIND_WEBHOOK, /* built with libcurl only (PGSTREAM_HAVE_WEBHOOK) */
	SINK_KIND_REDIS,   /* built with hiredis only (PGSTREAM_HAVE_REDIS) */
};

/* The sinks this build has, for --help: a sink whose library was not found
 * at build time is left out. */
#ifdef PGSTREAM_HAVE_WEBHOOK
#define SINK_NAMES_WEBHOOK "|webhook"
#else
#define SINK_NAMES_WEBHOOK ""
#endif
#ifdef PGSTREAM_HAVE_REDIS
#define SINK_NAMES_REDIS "|redis"
#else
#define SINK_NAMES_REDIS ""
#endif
#define SINK_NAMES "stdout|file|kafka" SINK_NAMES_WEBHOOK SINK_NAMES_REDIS

/* The kind --sink NAME names: 1 and *kind set if this build has it, 0 if
 * it is a sink this build was made without (*library says which library it
 * lacked), -1 if no sink has that name. */
int sink_kind_named(const char *name, enum sink_kind *kind, const char **library);

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
};

/* --sink webhook (sink_webhook.c). */
struct sink_webhook_config {
	const char *url;
	const char *secret;  /* HMAC-SHA-256 key of the signature header; NULL: none */
	const char *headers; /* "Name: value" lines added to every request, or NULL */
	const char *prefix;  /* first part of every Idempotency-Key */
	const char *body;    /* "ndjson" (NULL) or "array" */
	int batch_events;    /* a batch closes at this many events, */
	int batch_bytes;     /* ... or before it would pass this many bytes, */
	int linger_ms;       /* ... or this long after its first event */
	int timeout_ms;      /* one request, connection included */
	int retry_max_ms;    /* cap of the backoff between retries */
};

/* --sink redis (sink_redis.c). */
struct sink_redis_config {
	const char *url;    /* redis://[:password@]host[:port][/db] */
	const char *prefix; /* streams are {prefix}:{schema}.{table} */
	long maxlen;        /* XADD MAXLEN ~ this; 0: no trimming */
};

struct sink_config {
	enum sink_kind kind;
	const char *output; /* NULL or "-": stdout, else a file to append to */
	bool fsync;         /* file: fsync before confirming */
	long rotate_bytes;  /* file: a new file past this many bytes; 0: never */
	int rotate_ms;      /* file: a new file once one is this old; 0: never */
	struct sink_kafka_config kafka;
	struct sink_webhook_config webhook;
	struct sink_redis_config redis;
};

/*
 * What a routing sink learns of each event besides its bytes. Borrowed for
 * the sink_event_done() call only: a backend that keeps an event copies
 * what it needs.
 */
struct sink_record {
	const char *schema;  /* NULL for a logical message */
	const char *table;   /* NULL for a logical message */
	const char *key;     /* the key as a compact JSON object; NULL: none */
	size_t key_len;      /* ... e.g. {"id":42}, {"prefix":"app"} */
	const char *old_key; /* an UPDATE that changed the key: the old one */
	size_t old_key_len;  /* ... when Postgres sent it; else NULL */
	bool delete;         /* a DELETE: the key's row is gone */
	bool transactional;  /* false only for a non-transactional message */
	uint64_t lsn;        /* the change's own WAL position */
	uint64_t commit_lsn; /* its transaction's commit record */
	uint32_t xid;        /* its transaction */
	/* The event's number within its transaction, from 1 (a non-
	 * transactional message: 1). With commit_lsn (a non-transactional
	 * message: lsn) it places the event in the stream the same way every
	 * time the server sends the transaction again, which lsn alone does
	 * not: a TRUNCATE of several tables, or COPY's multi-insert records,
	 * give several events one lsn. */
	uint64_t index;
};

/* Open the sink the config names. Returns NULL with *e set on failure. */
struct sink *sink_open(const struct sink_config *cfg, struct err *e);

/* Check cfg as sink_open would, without opening anything (no file, no
 * connection): -1 with *e set on a setting the backend refuses, so that a
 * bad configuration is reported at startup. */
int sink_check_config(const struct sink_config *cfg, struct err *e);
void sink_close(struct sink *s); /* flushes nothing; accepts NULL */

/* The buffer the encoder appends the next event to. */
struct buf *sink_buf(struct sink *s);

/* Whether the sink needs a struct sink_record with every event (keys,
 * tables); if not, sink_event_done takes NULL and nobody builds one. */
bool sink_wants_records(const struct sink *s);

/* Whether such a sink also reads the records' keys (key, old_key, delete);
 * if not, they are left NULL and nobody computes them. */
bool sink_wants_keys(const struct sink *s);

/* The event just appended to sink_buf() is number seq (the previous one
 * plus 1); rec describes it (NULL unless sink_wants_records). The backend
 * may send it now or keep it. -1 with *e set (ERR_SINK) if it cannot be
 * taken (too large, out of memory, a write failed, an earlier delivery
 * failed for good). */
int sink_event_done(struct sink *s, uint64_t seq, const struct sink_record *rec, struct err *e);

/* Send everything buffered (as far as the sink will take it now); if
 * durable, also make what was sent durable. Confirms what it can. */
int sink_flush(struct sink *s, bool durable, struct err *e);

/* Every event numbered <= this is durably out. */
uint64_t sink_confirmed(const struct sink *s);

/* Whether every event handed to the sink is confirmed: at shutdown the
 * daemon gives a sink that is not a bounded time to get there. */
bool sink_idle(const struct sink *s);

/* True while the sink takes no more (a pipe nobody reads, a full producer
 * queue): the daemon stops decoding, keeps the connection alive, and waits
 * on the sink's poll set until sink_process() clears it. */
bool sink_blocked(const struct sink *s);

/* The commit LSN of the last transaction (some of) whose events the sink
 * already holds from an earlier run (Kafka's exactly-once checkpoint), 0
 * if none: a server whose WAL has not reached it is not the one that wrote
 * it. */
uint64_t sink_resume_lsn(const struct sink *s);

/* What the loop waits on for the sink. */
#define SINK_POLL_MAX 4
struct sink_pollset {
	struct pollfd fds[SINK_POLL_MAX];
	unsigned nfds;
	int timeout_ms; /* the sink wants its turn within this; -1: no need */
};

/* Fill *ps (cleared first) with the descriptors the sink needs watched
 * now and the longest the loop may wait before giving it a turn. */
void sink_adjust_pollset(struct sink *s, struct sink_pollset *ps);

/* The sink's turn after a wait on ps (its revents filled in by poll, or
 * zero after a timeout): write what was blocked, serve delivery reports,
 * confirm. -1 with *e set (ERR_SINK) on a sink failure. */
int sink_process(struct sink *s, const struct sink_pollset *ps, struct err *e);

/* Reopen the output by its name (for logrotate), after writing out and
 * making durable everything buffered, so the old file ends with every
 * event before the reopen and the new one starts with the next. Returns 1
 * if reopened, 0 if there is nothing to reopen (stdout, Kafka) or the new
 * file could not be opened (warned; the open one is kept), -1 with *e set
 * (ERR_SINK) if the flush failed. */
int sink_reopen(struct sink *s, struct err *e);

/* Wait up to timeout_ms on the sink alone, then give it its turn. Returns
 * 1 if it may have made progress, 0 on timeout or signal, -1 with *e set. */
int sink_wait(struct sink *s, int timeout_ms, struct err *e);

#endif
