/* spool.c — streamed transactions parked in unlinked temp files; see spool.h. */
#include "spool.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/be.h"
#include "util/grow.h"
#include "util/rd.h"

#define RECORD_HEADER     12         /* Int64 lsn + Int32 length */
#define SPOOL_MAX_MESSAGE (1u << 30) /* no pgoutput message is larger */

/* Where each subtransaction's first record starts, in the order seen. */
struct subxact {
	uint32_t xid;
	off_t offset;
};

struct spool {
	uint32_t xid;
	FILE *f;
	off_t size; /* bytes appended (the write position) */
	struct subxact *subs;
	size_t nsubs;
	size_t subcap;
	uint8_t *rbuf; /* replay read buffer */
	size_t rcap;
};

static int io_error(struct err *e, const char *what)
{
	return err_set(e, "could not %s spool file: %s", what, strerror(errno));
}

struct spool *spool_new(uint32_t xid, struct err *e)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	struct spool *sp = calloc(1, sizeof *sp);
	int fd;

	if (sp == NULL) {
		err_set(e, "could not create spool: out of memory");
		return NULL;
	}
	sp->xid = xid;
	snprintf(path, sizeof path, "%s/pgstream-spool-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		err_set(e, "could not create spool file in %s: %s", dir && *dir ? dir : "/tmp",
		        strerror(errno));
		free(sp);
		return NULL;
	}
	unlink(path); /* gone with the process, whatever happens to it */
	sp->f = fdopen(fd, "w+");
	if (sp->f == NULL) {
		io_error(e, "open");
		close(fd);
		free(sp);
		return NULL;
	}
	return sp;
}

void spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->f)
		fclose(sp->f);
	free(sp->subs);
	free(sp->rbuf);
	free(sp);
}

uint32_t spool_xid(const struct spool *sp)
{
	return sp->xid;
}

static int note_subxact(struct spool *sp, uint32_t subxid, struct err *e)
{
	struct subxact *subs;

	for (size_t i = 0; i < sp->nsubs; i++)
		if (sp->subs[i].xid == subxid)
			return 0;
	subs = grow_array(sp->subs, &sp->subcap, sp->nsubs + 1, sizeof *subs, SIZE_MAX);
	if (subs == NULL)
		return err_set(e, "could not spool: out of memory");
	sp->subs = subs;
	sp->subs[sp->nsubs++] = (struct subxact){subxid, sp->size};
	return 0;
}

int spool_append(struct spool *sp, uint64_t lsn, uint32_t subxid, const uint8_t *msg, size_t len,
                 struct err *e)
{
	uint8_t hdr[RECORD_HEADER];

	if (len > SPOOL_MAX_MESSAGE)
		return err_set(e, "could not spool: message of %zu bytes", len);
	if (note_subxact(sp, subxid, e) < 0)
		return -1;
	be_put64(hdr, lsn);
	be_put32(hdr + 8, (uint32_t)len); /* at most SPOOL_MAX_MESSAGE */
	if (fwrite(hdr, 1, sizeof hdr, sp->f) != sizeof hdr || fwrite(msg, 1, len, sp->f) != len)
		return io_error(e, "write");
	sp->size += (off_t)(sizeof hdr + len);
	return 0;
}

int spool_abort_subxact(struct spool *sp, uint32_t subxid, struct err *e)
{
	size_t i = 0;

	while (i < sp->nsubs && sp->subs[i].xid != subxid)
		i++;
	if (i == sp->nsubs)
		return 0; /* it spooled nothing */
	/* Subtransactions are seen in order, so everything from this one's
	 * first record on belongs to it or to its children. */
	if (fflush(sp->f) != 0 || ftruncate(fileno(sp->f), sp->subs[i].offset) != 0 ||
	    fseeko(sp->f, sp->subs[i].offset, SEEK_SET) != 0)
		return io_error(e, "truncate");
	sp->size = sp->subs[i].offset;
	sp->nsubs = i;
	return 0;
}

int spool_rewind(struct spool *sp, struct err *e)
{
	if (fflush(sp->f) != 0 || fseeko(sp->f, 0, SEEK_SET) != 0)
		return io_error(e, "rewind");
	return 0;
}

int spool_next(struct spool *sp, uint64_t *lsn, const uint8_t **msg, size_t *len, struct err *e)
{
	uint8_t hdr[RECORD_HEADER];
	uint32_t n;
	struct rd r;

	if (ftello(sp->f) >= sp->size)
		return 0;
	if (fread(hdr, 1, sizeof hdr, sp->f) != sizeof hdr)
		return io_error(e, "read");
	rd_init(&r, hdr, sizeof hdr);
	rd_u64(&r, lsn);
	rd_u32(&r, &n);
	if (n > SPOOL_MAX_MESSAGE)
		return err_set(e, "could not read spool file: corrupt record length %u", n);
	if (n > sp->rcap) {
		uint8_t *nb = grow_array(sp->rbuf, &sp->rcap, n, 1, SPOOL_MAX_MESSAGE);

		if (nb == NULL)
			return err_set(e, "could not read spool file: out of memory");
		sp->rbuf = nb;
	}
	if (n > 0 && fread(sp->rbuf, 1, n, sp->f) != n)
		return io_error(e, "read");
	*msg = sp->rbuf;
	*len = n;
	return 1;
}

void spool_set_reset(struct spool_set *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		spool_free(ss->v[i]);
	free(ss->v);
	memset(ss, 0, sizeof *ss);
}

struct spool *spool_set_find(const struct spool_set *ss, uint32_t xid)
{
	for (size_t i = 0; i < ss->n; i++)
		if (ss->v[i]->xid == xid)
			return ss->v[i];
	return NULL;
}

int spool_set_start(struct spool_set *ss, uint32_t xid, bool first_segment, struct err *e)
{
	struct spool *sp = spool_set_find(ss, xid), **v;

	if (sp) {
		ss->current = sp;
		return 0;
	}
	if (!first_segment)
		return err_set(e,
		               "could not follow stream: transaction %u continues but was never "
		               "started",
		               xid);
	v = grow_array(ss->v, &ss->cap, ss->n + 1, sizeof *v, SIZE_MAX);
	if (v == NULL)
		return err_set(e, "could not follow stream: out of memory");
	ss->v = v;
	sp = spool_new(xid, e);
	if (sp == NULL)
		return -1;
	ss->v[ss->n++] = sp;
	ss->current = sp;
	return 0;
}

void spool_set_drop(struct spool_set *ss, struct spool *sp)
{
	for (size_t i = 0; i < ss->n; i++) {
		if (ss->v[i] != sp)
			continue;
		if (ss->current == sp)
			ss->current = NULL;
		spool_free(sp);
		ss->v[i] = ss->v[--ss->n];
		return;
	}
}
