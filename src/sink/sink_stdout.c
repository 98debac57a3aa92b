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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink/sink_int.h"

struct stdout_sink {
	int restore_flags; /* fcntl flags to put back at close, or -1 */
};

static int stdout_flush(struct sink *s, bool durable, struct err *e)
{
	(void)durable; /* written to the pipe or terminal is as durable as it gets */
	if (sink_write_fd(s, STDOUT_FILENO, "stdout", e) < 0)
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

/* A blocked pipe: wait until its reader has made room. */
static void stdout_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	sink_poll_fd(s, STDOUT_FILENO, ps);
}

static int stdout_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	if (s->blocked && sink_fd_ready(ps, STDOUT_FILENO))
		return stdout_flush(s, false, e);
	return 0;
}

static void stdout_close(struct sink *s)
{
	struct stdout_sink *so = s->backend;

	if (so->restore_flags >= 0)
		fcntl(STDOUT_FILENO, F_SETFL, so->restore_flags);
}

static int stdout_open(struct sink *s, const struct sink_config *cfg, void *settings, struct err *e)
{
	struct stdout_sink *so = s->backend;
	struct stat st;
	int flags;

	(void)cfg;
	(void)settings;
	(void)e;
	so->restore_flags = -1;
	if (fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
	    (flags = fcntl(STDOUT_FILENO, F_GETFL)) >= 0 && !(flags & O_NONBLOCK) &&
	    fcntl(STDOUT_FILENO, F_SETFL, flags | O_NONBLOCK) == 0)
		so->restore_flags = flags;
	return 0;
}

const struct sink_ops SINK_STDOUT = {
    .name = "stdout",
    .backend_size = sizeof(struct stdout_sink),
    .open = stdout_open,
    .event_done = stdout_event_done,
    .flush = stdout_flush,
    .adjust_pollset = stdout_adjust_pollset,
    .process = stdout_process,
    .close = stdout_close,
};
