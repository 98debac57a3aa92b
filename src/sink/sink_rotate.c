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
 * fsync of a durable flush (before each status update). A file rotated
 * away is fsynced and closed at the next durable flush, not at the
 * rotation, and a new name is made durable there too (the directory's
 * fsync), so that the stream never waits on the disk at a rotation; a
 * file's writeback starts every few megabytes and when it is rotated away.
 * A crash can leave a partial line only in the file being written (the
 * newest, or one a restart began at an event before the newest file's);
 * the next start cuts any such line (those bytes were never acknowledged).
 * A restart starts a new file at its first event, as a rotation does; if
 * that event is the first of an existing file (a repeat: the restart's
 * first event, or a rotation an earlier run made at the same event),
 * events are appended to it, so that a file only grows under a reader.
 *
 * SIGHUP is a rotation: the open file is closed as if it had grown too old.
 *
 * --rotate-compress hands each closed file to a background compressor
 * (compress.h): it never holds the stream back, and since a file is handed
 * over only once fsynced and its events confirmed, acknowledgement never
 * waits for it. At start the .tmp of an interrupted compression is removed
 * and the files an earlier run left uncompressed are queued again.
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

#include "sink/compress.h"
#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

/* ".<16 hex>.<16 hex>" */
#define SUFFIX_LEN 34
/* Rotated files awaiting their fsync; one more rotation syncs them all. */
#define ROTATE_CLOSING_MAX 8

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
	off_t writeback;   /* of the open file: writeback started up to here */
	/* Files rotated away whose fsync waits for the next durable flush, in
	 * order: fd and name of each. */
	int closing_fd[ROTATE_CLOSING_MAX];
	char *closing_path[ROTATE_CLOSING_MAX];
	int nclosing;
	bool dir_dirty; /* a name added since the directory's last fsync */
	enum compress_method method;
	struct compressor *comp; /* --rotate-compress: closed files go here */
	char *leftover;          /* an earlier run's newest file, queued once we write elsewhere */
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
	if (r->durable_writes)
		sink_file_writeback(r->fd, &r->writeback, r->size, false);
	return 0;
}

/* Close a file the series is done with (durable, or --fsync=false): from
 * now on it is the compressor's, when there is one. Takes path. */
static void retire(struct rotate_sink *r, int fd, char *path)
{
	close(fd);
	log_debug("file: closed %s", path);
	if (r->comp)
		compressor_add(r->comp, path);
	free(path);
}

/* fsync and close the files rotated away, and make the names made since
 * durable: every event in them is, and the closed files are the
 * compressor's. */
static int sync_closing(struct rotate_sink *r, struct err *e)
{
	int done = 0, rc = 0;

	if (r->dir_dirty) {
		if (fsync_dir(r, e) < 0)
			return -1;
		r->dir_dirty = false;
	}
	for (; done < r->nclosing; done++) {
		if (fsync(r->closing_fd[done]) < 0) {
			rc = err_setk(e, ERR_SINK, "could not fsync %s: %s", r->closing_path[done],
			              strerror(errno));
			break;
		}
		retire(r, r->closing_fd[done], r->closing_path[done]);
	}
	r->nclosing -= done;
	memmove(r->closing_fd, r->closing_fd + done, (size_t)r->nclosing * sizeof *r->closing_fd);
	memmove(r->closing_path, r->closing_path + done,
	        (size_t)r->nclosing * sizeof *r->closing_path);
	return rc;
}

/*
 * Stop writing the open file; its events are the last up to last_seq.
 * When it must be fsynced, that waits for the next durable flush (or a
 * full closing list), so that a rotation never stalls the stream on the
 * disk: the acknowledgement that needs it comes at that flush anyway; its
 * writeback starts now. now: closed and durable before this returns
 * (SIGHUP: the file is the shipper's once that is logged).
 */
static int close_file(struct sink *s, uint64_t last_seq, bool now, struct err *e)
{
	struct rotate_sink *r = s->backend;

	if (r->fd < 0)
		return 0;
	s->written_seq = last_seq;
	if (r->durable_writes && (r->dirty || r->nclosing > 0)) {
		/* (one already durable waits too, to go to the compressor in order) */
		if (r->nclosing == ROTATE_CLOSING_MAX && sync_closing(r, e) < 0)
			return -1;
		if (r->dirty)
			sink_file_writeback(r->fd, &r->writeback, r->size, true);
		r->closing_fd[r->nclosing] = r->fd;
		r->closing_path[r->nclosing++] = r->path;
	} else {
		retire(r, r->fd, r->path);
	}
	r->fd = -1;
	r->path = NULL;
	r->dirty = false;
	if (now && sync_closing(r, e) < 0)
		return -1;
	if (r->nclosing == 0)
		s->confirmed_seq = last_seq;
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
	if (r->comp) {
		/* A restart may append to a file an earlier run left: it must not be
		 * compressed (and unlinked) under us. If it already was, this is a
		 * new file, whose copy replaces the earlier one when compressed: its
		 * events are the same from the same first one, and none of what it
		 * lacks was acknowledged (Postgres sent its first event again). */
		compressor_claim(r->comp, r->path);
		if (r->leftover && strcmp(r->leftover, r->path) != 0)
			compressor_add(r->comp, r->leftover);
		free(r->leftover);
		r->leftover = NULL;
		compressor_report(r->comp);
	}
	existed = access(r->path, F_OK) == 0;
	r->fd = open(r->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (r->fd < 0)
		return err_setk(e, ERR_SINK, "could not open %s: %s", r->path, strerror(errno));
	if (existed && sink_file_repair(r->fd, r->path, &r->size, e) < 0)
		return -1;
	if (!existed)
		r->size = 0;
	r->writeback = r->size;
	r->opened_ms = clock_ms();
	r->dirty = false;
	if (existed)
		log_info("file: writing %s (appending at %lld bytes)", r->path, (long long)r->size);
	else
		log_info("file: writing %s", r->path);
	/* The new name is made durable with the files, at the next durable
	 * flush: on ext4 a directory's fsync commits the journal, which first
	 * writes out the data of every file in it, so here it would stall the
	 * stream on the disk as the file's own fsync would. */
	r->dir_dirty = r->dir_dirty || (!existed && r->durable_writes);
	return 0;
}

/* Room for one more name in *names; false (nothing changed) if out of memory. */
static bool grow_names(char ***names, size_t *cap)
{
	size_t n = *cap ? *cap * 2 : 16;
	char **more = realloc(*names, n * sizeof **names);

	if (more == NULL)
		return false;
	*names = more;
	*cap = n;
	return true;
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
		if (write_prefix(s, before, e) < 0 || close_file(s, seq - 1, false, e) < 0)
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
	if (too_old(r) && close_file(s, s->buffered_seq, false, e) < 0)
		return -1;
	if (!durable || !r->durable_writes)
		return 0;
	if (sync_closing(r, e) < 0)
		return -1;
	if (s->confirmed_seq == s->written_seq)
		return 0;
	if (r->fd >= 0 && r->dirty && fsync(r->fd) < 0)
		return err_setk(e, ERR_SINK, "could not fsync %s: %s", r->path, strerror(errno));
	r->dirty = false;
	s->confirmed_seq = s->written_seq;
	return 0;
}

/* SIGHUP: a rotation now. The open file is written out, fsynced and closed
 * (its events confirmed), so whatever a shipper does with it next cannot
 * lose what is acknowledged; the next event starts a new file, named after
 * it as any other. Nothing is reopened by the old name: in a series the
 * names are pgstream's, and moving files away needs no signal. */
static int rotate_reopen(struct sink *s, struct err *e)
{
	struct rotate_sink *r = s->backend;
	char *was;

	if (r->fd < 0) {
		log_info("file: SIGHUP: no file open; the next event starts a new one");
		return 1;
	}
	if (s->out.len > 0) {
		if (write_prefix(s, s->out.len, e) < 0)
			return -1;
		s->written_seq = s->buffered_seq;
	}
	was = strdup(r->path);
	if (close_file(s, s->buffered_seq, true, e) < 0) {
		free(was);
		return -1;
	}
	/* Logged once closed: whoever reads the line may take the file. */
	log_info("file: SIGHUP: closed %s; the next event starts a new file",
	         was ? was : "the open file");
	free(was);
	return 1;
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
	compressor_report(((struct rotate_sink *)s->backend)->comp);
	return too_old(s->backend) ? rotate_flush(s, false, e) : 0;
}

/* Whether n is FILE.<commit>.<lsn> (for base name FILE, of nlen bytes)
 * followed by the tail it returns ("" for a file of the series itself). */
static const char *series_tail(const char *n, const char *name, size_t nlen)
{
	if (strlen(n) < nlen + SUFFIX_LEN || strncmp(n, name, nlen) != 0 || n[nlen] != '.' ||
	    n[nlen + 17] != '.' || strspn(n + nlen + 1, "0123456789ABCDEF") != 16 ||
	    strspn(n + nlen + 18, "0123456789ABCDEF") != 16)
		return NULL;
	return n + nlen + SUFFIX_LEN;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cut a partial last line a crash left in path. A file left with no whole
 * event (a crash or a full disk before its first one was written) is
 * removed, 1: it is named after an event it does not hold. */
static int repair_file(const char *path, struct err *e)
{
	off_t end;
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return err_set(e, "could not open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0; /* not a file pgstream wrote: left alone */
	}
	rc = sink_file_repair(fd, path, &end, e);
	if (rc == 0 && end == 0 && unlink(path) == 0) {
		log_info("file: removed %s, empty", path);
		rc = 1;
	} else if (rc == 0 && end != st.st_size && fsync(fd) < 0)
		rc = err_set(e, "could not fsync %s: %s", path, strerror(errno));
	close(fd);
	return rc;
}

/*
 * What earlier runs left. A file a crash left with a partial line is cut
 * back (the one a run was writing: the newest, or one a restart began
 * before it), one left empty removed. A compression a crash interrupted
 * left a .tmp: it is removed, and with --rotate-compress its original
 * (still whole) is compressed again, as is every other uncompressed file
 * of the series but the newest, which waits until this run writes
 * elsewhere (it may append to it). Paths are FILE + tail, as open_file
 * names them.
 */
static int scan_series(struct rotate_sink *r, struct err *e)
{
	char *copy = strdup(r->base);
	const char *name;
	size_t nlen, count = 0, cap = 0, kept = 0;
	char **names = NULL;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (copy == NULL)
		return err_set(e, "could not open %s: out of memory", r->base);
	name = basename(copy);
	nlen = strlen(name);
	d = opendir(r->dir);
	if (d == NULL) {
		free(copy);
		return err_set(e, "could not open directory %s: %s", r->dir, strerror(errno));
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		const char *tail = series_tail(de->d_name, name, nlen);
		size_t n;
		char *path;

		if (tail == NULL ||
		    (*tail && strcmp(tail, ".gz.tmp") != 0 && strcmp(tail, ".zst.tmp") != 0))
			continue;
		n = strlen(r->base) + strlen(de->d_name + nlen) + 1;
		path = malloc(n);
		if (path == NULL || (!*tail && count == cap && !grow_names(&names, &cap))) {
			free(path);
			rc = err_set(e, "could not open %s: out of memory", r->base);
			break;
		}
		snprintf(path, n, "%s%s", r->base, de->d_name + nlen);
		if (*tail) {
			if (unlink(path) < 0)
				rc = err_set(e, "could not remove %s: %s", path, strerror(errno));
			else
				log_info("file: removed %s, an unfinished compression (the file it "
				         "copied is whole)",
				         path);
			free(path);
		} else {
			names[count++] = path;
		}
	}
	closedir(d);
	free(copy);
	if (count > 0)
		qsort(names, count, sizeof *names, by_name);
	/* Every file, not only the newest: a restart that began before the
	 * newest file (or at the first event of one already compressed) writes
	 * a file whose name is not the greatest, and a crash may cut that one. */
	for (size_t i = 0; i < count; i++) {
		int fixed = rc < 0 ? 0 : repair_file(names[i], e);

		if (fixed < 0)
			rc = -1;
		if (fixed == 1)
			free(names[i]);
		else
			names[kept++] = names[i];
	}
	count = kept;
	for (size_t i = 0; i < count; i++) {
		if (rc == 0 && r->comp && i + 1 < count)
			compressor_add(r->comp, names[i]);
		if (rc == 0 && r->comp && i + 1 == count)
			r->leftover = names[i];
		else
			free(names[i]);
	}
	free(names);
	return rc;
}

static int rotate_check_config(const struct sink_config *cfg, void *settings, struct err *e)
{
	enum compress_method m;

	(void)settings;

	return compress_method_named(cfg->rotate_compress, &m, e);
}

static int rotate_open(struct sink *s, const struct sink_config *cfg, void *settings, struct err *e)
{
	struct rotate_sink *r = s->backend;
	char *copy;
	struct stat st;

	(void)settings;

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
	if (compress_method_named(cfg->rotate_compress, &r->method, e) < 0)
		return -1;
	if (r->method != COMPRESS_NONE &&
	    (r->comp = compressor_start(r->method, r->dir, e)) == NULL)
		return -1;
	return scan_series(r, e);
}

static void rotate_close(struct sink *s)
{
	struct rotate_sink *r = s->backend;

	if (r->fd >= 0) {
		close(r->fd);
		/* Its first event never written (a write that failed): no file. */
		if (r->size == 0 && unlink(r->path) == 0)
			log_debug("file: removed %s, empty", r->path);
	}
	/* Not durable: none of their events was acknowledged past the last
	 * durable flush, and the next start compresses them. */
	for (int i = 0; i < r->nclosing; i++) {
		close(r->closing_fd[i]);
		free(r->closing_path[i]);
	}
	compressor_stop(r->comp); /* what was rotated: the open file stays as it is */
	free(r->leftover);
	free(r->base);
	free(r->dir);
	free(r->path);
}

const struct sink_ops SINK_ROTATE = {
    .name = "file",
    .backend_size = sizeof(struct rotate_sink),
    .check_config = rotate_check_config,
    .open = rotate_open,
    .event_routed = rotate_event_routed,
    .positions_only = true,
    .flush = rotate_flush,
    .adjust_pollset = rotate_adjust_pollset,
    .process = rotate_process,
    .reopen = rotate_reopen,
    .close = rotate_close,
};
