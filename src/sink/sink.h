/*
 * sink.h — where events go, behind one ops table (curl's vtls model:
 * sink.c dispatches, one file per backend fills the table).
 *
 * The sink owns an output buffer the encoder writes events straight into
 * (sink_buf), so an event is never copied between encoding and write(). The
 * daemon numbers events 1, 2, 3...; a sink accepts them in order and confirms
 * later, possibly much later (Kafka delivery reports, HTTP batches): the
 * confirmed sequence number says every event numbered <= it is durably out.
 * Only confirmed events may be acknowledged to Postgres (see checkpoint.h).
 * Sinks never see Postgres types: only bytes and sequence numbers.
 */
#ifndef PGSTREAM_SINK_H
#define PGSTREAM_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

struct sink;

struct sink_ops {
	const char *name;
	/* An event has been appended to s->out and numbered seq. The backend may
	 * send it now or leave it buffered. */
	int (*event_done)(struct sink *s, uint64_t seq, struct err *e);
	/* Send everything buffered; if durable, also make it durable (fsync).
	 * Advances s->confirmed_seq as far as the backend knows it safe. */
	int (*flush)(struct sink *s, bool durable, struct err *e);
	void (*close)(struct sink *s);
};

struct sink {
	const struct sink_ops *ops;
	struct buf out;         /* encoded events not yet handed on */
	uint64_t buffered_seq;  /* last event number appended to out */
	uint64_t written_seq;   /* last event handed to the OS / broker */
	uint64_t confirmed_seq; /* every event <= this is durable */
	size_t flush_threshold; /* event_done sends once out grows past this */
	int fd;                 /* stdout and file backends */
	bool blocked;           /* the fd would block: out holds unwritten data */
	bool durable_writes;    /* file: fsync before confirming */
	char *path;             /* file backend */
	off_t boundary;         /* file: size at the end of the last whole write */
	int restore_flags;      /* stdout: fcntl flags to put back at close, or -1 */
};

struct sink_config {
	const char *output; /* NULL or "-": stdout */
	bool fsync;
};

/* Open the sink the config names. Returns NULL with *e set on failure. */
struct sink *sink_open(const struct sink_config *cfg, struct err *e);
void sink_close(struct sink *s); /* flushes nothing; accepts NULL */

static inline struct buf *sink_buf(struct sink *s)
{
	return &s->out;
}
int sink_event_done(struct sink *s, uint64_t seq, struct err *e);
int sink_flush(struct sink *s, bool durable, struct err *e);
static inline uint64_t sink_confirmed(const struct sink *s)
{
	return s->confirmed_seq;
}

/* True while the sink cannot take more (a pipe nobody reads): the daemon
 * stops decoding, keeps the connection alive, and waits with sink_wait(). */
static inline bool sink_blocked(const struct sink *s)
{
	return s->blocked;
}

/* Wait up to timeout_ms for a blocked sink to accept data again. Returns 1
 * when it may, 0 on timeout or signal. */
int sink_wait(struct sink *s, int timeout_ms);

/* Backends. */
struct sink *sink_stdout_open(const struct sink_config *cfg, struct err *e);
struct sink *sink_file_open(const struct sink_config *cfg, struct err *e);

/* For backends: allocate a sink around ops. */
struct sink *sink_alloc(const struct sink_ops *ops);
/* Write out to fd. On a non-blocking fd that is full, keeps the rest in out,
 * sets blocked and returns 0; on an error returns -1 (ERR_SINK) with the
 * unwritten rest still in out. written_seq advances only when all is out. */
int sink_write_fd(struct sink *s, const char *what, struct err *e);

#endif
