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
 *
 * SIGHUP (logrotate's postrotate) reopens the file by name: the open one
 * is written out and fsynced first, so it ends with every event handed
 * over before the signal, and the next event starts the new file.
 */
#define _GNU_SOURCE /* sync_file_range (Linux) */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "sink/sink_int.h"
#include "util/log.h"

/* Dirty bytes of a file before their writeback is started. */
#define WRITEBACK_BYTES (4 << 20)

struct file_sink {
	int fd;
	char *path;
	bool durable_writes; /* fsync before confirming */
	off_t boundary;      /* size at the end of the last whole write */
	off_t writeback;     /* writeback started up to here */
};

static int file_write(struct sink *s, struct err *e)
{
	struct file_sink *f = s->backend;
	size_t len = s->out.len;

	if (sink_write_fd(s, f->fd, f->path, e) < 0) {
		if (ftruncate(f->fd, f->boundary) < 0)
			log_warn("could not cut %s back to its last whole event: %s", f->path,
			         strerror(errno));
		return -1;
	}
	f->boundary += (off_t)len;
	if (!f->durable_writes)
		s->confirmed_seq = s->written_seq;
	else
		sink_file_writeback(f->fd, &f->writeback, f->boundary, false);
	return 0;
}

void sink_file_writeback(int fd, off_t *started, off_t size, bool all)
{
	if (size < *started) /* cut back since */
		*started = size;
	if (size == *started || (!all && size - *started < WRITEBACK_BYTES))
		return;
#ifdef SYNC_FILE_RANGE_WRITE
	/* A hint: if it fails, the fsync does all the writing, as without it. */
	(void)sync_file_range(fd, *started, size - *started, SYNC_FILE_RANGE_WRITE);
#else
	(void)fd;
#endif
	*started = size;
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
	struct file_sink *f = s->backend;

	if (s->out.len > 0 && file_write(s, e) < 0)
		return -1;
	if (!f->durable_writes || !durable || s->confirmed_seq == s->written_seq)
		return 0;
	if (fsync(f->fd) < 0)
		return err_setk(e, ERR_SINK, "could not fsync %s: %s", f->path, strerror(errno));
	s->confirmed_seq = s->written_seq;
	return 0;
}

static int open_path(struct file_sink *f, struct err *e);

static int file_reopen(struct sink *s, struct err *e)
{
	struct file_sink *f = s->backend;
	struct file_sink fresh = *f;
	struct err oe;

	/* Everything so far goes to the file open now, durably: whatever
	 * the rotation does next (compress, delete), pgstream has no more
	 * claim on it, and the events in it may be acknowledged. */
	if (file_flush(s, true, e) < 0)
		return -1;
	/* With --fsync=false too: the old file is left complete on disk. */
	if (!f->durable_writes && fsync(f->fd) < 0 && errno != EINVAL)
		return err_setk(e, ERR_SINK, "could not fsync %s: %s", f->path, strerror(errno));
	s->confirmed_seq = s->written_seq;
	if (open_path(&fresh, &oe) < 0) {
		if (fresh.fd >= 0)
			close(fresh.fd);
		log_warn("%s; still writing to the file open before", oe.msg);
		return 0;
	}
	close(f->fd);
	*f = fresh;
	return 1;
}

static void file_close(struct sink *s)
{
	struct file_sink *f = s->backend;

	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->path);
	f->path = NULL;
}

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

int sink_file_repair(int fd, const char *path, off_t *boundary, struct err *e)
{
	struct stat st;
	off_t size, end;

	*boundary = 0;
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
		return 0; /* a device or FIFO has no tail to repair */
	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return err_set(e, "could not open %s: %s", path, strerror(errno));
	if (last_line_end(fd, size, &end) < 0)
		return err_set(e, "could not read %s: %s", path, strerror(errno));
	if (end < size) {
		if (ftruncate(fd, end) < 0)
			return err_set(e, "could not repair %s: %s", path, strerror(errno));
		log_warn("removed %lld bytes of an incomplete event at the end of %s (it will be "
		         "sent again)",
		         (long long)(size - end), path);
	}
	*boundary = end;
	return 0;
}

/* Cut a partial last line left by a crash, so appends start on a boundary. */
static int repair_tail(struct file_sink *f, struct err *e)
{
	return sink_file_repair(f->fd, f->path, &f->boundary, e);
}

/* Open f->path for appending, its tail repaired. On failure f->fd may be
 * open: the caller closes it. */
static int open_path(struct file_sink *f, struct err *e)
{
	f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (f->fd < 0)
		return err_set(e, "could not open %s: %s", f->path, strerror(errno));
	if (repair_tail(f, e) < 0)
		return -1;
	f->writeback = f->boundary;
	return 0;
}

static int file_open(struct sink *s, const struct sink_config *cfg, void *settings, struct err *e)
{
	struct file_sink *f = s->backend;

	(void)settings;

	f->fd = -1;
	f->path = strdup(cfg->output);
	if (f->path == NULL)
		return err_set(e, "could not open %s: out of memory", cfg->output);
	f->durable_writes = cfg->fsync;
	return open_path(f, e);
}

/* A file is written with blocking writes: nothing to wait on, no turn. */
const struct sink_ops SINK_FILE = {
    .name = "file",
    .backend_size = sizeof(struct file_sink),
    .open = file_open,
    .event_done = file_event_done,
    .flush = file_flush,
    .reopen = file_reopen,
    .close = file_close,
};
