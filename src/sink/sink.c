/* sink.c — dispatch to the backend a config names, and shared fd writing. */
#include "sink/sink.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes are batched up to this size: large enough that write() is not per
 * event, small enough that memory stays flat. */
#define SINK_FLUSH_THRESHOLD (64 * 1024)
/* An event bigger than this is refused rather than grown without bound. */
#define SINK_BUF_LIMIT ((size_t)1 << 30)

struct sink *sink_open(const struct sink_config *cfg, struct err *e)
{
	if (cfg->output == NULL || strcmp(cfg->output, "-") == 0)
		return sink_stdout_open(cfg, e);
	return sink_file_open(cfg, e);
}

struct sink *sink_alloc(const struct sink_ops *ops)
{
	struct sink *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->ops = ops;
	s->fd = -1;
	s->restore_flags = -1;
	s->flush_threshold = SINK_FLUSH_THRESHOLD;
	buf_init(&s->out, SINK_BUF_LIMIT);
	return s;
}

void sink_close(struct sink *s)
{
	if (s == NULL)
		return;
	if (s->ops->close)
		s->ops->close(s);
	buf_reset(&s->out);
	free(s->path);
	free(s);
}

int sink_event_done(struct sink *s, uint64_t seq, struct err *e)
{
	if (!buf_ok(&s->out))
		return err_setk(e, ERR_SINK, "could not encode event %llu: %s",
		                (unsigned long long)seq,
		                s->out.nomem ? "out of memory" : "event larger than 1 GiB");
	s->buffered_seq = seq;
	return s->ops->event_done(s, seq, e);
}

int sink_flush(struct sink *s, bool durable, struct err *e)
{
	return s->ops->flush(s, durable, e);
}

int sink_write_fd(struct sink *s, const char *what, struct err *e)
{
	size_t off = 0;

	while (off < s->out.len) {
		ssize_t n = write(s->fd, s->out.data + off, s->out.len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				buf_consume(&s->out, off);
				s->blocked = true;
				return 0;
			}
			/* Keep what was not written: nothing is lost, nothing acked. */
			buf_consume(&s->out, off);
			return err_setk(e, ERR_SINK, "could not write to %s: %s", what,
			                strerror(errno));
		}
		off += (size_t)n;
	}
	buf_clear(&s->out);
	s->blocked = false;
	s->written_seq = s->buffered_seq;
	return 0;
}

int sink_wait(struct sink *s, int timeout_ms)
{
	struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};

	if (s->fd < 0)
		return 1;
	return poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms) > 0;
}
