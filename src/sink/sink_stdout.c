/*
 * sink_stdout.c — events to standard output.
 *
 * An event counts as delivered once write() to fd 1 has returned: a pipe or
 * terminal offers no stronger promise. Output is batched (see sink.c) and
 * always sent before pgstream waits for more input, so a consumer sees each
 * change as soon as it is decoded.
 */
#include "sink/sink.h"

#include <unistd.h>

static int stdout_event_done(struct sink *s, uint64_t seq, struct err *e)
{
	(void)seq;
	if (s->out.len < s->flush_threshold)
		return 0;
	if (sink_write_fd(s, "stdout", e) < 0)
		return -1;
	s->confirmed_seq = s->written_seq;
	return 0;
}

static int stdout_flush(struct sink *s, bool durable, struct err *e)
{
	(void)durable;
	if (sink_write_fd(s, "stdout", e) < 0)
		return -1;
	s->confirmed_seq = s->written_seq;
	return 0;
}

static const struct sink_ops STDOUT_OPS = {
    .name = "stdout",
    .event_done = stdout_event_done,
    .flush = stdout_flush,
    .close = NULL,
};

struct sink *sink_stdout_open(const struct sink_config *cfg, struct err *e)
{
	struct sink *s = sink_alloc(&STDOUT_OPS);

	(void)cfg;
	if (s == NULL) {
		err_set(e, "could not open stdout sink: out of memory");
		return NULL;
	}
	s->fd = STDOUT_FILENO;
	return s;
}
