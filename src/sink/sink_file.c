/*
 * sink_file.c — events appended to a file.
 *
 * write() only hands bytes to the kernel; they are durable after fsync().
 * So a written event is confirmed only by a durable flush, which the daemon
 * asks for just before it reports a position to Postgres: one fsync per
 * status update, not one per event. With --fsync=false, written is enough.
 */
#include "sink/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int file_event_done(struct sink *s, uint64_t seq, struct err *e)
{
	(void)seq;
	if (s->out.len < s->flush_threshold)
		return 0;
	if (sink_write_fd(s, s->path, e) < 0)
		return -1;
	if (!s->durable_writes)
		s->confirmed_seq = s->written_seq;
	return 0;
}

static int file_flush(struct sink *s, bool durable, struct err *e)
{
	if (sink_write_fd(s, s->path, e) < 0)
		return -1;
	if (!s->durable_writes) {
		s->confirmed_seq = s->written_seq;
		return 0;
	}
	if (!durable || s->confirmed_seq == s->written_seq)
		return 0;
	if (fsync(s->fd) < 0)
		return err_setk(e, ERR_SINK, "could not fsync %s: %s", s->path, strerror(errno));
	s->confirmed_seq = s->written_seq;
	return 0;
}

static void file_close(struct sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static const struct sink_ops FILE_OPS = {
    .name = "file",
    .event_done = file_event_done,
    .flush = file_flush,
    .close = file_close,
};

struct sink *sink_file_open(const struct sink_config *cfg, struct err *e)
{
	struct sink *s = sink_alloc(&FILE_OPS);

	if (s == NULL || (s->path = strdup(cfg->output)) == NULL) {
		sink_close(s);
		err_set(e, "could not open %s: out of memory", cfg->output);
		return NULL;
	}
	s->durable_writes = cfg->fsync;
	s->fd = open(cfg->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		err_set(e, "could not open %s: %s", cfg->output, strerror(errno));
		sink_close(s);
		return NULL;
	}
	return s;
}
