/*
 * sink_file.c — events appended to a file.
 *
 * write() only hands bytes to the kernel; they are durable after fsync().
 * So a written event is confirmed only by a durable flush, which the daemon
 * asks for just before it reports a position to Postgres: one fsync per
 * status update, not one per event. With --fsync=false, written is enough.
 *
 * The file only ever ends between two events. A write that fails half way
 * (ENOSPC, EFBIG) is cut back to the last whole event before the error is
 * reported, and a file left ending in a partial line (a crash inside
 * write()) is cut back at open. Neither loses anything: bytes past the
 * last boundary were never acknowledged, so Postgres sends them again.
 */
#include "sink/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

static int file_write(struct sink *s, struct err *e)
{
	size_t len = s->out.len;

	if (sink_write_fd(s, s->path, e) < 0) {
		if (ftruncate(s->fd, s->boundary) < 0)
			log_warn("could not cut %s back to its last whole event: %s", s->path,
			         strerror(errno));
		return -1;
	}
	s->boundary += (off_t)len;
	if (!s->durable_writes)
		s->confirmed_seq = s->written_seq;
	return 0;
}

static int file_event_done(struct sink *s, uint64_t seq, struct err *e)
{
	(void)seq;
	if (s->out.len < s->flush_threshold)
		return 0;
	return file_write(s, e);
}

static int file_flush(struct sink *s, bool durable, struct err *e)
{
	if (s->out.len > 0 && file_write(s, e) < 0)
		return -1;
	if (!s->durable_writes || !durable || s->confirmed_seq == s->written_seq)
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

/* Find where the file's last whole line ends (0 if it has none). */
static int last_line_end(int fd, off_t size, off_t *end)
{
	char chunk[4096];
	off_t pos = size;

	while (pos > 0) {
		size_t n = pos < (off_t)sizeof chunk ? (size_t)pos : sizeof chunk;
		ssize_t got = pread(fd, chunk, n, pos - (off_t)n);
		if (got != (ssize_t)n)
			return -1;
		for (size_t i = n; i > 0; i--) {
			if (chunk[i - 1] == '\n') {
				*end = pos - (off_t)n + (off_t)i;
				return 0;
			}
		}
		pos -= (off_t)n;
	}
	*end = 0;
	return 0;
}

/* Cut a partial last line left by a crash, so appends start on a boundary. */
static int repair_tail(struct sink *s, struct err *e)
{
	struct stat st;
	off_t size, end;

	if (fstat(s->fd, &st) == 0 && !S_ISREG(st.st_mode))
		return 0; /* a device or FIFO has no tail to repair */
	size = lseek(s->fd, 0, SEEK_END);
	if (size < 0)
		return err_set(e, "could not open %s: %s", s->path, strerror(errno));
	if (last_line_end(s->fd, size, &end) < 0)
		return err_set(e, "could not read %s: %s", s->path, strerror(errno));
	if (end < size) {
		if (ftruncate(s->fd, end) < 0)
			return err_set(e, "could not repair %s: %s", s->path, strerror(errno));
		log_warn("removed %lld bytes of an incomplete event at the end of %s (it will be "
		         "sent again)",
		         (long long)(size - end), s->path);
	}
	s->boundary = end;
	return 0;
}

struct sink *sink_file_open(const struct sink_config *cfg, struct err *e)
{
	struct sink *s = sink_alloc(&FILE_OPS);

	if (s == NULL || (s->path = strdup(cfg->output)) == NULL) {
		sink_close(s);
		err_set(e, "could not open %s: out of memory", cfg->output);
		return NULL;
	}
	s->durable_writes = cfg->fsync;
	s->fd = open(cfg->output, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		err_set(e, "could not open %s: %s", cfg->output, strerror(errno));
		sink_close(s);
		return NULL;
	}
	if (repair_tail(s, e) < 0) {
		sink_close(s);
		return NULL;
	}
	return s;
}
