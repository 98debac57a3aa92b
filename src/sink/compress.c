/*
 * compress.c — rotated files compressed by one background thread.
 *
 * Why a thread, not the loop or a child process: compressing a 100 MB file
 * takes seconds of CPU and ends in two fsyncs (the copy, the directory),
 * each of which can wait on the disk for a long time. Done a chunk at a
 * time in the loop, that time would come out of decoding and status
 * updates (a stalled fsync would stall the stream itself); a child process
 * would have to be forked from a process holding the replication
 * connection and have its failures told back through a pipe. A thread
 * shares nothing with the stream but a queue of file names under a mutex:
 * it never touches the sink's buffer, sequence numbers or the open file,
 * and never logs (log.c is the loop's); what it did is reported by the
 * loop (compressor_report). Signals stay with the loop's thread, which
 * relies on them interrupting poll().
 *
 * One file at a time, in rotation order: compression trails the stream
 * when the disk or CPU is slower than the WAL, and never holds it back.
 */
#include "sink/compress.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef PGSTREAM_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef PGSTREAM_HAVE_ZSTD
#include <zstd.h>
#endif

#include "util/log.h"

/* Bytes read per step: the granularity of a claim's wait. */
#define CHUNK (256 * 1024)

int compress_method_named(const char *name, enum compress_method *m, struct err *e)
{
	if (name == NULL || strcmp(name, "none") == 0) {
		*m = COMPRESS_NONE;
		return 0;
	}
	if (strcmp(name, "gzip") == 0) {
#ifdef PGSTREAM_HAVE_ZLIB
		*m = COMPRESS_GZIP;
		return 0;
#else
		return err_set(e, "invalid value for --rotate-compress: this pgstream was built "
		                  "without gzip (zlib was not found at build time)");
#endif
	}
	if (strcmp(name, "zstd") == 0) {
#ifdef PGSTREAM_HAVE_ZSTD
		*m = COMPRESS_ZSTD;
		return 0;
#else
		return err_set(e, "invalid value for --rotate-compress: this pgstream was built "
		                  "without zstd (libzstd was not found at build time)");
#endif
	}
	return err_set(e,
	               "invalid value for --rotate-compress: \"%.64s\" (expected none, gzip or "
	               "zstd)",
	               name);
}

const char *compress_suffix(enum compress_method m)
{
	return m == COMPRESS_GZIP ? ".gz" : m == COMPRESS_ZSTD ? ".zst" : "";
}

struct job {
	struct job *next;
	char *path;
};

struct note {
	struct note *next;
	bool warn; /* a failure (else an info line) */
	char msg[ERR_MSG_MAX];
};

struct compressor {
	enum compress_method method;
	char *dir;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* a job queued, stop asked, a job ended */
	struct job *head, *tail;   /* queued, in rotation order */
	const char *current;       /* the path being compressed, or NULL */
	bool cancel;               /* abandon the current one (a claim) */
	bool stopping;             /* finish the queue, then end */
	struct note *notes, *last; /* for compressor_report */
};

/* ---- the codecs: bytes in, compressed bytes written to fd ---------------- */

struct codec {
	enum compress_method method;
#ifdef PGSTREAM_HAVE_ZLIB
	z_stream zs;
#endif
#ifdef PGSTREAM_HAVE_ZSTD
	ZSTD_CCtx *cc;
#endif
	unsigned char out[CHUNK];
};

#if defined(PGSTREAM_HAVE_ZLIB) || defined(PGSTREAM_HAVE_ZSTD)
static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
#endif

static int codec_init(struct codec *k, enum compress_method m, char *why, size_t wn)
{
	k->method = m;
#ifdef PGSTREAM_HAVE_ZLIB
	if (m == COMPRESS_GZIP) {
		memset(&k->zs, 0, sizeof k->zs);
		/* 15 + 16: a gzip header and trailer (CRC-32, size), as gzip(1) writes. */
		if (deflateInit2(&k->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
		                 Z_DEFAULT_STRATEGY) != Z_OK)
			return snprintf(why, wn, "zlib: out of memory"), -1;
		return 0;
	}
#endif
#ifdef PGSTREAM_HAVE_ZSTD
	if (m == COMPRESS_ZSTD) {
		k->cc = ZSTD_createCCtx();
		/* Level 3 (zstd's default); a checksum so a damaged copy is told. */
		if (k->cc == NULL ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(k->cc, ZSTD_c_compressionLevel, 3)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(k->cc, ZSTD_c_checksumFlag, 1)))
			return snprintf(why, wn, "zstd: could not set up a context"), -1;
		return 0;
	}
#endif
	snprintf(why, wn, "no such compression in this build");
	return -1;
}

/* Compress in[0..n) (the last piece if last) and write what comes out. On
 * failure errno is kept for a write error, else why says. */
static int codec_feed(struct codec *k, const unsigned char *in, size_t n, bool last, int fd,
                      char *why, size_t wn)
{
#ifdef PGSTREAM_HAVE_ZLIB
	if (k->method == COMPRESS_GZIP) {
		int rc;

		k->zs.next_in = (unsigned char *)in;
		k->zs.avail_in = (unsigned)n;
		do {
			k->zs.next_out = k->out;
			k->zs.avail_out = sizeof k->out;
			rc = deflate(&k->zs, last ? Z_FINISH : Z_NO_FLUSH);
			if (rc == Z_STREAM_ERROR)
				return snprintf(why, wn, "zlib: stream error"), -1;
			if (write_all(fd, k->out, sizeof k->out - k->zs.avail_out) < 0)
				return snprintf(why, wn, "%s", strerror(errno)), -1;
		} while (k->zs.avail_out == 0 || (last && rc != Z_STREAM_END));
		return 0;
	}
#endif
#ifdef PGSTREAM_HAVE_ZSTD
	if (k->method == COMPRESS_ZSTD) {
		ZSTD_inBuffer ib = {in, n, 0};
		bool done;

		do {
			ZSTD_outBuffer ob = {k->out, sizeof k->out, 0};
			size_t left = ZSTD_compressStream2(k->cc, &ob, &ib,
			                                   last ? ZSTD_e_end : ZSTD_e_continue);

			if (ZSTD_isError(left))
				return snprintf(why, wn, "zstd: %s", ZSTD_getErrorName(left)), -1;
			if (write_all(fd, k->out, ob.pos) < 0)
				return snprintf(why, wn, "%s", strerror(errno)), -1;
			done = last ? left == 0 : ib.pos == ib.size;
		} while (!done);
		return 0;
	}
#endif
	(void)k, (void)in, (void)n, (void)last, (void)fd;
	snprintf(why, wn, "no such compression in this build");
	return -1;
}

static void codec_end(struct codec *k)
{
#ifdef PGSTREAM_HAVE_ZLIB
	if (k->method == COMPRESS_GZIP)
		deflateEnd(&k->zs);
#endif
#ifdef PGSTREAM_HAVE_ZSTD
	if (k->method == COMPRESS_ZSTD)
		ZSTD_freeCCtx(k->cc);
#endif
	(void)k;
}

/* ---- one file ------------------------------------------------------------ */

static bool cancelled(struct compressor *c)
{
	bool v;

	pthread_mutex_lock(&c->mu);
	v = c->cancel;
	pthread_mutex_unlock(&c->mu);
	return v;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* path → path<suffix>, by way of path<suffix>.tmp. 1 done, 2 done but the
 * original could not be removed, 0 abandoned (a claim), -1 failed (path
 * left as it was); msg set but for 0, and no .tmp left behind. */
static int compress_one(struct compressor *c, struct codec *k, const char *path, char *msg,
                        size_t mn)
{
	const char *sfx = compress_suffix(c->method);
	size_t n = strlen(path) + strlen(sfx) + 5;
	char *final = malloc(n), *tmp = malloc(n);
	unsigned char *in = malloc(CHUNK);
	char why[256] = "";
	const char *step = "read";
	int src = -1, dst = -1, rc = -1;
	off_t read_total = 0, written = 0;
	struct stat st;

	if (final == NULL || tmp == NULL || in == NULL) {
		snprintf(msg, mn, "could not compress %s: out of memory", path);
		goto out;
	}
	snprintf(final, n, "%s%s", path, sfx);
	snprintf(tmp, n, "%s%s.tmp", path, sfx);
	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		snprintf(msg, mn, "could not compress %s: %s", path, strerror(errno));
		goto out;
	}
	dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (dst < 0) {
		snprintf(msg, mn, "could not compress %s: %s: %s", path, tmp, strerror(errno));
		goto out;
	}
	if (codec_init(k, c->method, why, sizeof why) < 0) {
		snprintf(msg, mn, "could not compress %s: %s", path, why);
		goto out_tmp;
	}
	for (;;) {
		ssize_t got = read(src, in, CHUNK);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, sizeof why, "%s", strerror(errno));
			break;
		}
		read_total += got;
		step = "write";
		if (codec_feed(k, in, (size_t)got, got == 0, dst, why, sizeof why) < 0 || got == 0)
			break;
		step = "read";
		if (cancelled(c)) {
			rc = 0;
			break;
		}
	}
	codec_end(k);
	if (*why) {
		snprintf(msg, mn, "could not compress %s: %s %s: %s", path, step,
		         step[0] == 'r' ? path : tmp, why);
		goto out_tmp;
	}
	if (rc == 0)
		goto out_tmp; /* claimed: the writer appends to path again */
	/* The copy is whole on disk before its name says so, and the name is
	 * on disk before the original goes. */
	if (fstat(dst, &st) == 0)
		written = st.st_size;
	if (fsync(dst) < 0 || close(dst) < 0) {
		dst = -1;
		snprintf(msg, mn, "could not compress %s: fsync %s: %s", path, tmp,
		         strerror(errno));
		goto out_tmp;
	}
	dst = -1;
	if (rename(tmp, final) < 0) {
		snprintf(msg, mn, "could not compress %s: rename %s: %s", path, tmp,
		         strerror(errno));
		goto out_tmp;
	}
	if (fsync_dir(c->dir) < 0) {
		/* Both names stay: the next start compresses path again. */
		snprintf(msg, mn, "could not compress %s: fsync directory %s: %s", path, c->dir,
		         strerror(errno));
		goto out;
	}
	if (unlink(path) < 0) {
		snprintf(msg, mn, "compressed %s to %s but could not remove it: %s", path, final,
		         strerror(errno));
		rc = 2;
		goto out;
	}
	fsync_dir(c->dir); /* not needed for safety: a file left is compressed again */
	snprintf(msg, mn, "file: compressed %s to %s (%lld to %lld bytes)", path, final,
	         (long long)read_total, (long long)written);
	rc = 1;
	goto out;
out_tmp:
	if (dst >= 0)
		close(dst);
	dst = -1;
	unlink(tmp);
out:
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	free(final);
	free(tmp);
	free(in);
	return rc;
}

/* ---- the thread ---------------------------------------------------------- */

static void add_note(struct compressor *c, bool warn, const char *msg)
{
	struct note *n = malloc(sizeof *n);

	if (n == NULL)
		return; /* a lost log line; the files are as they should be */
	n->next = NULL;
	n->warn = warn;
	snprintf(n->msg, sizeof n->msg, "%s", msg);
	if (c->last)
		c->last->next = n;
	else
		c->notes = n;
	c->last = n;
}

static void *worker(void *arg)
{
	struct compressor *c = arg;
	struct codec *k = malloc(sizeof *k);

	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct job *j;
		char msg[ERR_MSG_MAX];
		int rc;

		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->head == NULL)
			break;
		j = c->head;
		c->head = j->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->current = j->path;
		c->cancel = false;
		pthread_mutex_unlock(&c->mu);
		if (k == NULL) {
			snprintf(msg, sizeof msg, "could not compress %s: out of memory", j->path);
			rc = -1;
		} else {
			rc = compress_one(c, k, j->path, msg, sizeof msg);
		}
		pthread_mutex_lock(&c->mu);
		if (rc < 0)
			strncat(msg, " (it stays uncompressed)", sizeof msg - strlen(msg) - 1);
		if (rc != 0)
			add_note(c, rc != 1, msg);
		c->current = NULL;
		pthread_cond_broadcast(&c->cv);
		free(j->path);
		free(j);
	}
	pthread_mutex_unlock(&c->mu);
	free(k);
	return NULL;
}

struct compressor *compressor_start(enum compress_method m, const char *dir, struct err *e)
{
	struct compressor *c = calloc(1, sizeof *c);
	sigset_t all, old;
	int rc;

	if (c == NULL || (c->dir = strdup(dir)) == NULL) {
		free(c);
		err_set(e, "could not start compressing: out of memory");
		return NULL;
	}
	c->method = m;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	/* The thread inherits this mask: every signal is the loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->thread, NULL, worker, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		err_set(e, "could not start compressing: %s", strerror(rc));
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c->dir);
		free(c);
		return NULL;
	}
	return c;
}

bool compressor_add(struct compressor *c, const char *path)
{
	struct job *j = malloc(sizeof *j);

	if (j == NULL || (j->path = strdup(path)) == NULL) {
		free(j);
		log_warn("could not queue %s for compression: out of memory (it stays as it is)",
		         path);
		return false;
	}
	j->next = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return true;
}

void compressor_claim(struct compressor *c, const char *path)
{
	struct job **pp, *prev = NULL;

	pthread_mutex_lock(&c->mu);
	for (pp = &c->head; *pp;) {
		struct job *j = *pp;

		if (strcmp(j->path, path) == 0) {
			*pp = j->next;
			free(j->path);
			free(j);
			continue;
		}
		prev = j;
		pp = &j->next;
	}
	c->tail = prev;
	if (c->current && strcmp(c->current, path) == 0) {
		c->cancel = true;
		while (c->current && strcmp(c->current, path) == 0)
			pthread_cond_wait(&c->cv, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
}

void compressor_report(struct compressor *c)
{
	struct note *n;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	n = c->notes;
	c->notes = c->last = NULL;
	pthread_mutex_unlock(&c->mu);
	while (n) {
		struct note *next = n->next;

		if (n->warn)
			log_warn("%s", n->msg);
		else
			log_info("%s", n->msg);
		free(n);
		n = next;
	}
}

void compressor_stop(struct compressor *c)
{
	unsigned queued = 0;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	for (struct job *j = c->head; j; j = j->next)
		queued++;
	c->stopping = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (queued)
		log_info("file: compressing %u more rotated file%s before exiting", queued,
		         queued == 1 ? "" : "s");
	pthread_join(c->thread, NULL);
	compressor_report(c);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->dir);
	free(c);
}
