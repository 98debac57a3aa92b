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
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct sink;

/*
 * A setting a sink declares for itself (its ops' options, sink_int.h): the
 * core's option parser (config.c) reads it from flags, the environment and
 * .env like its own settings, and knows nothing more of it. The sink reads
 * the value from its own settings struct, at offset.
 */
enum sink_opt_kind {
	SINK_OPT_STRING,   /* non-empty text */
	SINK_OPT_BOOL,     /* true or false; a flag without a value is true */
	SINK_OPT_COUNT,    /* a whole number (int); ranges are the sink's check */
	SINK_OPT_SECONDS,  /* seconds, stored as int milliseconds */
	SINK_OPT_LINES,    /* repeatable: appended as a line (environment: one per line) */
	SINK_OPT_PROPERTY, /* KEY=VALUE, repeatable (environment: KEY=VALUE;KEY=VALUE) */
};

struct sink_option {
	const char *flag; /* without the leading "--" */
	const char *env;  /* NULL: flag only */
	enum sink_opt_kind kind;
	size_t offset; /* of its field in the sink's settings struct */
	const char *metavar;
	const char *help;
	const char *def; /* the default, as a user would write it; NULL: zero */
	/* Given as a flag while another sink is chosen: "--FLAG needs NEEDS";
	 * NULL: "--sink NAME". */
	const char *needs;
};

/* A sink option's value as the user gave it (config.c checked its syntax):
 * SINK_OPT_LINES and SINK_OPT_PROPERTY values are the '\n'-joined lines of
 * every occurrence. */
struct sink_value {
	const char *flag; /* the option's flag, without "--" */
	const char *value;
	bool from_flag; /* on the command line, not the environment or .env */
};

/* Whether --sink NAME names a sink: 1 if this build has it, 0 if it is a
 * sink this build was made without (*library says which library it
 * lacked), -1 if no sink has that name. */
int sink_named(const char *name, const char **library);

/* The names of the sinks this build has, "stdout|file|kafka|...". */
const char *sink_names(void);

/* The i-th option of all the sinks this build has (from 0), with its
 * sink's name in *sink; NULL past the last. */
const struct sink_option *sink_option_at(size_t i, const char **sink);

/* The option whose flag is the len bytes at flag, NULL if no sink has it. */
const struct sink_option *sink_option_flag(const char *flag, size_t len, const char **sink);

/* What every sink may read; each sink's own settings are in values. */
struct sink_config {
	const char *sink;   /* --sink NAME (sink_named() is 1); NULL: by output */
	const char *output; /* NULL or "-": stdout, else a file to append to */
	bool fsync;         /* file: fsync before confirming */
	long rotate_bytes;  /* file: a new file past this many bytes; 0: never */
	int rotate_ms;      /* file: a new file once one is this old; 0: never */
	/* file: none (NULL), gzip or zstd, for the closed files of a series */
	const char *rotate_compress;
	const char
	    *prefix;      /* --topic-prefix, default the slot (never NULL): names topics, streams */
	const char *slot; /* the replication slot */
	bool tx_events;   /* --tx-events: begin and commit events */
	const char *format;              /* --format as given; NULL: the daemon's choice */
	const struct sink_value *values; /* the sinks' own options, as given */
	size_t nvalues;
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
	bool boundary;       /* --tx-events: a transaction's begin or commit */
	/* Where a second record begins in the event's bytes, 0: none. Only
	 * debezium writes two, for an update that changed the key: the delete
	 * of the old row (under old_key) and the create of the new. */
	size_t second;
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
