/*
 * sink_int.h — what a sink backend implements, as curl's vtls backends fill
 * a struct Curl_ssl: sink.c dispatches and owns the shared part (the output
 * buffer and the sequence numbers); each backend (one sink_*.c) fills an
 * ops table and keeps its own state in backend_size private bytes, which
 * sink.c allocates with the sink and nobody else reads.
 */
#ifndef PGSTREAM_SINK_INT_H
#define PGSTREAM_SINK_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "sink/sink.h"

struct sink_ops {
	const char *name;
	size_t backend_size; /* zeroed bytes at s->backend */
	/* Validate cfg without opening anything; NULL: nothing to check. */
	int (*check_config)(const struct sink_config *cfg, struct err *e);
	/* Set up from cfg. On failure *e is set; close is still called. */
	int (*open)(struct sink *s, const struct sink_config *cfg, struct err *e);
	/* An event has been appended to s->out and numbered seq: send it now
	 * or leave it buffered. */
	int (*event_done)(struct sink *s, uint64_t seq, struct err *e);
	/* Instead of event_done, for a backend that routes events by table
	 * and key: the same, with the event's record. NULL for backends that
	 * take bytes only; non-NULL makes sink_wants_records() true. */
	int (*event_routed)(struct sink *s, uint64_t seq, const struct sink_record *rec,
	                    struct err *e);
	/* event_routed reads only the record's names and positions, never its
	 * keys: the daemon leaves them NULL and skips computing them. */
	bool positions_only;
	/* Send everything buffered; if durable, also make it durable. Advances
	 * s->confirmed_seq as far as the backend knows it safe. */
	int (*flush)(struct sink *s, bool durable, struct err *e);
	/* Add the descriptors to wait on, lower ps->timeout_ms if the backend
	 * needs a turn sooner; NULL: nothing to wait on. */
	void (*adjust_pollset)(struct sink *s, struct sink_pollset *ps);
	/* The backend's turn after a wait; NULL: nothing to do. */
	int (*process)(struct sink *s, const struct sink_pollset *ps, struct err *e);
	/* Write out and make durable what it has, then reopen its output by
	 * name (SIGHUP, after logrotate moved the file). Returns 1 if it
	 * reopened, 0 if it kept the output it had (warned), -1 with *e set
	 * when what was buffered could not be made durable. NULL: nothing to
	 * reopen. */
	int (*reopen)(struct sink *s, struct err *e);
	/* See sink_resume_lsn(); NULL: 0. */
	uint64_t (*resume_lsn)(const struct sink *s);
	void (*close)(struct sink *s); /* release the backend's resources */
};

struct sink {
	const struct sink_ops *ops;
	struct buf out;         /* encoded events not yet handed on */
	uint64_t buffered_seq;  /* last event number appended to out */
	uint64_t written_seq;   /* last event handed to the OS / broker */
	uint64_t confirmed_seq; /* every event <= this is durable */
	size_t flush_threshold; /* event_done sends once out grows past this */
	bool blocked;           /* out holds data the backend cannot take now */
	void *backend;          /* ops->backend_size bytes */
};

/* The backends. */
extern const struct sink_ops SINK_STDOUT; /* sink_stdout.c */
extern const struct sink_ops SINK_FILE;   /* sink_file.c */
extern const struct sink_ops SINK_KAFKA;  /* sink_kafka.c */
extern const struct sink_ops SINK_ROTATE; /* sink_rotate.c */
#ifdef PGSTREAM_HAVE_WEBHOOK
extern const struct sink_ops SINK_WEBHOOK; /* sink_webhook.c */
#endif
#ifdef PGSTREAM_HAVE_REDIS
extern const struct sink_ops SINK_REDIS; /* sink_redis.c */
#endif

/* For backends writing files (sink_file.c): cut a partial last line a
 * crash left in the file open on fd, so that it ends between two events;
 * *boundary is then its size. */
int sink_file_repair(int fd, const char *path, off_t *boundary, struct err *e);

/* For backends on a file descriptor: write out to fd. On a non-blocking fd
 * that is full, keep the rest in out, set blocked and return 0; on an error
 * return -1 (ERR_SINK) with the unwritten rest still in out. written_seq
 * advances only when all is out. */
int sink_write_fd(struct sink *s, int fd, const char *what, struct err *e);

/* For backends on a file descriptor: wait for fd to take data while
 * blocked. */
void sink_poll_fd(struct sink *s, int fd, struct sink_pollset *ps);

/* Whether the wait on ps said fd may take data (or has failed, which the
 * next write reports). */
bool sink_fd_ready(const struct sink_pollset *ps, int fd);

#endif
