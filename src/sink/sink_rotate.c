/*
 * sink_rotate.c — events appended to a series of files, a new one past a
 * size or an age (--output FILE with --rotate-bytes / --rotate-seconds).
 *
 * Each file is named FILE.<commit>.<lsn>, the position of its first event
 * (commit LSN and LSN as 16 hex digits each; a non-transactional message's
 * own LSN twice), so the names sort in stream order and a shipper can tell
 * where each file starts. A file is only ever cut between two events: the
 * event that would take it past --rotate-bytes starts the next one (a
 * single larger event fills a file alone), and an old file is closed, at
 * the next event or when the loop next has a turn, once --rotate-seconds
 * have passed since it was opened.
 *
 * Durability is the file sink's: written events are confirmed by the
 * fsync of a durable flush (before each status update), and a file is
 * fsynced before it is closed, its directory after a new name appears in
 * it. A crash can leave a partial line only in the newest file of the
 * series; the next start cuts it (those bytes were never acknowledged).
 * A restart starts a new file at its first event; if that event is the
 * first of an existing file (a repeat), events are appended to it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

/* ".<16 hex>.<16 hex>" */
#define SUFFIX_LEN 34

struct rotate_sink {
	char *base; /* --output */
	char *dir;  /* its directory, for fsync after a new name */
	char *path; /* the open file's, or NULL */
	int fd;
	bool durable_writes;
	long max_bytes;
	int max_ms;
	size_t mark;       /* bytes of s->out before the last event given */
	off_t size;        /* of the open file, written */
	int64_t opened_ms; /* when it was opened */
	bool dirty;        /* written since its last fsync */
};

static int fsync_dir(struct rotate_sink *r, struct err *e)
{
	int fd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		return err_setk(e, ERR_SINK, "could not fsync directory %s: %s", r->dir,
		                strerror(saved));
	}
	close(fd);
	return 0;
}

/* Write the first n bytes of s->out to the open file. */
static int write_prefix(struct sink *s, size_t n, struct err *e)
{
	struct rotate_sink *r = s->backend;
	size_t off = 0;

	while (off < n) {
		ssize_t w = write(r->fd, s->out.data + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int saved = errno;

			/* The file ends between events again: nothing half written stays. */
			if (ftruncate(r->fd, r->size) < 0)
				log_warn("could not cut %s back to its last whole event: %s",
				         r->path, strerror(errno));
			buf_consume(&s->out, 0);
			return err_setk(e, ERR_SINK, "could not write to %s: %s", r->path,
			                strerror(saved));
		}
		off += (size_t)w;
	}
	buf_consume(&s->out, n);
	r->mark = r->mark > n ? r->mark - n : 0;
	r->size += (off_t)n;
	r->dirty = r->dirty || n > 0;
	return 0;
}

/* fsync and close the open file: every event in it is durable. */
static int close_file(struct sink *s, uint64_t last_seq, struct err *e)
{
	struct rotate_sink *r = s->backend;

	if (r->fd < 0)
		return 0;
	if (r->dirty && fsync(r->fd) < 0)
		return err_setk(e, ERR_SINK, "could not fsync %s: %s", r->path, strerror(errno));
	close(r->fd);
	r->fd = -1;
	log_debug("file: closed %s (%lld bytes)", r->path, (long long)r->size);
	free(r->path);
	r->path = NULL;
	r->dirty = false;
	s->written_seq = s->confirmed_seq = last_seq;
	return 0;
}

/* Open the file that starts with the event at rec. */
static int open_file(struct sink *s, const struct sink_record *rec, struct err *e)
{
	struct rotate_sink *r = s->backend;
	uint64_t lead = rec->transactional ? rec->commit_lsn : rec->lsn;
	size_t n = strlen(r->base) + SUFFIX_LEN + 1;
	bool existed;

	r->path = malloc(n);
	if (r->path == NULL)
		return err_setk(e, ERR_SINK, "could not open a file: out of memory");
	snprintf(r->path, n, "%s.%016" PRIX64 ".%016" PRIX64, r->base, lead, rec->lsn);
	existed = access(r->path, F_OK) == 0;
	r->fd = open(r->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (r->fd < 0)
		return err_setk(e, ERR_SINK, "could not open %s: %s", r->path, strerror(errno));
	if (existed && sink_file_repair(r->fd, r->path, &r->size, e) < 0)
		return -1;
	if (!existed)
		r->size = 0;
	r->opened_ms = clock_ms();
	r->dirty = false;
	if (existed)
		log_info("file: writing %s (appending at %lld bytes)", r->path, (long long)r->size);
	else
		log_info("file: writing %s", r->path);
	return existed || !r->durable_writes ? 0 : fsync_dir(r, e);
}

static bool too_old(const struct rotate_sink *r)
{
	return r->max_ms > 0 && r->fd >= 0 && clock_ms() - r->opened_ms >= r->max_ms;
}

static int rotate_event_routed(struct sink *s, uint64_t seq, const struct sink_record *rec,
                               struct err *e)
{
	struct rotate_sink *r = s->backend;
	size_t before = r->mark; /* where this event starts in s->out */
	size_t len = s->out.len - before;

	if (r->fd >= 0 && (too_old(r) || (r->max_bytes > 0 && r->size + (off_t)before > 0 &&
	                                  r->size + (off_t)(before + len) > (off_t)r->max_bytes))) {
		if (write_prefix(s, before, e) < 0 || close_file(s, seq - 1, e) < 0)
			return -1;
	}
	if (r->fd < 0 && open_file(s, rec, e) < 0)
		return -1;
	r->mark = s->out.len;
	if (s->out.len >= s->flush_threshold) {
		if (write_prefix(s, s->out.len, e) < 0)
			return -1;
		s->written_seq = seq;
		if (!r->durable_writes)
			s->confirmed_seq = seq;
	}
	return 0;
}

static int rotate_flush(struct sink *s, bool durable, struct err *e)
{
	struct rotate_sink *r = s->backend;

	if (r->fd >= 0 && s->out.len > 0) {
		if (write_prefix(s, s->out.len, e) < 0)
			return -1;
		s->written_seq = s->buffered_seq;
		if (!r->durable_writes)
			s->confirmed_seq = s->written_seq;
	}
	if (too_old(r))
		return close_file(s, s->buffered_seq, e);
	if (!durable || !r->durable_writes || s->confirmed_seq == s->written_seq)
		return 0;
	if (r->dirty && fsync(r->fd) < 0)
		return err_setk(e, ERR_SINK, "could not fsync %s: %s", r->path, strerror(errno));
	r->dirty = false;
	s->confirmed_seq = s->written_seq;
	return 0;
}

/* An old file is closed in time even when no event comes. */
static void rotate_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	struct rotate_sink *r = s->backend;
	int64_t wait;

	if (r->max_ms <= 0 || r->fd < 0)
		return;
	wait = r->opened_ms + r->max_ms - clock_ms();
	if (wait < 0)
		wait = 0;
	if (ps->timeout_ms < 0 || wait < ps->timeout_ms)
		ps->timeout_ms = (int)wait;
}

static int rotate_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	(void)ps;
	return too_old(s->backend) ? rotate_flush(s, true, e) : 0;
}

/* The newest file of the series a crash may have left with a partial line:
 * cut it back. Names sort in stream order, so it is the greatest. */
static int repair_newest(struct rotate_sink *r, struct err *e)
{
	char *copy = strdup(r->base);
	const char *name;
	size_t nlen;
	char best[512] = "";
	DIR *d;
	struct dirent *de;

	if (copy == NULL)
		return err_set(e, "could not open %s: out of memory", r->base);
	name = basename(copy);
	nlen = strlen(name);
	d = opendir(r->dir);
	if (d == NULL) {
		free(copy);
		return err_set(e, "could not open directory %s: %s", r->dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (strlen(n) != nlen + SUFFIX_LEN || strncmp(n, name, nlen) != 0 ||
		    n[nlen] != '.' || n[nlen + 17] != '.' ||
		    strspn(n + nlen + 1, "0123456789ABCDEF") != 16 ||
		    strspn(n + nlen + 18, "0123456789ABCDEF") != 16 || strlen(n) >= sizeof best)
			continue;
		if (strcmp(n, best) > 0)
			snprintf(best, sizeof best, "%s", n);
	}
	closedir(d);
	free(copy);
	if (*best) {
		size_t n = strlen(r->dir) + strlen(best) + 2;
		char *path = malloc(n);
		off_t end;
		int fd;
		int rc;

		if (path == NULL)
			return err_set(e, "could not open %s: out of memory", r->base);
		snprintf(path, n, "%s/%s", r->dir, best);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			rc = err_set(e, "could not open %s: %s", path, strerror(errno));
		} else {
			rc = sink_file_repair(fd, path, &end, e);
			if (rc == 0 && fsync(fd) < 0)
				rc = err_set(e, "could not fsync %s: %s", path, strerror(errno));
			close(fd);
		}
		free(path);
		return rc;
	}
	return 0;
}

static int rotate_open(struct sink *s, const struct sink_config *cfg, struct err *e)
{
	struct rotate_sink *r = s->backend;
	char *copy;
	struct stat st;

	r->fd = -1;
	r->base = strdup(cfg->output);
	copy = strdup(cfg->output);
	if (r->base == NULL || copy == NULL || (r->dir = strdup(dirname(copy))) == NULL) {
		free(copy);
		return err_set(e, "could not open %s: out of memory", cfg->output);
	}
	free(copy);
	r->durable_writes = cfg->fsync;
	r->max_bytes = cfg->rotate_bytes;
	r->max_ms = cfg->rotate_ms;
	if (stat(r->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, "could not open %s: directory %s: %s", cfg->output, r->dir,
		               stat(r->dir, &st) < 0 ? strerror(errno) : "not a directory");
	if (access(r->dir, W_OK) < 0)
		return err_set(e, "could not open %s: directory %s: %s", cfg->output, r->dir,
		               strerror(errno));
	return repair_newest(r, e);
}

static void rotate_close(struct sink *s)
{
	struct rotate_sink *r = s->backend;

	if (r->fd >= 0)
		close(r->fd);
	free(r->base);
	free(r->dir);
	free(r->path);
}

const struct sink_ops SINK_ROTATE = {
    .name = "file",
    .backend_size = sizeof(struct rotate_sink),
    .open = rotate_open,
    .event_routed = rotate_event_routed,
    .positions_only = true,
    .flush = rotate_flush,
    .adjust_pollset = rotate_adjust_pollset,
    .process = rotate_process,
    .close = rotate_close,
};
