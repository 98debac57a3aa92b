/*
 * sink_stdout.c — events to standard output.
 *
 * An event counts as delivered once write() to fd 1 has returned: a pipe or
 * terminal offers no stronger promise. Output is batched (see sink.c) and
 * always sent before pgstream waits for more input, so a consumer sees each
 * change as soon as it is decoded.
 *
 * A pipe is switched to non-blocking mode: when its reader stops reading,
 * pgstream notices (EAGAIN) instead of hanging inside write(), stops
 * decoding, and keeps its replication connection alive with status updates
 * until the reader catches up (see daemon.c). The flags are put back at
 * close. Terminals and files stay blocking: they do not stall for long.
 */
#include "sink/sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int stdout_flush(struct sink *s, bool durable, struct err *e)
{
	(void)durable; /* written to the pipe or terminal is as durable as it gets */
	if (sink_write_fd(s, "stdout", e) < 0)
		return -1;
	s->confirmed_seq = s->written_seq;
	return 0;
}

static int stdout_event_done(struct sink *s, uint64_t seq, struct err *e)
{
	(void)seq;
	if (s->out.len < s->flush_threshold || s->blocked)
		return 0;
	return stdout_flush(s, false, e);
}

static void stdout_close(struct sink *s)
{
	if (s->restore_flags >= 0)
		fcntl(s->fd, F_SETFL, s->restore_flags);
}

static const struct sink_ops STDOUT_OPS = {
    .name = "stdout",
    .event_done = stdout_event_done,
    .flush = stdout_flush,
    .close = stdout_close,
};

struct sink *sink_stdout_open(const struct sink_config *cfg, struct err *e)
{
	struct sink *s = sink_alloc(&STDOUT_OPS);
	struct stat st;
	int flags;

	(void)cfg;
	if (s == NULL) {
		err_set(e, "could not open stdout sink: out of memory");
		return NULL;
	}
	s->fd = STDOUT_FILENO;
	if (fstat(s->fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
	    (flags = fcntl(s->fd, F_GETFL)) >= 0 && !(flags & O_NONBLOCK) &&
	    fcntl(s->fd, F_SETFL, flags | O_NONBLOCK) == 0)
		s->restore_flags = flags;
	return s;
}
