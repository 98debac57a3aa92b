/*
 * pgoutput.c — decoder of the pgoutput logical replication protocol.
 *
 * One reader per message type, each preceded by the wire layout it reads
 * (PostgreSQL "Logical Replication Message Formats"; Int<n> are big-endian,
 * String is NUL-terminated). Every read goes through struct rd, so no reader
 * can run past the input.
 *
 * A decode is all or nothing for the decoder's state: readers only fill the
 * output message (and scratch space); what changes state — a Relation or Type
 * entering the cache, a stream starting or stopping — is applied by
 * apply_msg() after the whole message has been read and found complete.
 *
 * Error offsets count from the message's type byte and name the first byte
 * not consumed: where a truncated field starts, or just past a bad value.
 */
#include "pg/pgoutput.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"
#include "util/rd.h"

/* Postgres's MaxTupleAttributeNumber: no relation or tuple has more. */
#define PGO_MAX_COLS 1664
/* Far more than one TRUNCATE statement names in practice; the count is also
 * checked against the bytes present before anything is allocated. */
#define PGO_MAX_TRUNCATE_RELS (1u << 20)
/* Smallest column in a Relation message: flags, empty name, type, typmod. */
#define PGO_RELCOL_MIN_BYTES (1 + 1 + 4 + 4)

/* The TRUNCATE option bits this decoder knows. */
#define PGO_TRUNCATE_FLAGS (PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY)

/* A growable scratch array of column values, reused across messages. */
struct colbuf {
	struct pgo_value *v;
	size_t cap;
};

struct pgo_decoder {
	int proto_version;
	bool in_stream;      /* between STREAM START and STREAM STOP */
	uint32_t stream_xid; /* the STREAM START xid while in_stream */
	struct relcache *rc;
	struct colbuf oldcols;
	struct colbuf newcols;
	uint32_t *relids; /* TRUNCATE scratch */
	size_t relcap;
};

/* One message being decoded. */
struct pgo_in {
	struct pgo_decoder *d;
	struct rd rd;
	size_t len;
	const char *what;     /* message name, for errors */
	struct relation *rel; /* RELATION: built, not yet in the cache */
	struct err *e;
};

struct pgo_reader {
	const char *name;
	int min_version;
	bool stream_xid; /* starts with the xid when inside a streamed transaction */
	int (*read)(struct pgo_in *in, struct pgo_msg *m);
};

static int fail(struct pgo_in *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct pgo_in *in, const char *fmt, ...)
{
	char why[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return err_set(in->e, "could not decode %s: %s at offset %zu", in->what, why,
	               in->len - in->rd.left);
}

static int truncated(struct pgo_in *in)
{
	return fail(in, "message truncated");
}

static int nomem(struct pgo_in *in)
{
	return fail(in, "out of memory");
}

static int read_str(struct pgo_in *in, const char **out)
{
	size_t len;

	if (!rd_cstr(&in->rd, out, &len))
		return fail(in, "unterminated string");
	return 0;
}

/* Namespace names are sent empty for pg_catalog, to save space. */
static int read_nspname(struct pgo_in *in, const char **out)
{
	if (read_str(in, out) < 0)
		return -1;
	if (**out == '\0')
		*out = "pg_catalog";
	return 0;
}

static int read_flags(struct pgo_in *in, uint8_t allowed, uint8_t *flags)
{
	if (!rd_u8(&in->rd, flags))
		return truncated(in);
	if (*flags & ~allowed)
		return fail(in, "unrecognized flags 0x%02x", *flags);
	return 0;
}

static int need_lsn(struct pgo_in *in, uint64_t lsn, const char *field)
{
	if (lsn == 0)
		return fail(in, "%s not set", field);
	return 0;
}

/*
 * Read transaction BEGIN from the stream.
 *   Byte1('B') Int64 final_lsn, Int64 commit_time, Int32 xid
 */
static int read_begin(struct pgo_in *in, struct pgo_msg *m)
{
	if (!rd_u64(&in->rd, &m->u.begin.final_lsn) || !rd_i64(&in->rd, &m->u.begin.commit_time) ||
	    !rd_u32(&in->rd, &m->u.begin.xid))
		return truncated(in);
	return need_lsn(in, m->u.begin.final_lsn, "final LSN");
}

/*
 * Read transaction COMMIT from the stream.
 *   Byte1('C') Int8 flags (0), Int64 commit_lsn, Int64 end_lsn, Int64 commit_time
 */
static int read_commit(struct pgo_in *in, struct pgo_msg *m)
{
	if (read_flags(in, 0, &m->u.commit.flags) < 0)
		return -1;
	if (!rd_u64(&in->rd, &m->u.commit.commit_lsn) || !rd_u64(&in->rd, &m->u.commit.end_lsn) ||
	    !rd_i64(&in->rd, &m->u.commit.commit_time))
		return truncated(in);
	return 0;
}

/*
 * Read ORIGIN from the stream.
 *   Byte1('O') Int64 commit_lsn (on the origin server), String name
 */
static int read_origin(struct pgo_in *in, struct pgo_msg *m)
{
	if (!rd_u64(&in->rd, &m->u.origin.commit_lsn))
		return truncated(in);
	return read_str(in, &m->u.origin.name);
}

/*
 * Read one column description of a RELATION message into col.
 *   Int8 flags (1: part of the replica identity key), String name,
 *   Int32 type OID, Int32 typmod
 */
static int read_relcol(struct pgo_in *in, struct relcol *col)
{
	const char *name = NULL;

	if (read_flags(in, RELCACHE_COL_KEY, &col->flags) < 0 || read_str(in, &name) < 0)
		return -1;
	if (!rd_u32(&in->rd, &col->typoid) || !rd_i32(&in->rd, &col->typmod))
		return truncated(in);
	col->name = strdup(name);
	if (col->name == NULL)
		return nomem(in);
	return 0;
}

/*
 * Read RELATION from the stream into in->rel (a new, owned struct relation;
 * apply_msg() moves it into the cache).
 *   Byte1('R') [Int32 xid] Int32 relation OID, String namespace ("" for
 *   pg_catalog), String relation name, Int8 replica identity ('d','n','f','i'),
 *   Int16 ncols, then ncols column descriptions (read_relcol)
 */
static int read_relation(struct pgo_in *in, struct pgo_msg *m)
{
	struct relation *rel;
	const char *nsp = NULL, *name = NULL;
	uint32_t oid;
	uint8_t replident;
	uint16_t ncols;

	(void)m;
	if (!rd_u32(&in->rd, &oid))
		return truncated(in);
	if (read_nspname(in, &nsp) < 0 || read_str(in, &name) < 0)
		return -1;
	if (!rd_u8(&in->rd, &replident))
		return truncated(in);
	if (replident == '\0' || strchr("dnfi", replident) == NULL)
		return fail(in, "unrecognized replica identity 0x%02x", replident);
	if (!rd_u16(&in->rd, &ncols))
		return truncated(in);
	if (ncols > PGO_MAX_COLS)
		return fail(in, "%u columns exceed the maximum of %d", ncols, PGO_MAX_COLS);
	if ((size_t)ncols * PGO_RELCOL_MIN_BYTES > in->rd.left)
		return fail(in, "%u columns declared but only %zu bytes left", ncols, in->rd.left);

	rel = in->rel = calloc(1, sizeof *rel);
	if (rel == NULL)
		return nomem(in);
	rel->oid = oid;
	rel->replident = (char)replident;
	rel->nspname = strdup(nsp);
	rel->relname = strdup(name);
	if (rel->nspname == NULL || rel->relname == NULL)
		return nomem(in);
	if (ncols > 0) {
		rel->cols = calloc(ncols, sizeof *rel->cols);
		if (rel->cols == NULL)
			return nomem(in);
		rel->ncols = ncols;
	}
	for (uint16_t i = 0; i < ncols; i++)
		if (read_relcol(in, &rel->cols[i]) < 0)
			return -1;
	return 0;
}

/*
 * Read TYPE from the stream.
 *   Byte1('Y') [Int32 xid] Int32 type OID, String namespace ("" for
 *   pg_catalog), String type name
 */
static int read_type(struct pgo_in *in, struct pgo_msg *m)
{
	if (!rd_u32(&in->rd, &m->u.type.oid))
		return truncated(in);
	if (read_nspname(in, &m->u.type.nspname) < 0)
		return -1;
	return read_str(in, &m->u.type.typname);
}

static int colbuf_reserve(struct colbuf *b, size_t n)
{
	struct pgo_value *v;

	if (n <= b->cap)
		return 0;
	v = grow_array(b->v, &b->cap, n, sizeof *v, SIZE_MAX);
	if (v == NULL)
		return -1;
	b->v = v;
	return 0;
}

/*
 * Read one column value of a tuple.
 *   Byte1 kind: 'n' null | 'u' unchanged TOASTed value (not sent) |
 *               't' text or 'b' binary, followed by Int32 len, Byte(len)
 */
static int read_value(struct pgo_in *in, uint16_t colno, struct pgo_value *v)
{
	const uint8_t *data;
	uint8_t kind;
	int32_t len;

	if (!rd_u8(&in->rd, &kind))
		return truncated(in);
	v->kind = (char)kind;
	v->len = 0;
	v->data = NULL;
	switch (kind) {
	case PGO_COL_NULL:
	case PGO_COL_UNCHANGED_TOAST:
		return 0;
	case PGO_COL_TEXT:
	case PGO_COL_BINARY:
		break;
	default:
		return fail(in, "unrecognized kind 0x%02x of column %u", kind, colno + 1);
	}
	if (!rd_i32(&in->rd, &len))
		return truncated(in);
	if (len < 0)
		return fail(in, "negative length %d of column %u", len, colno + 1);
	if (!rd_bytes(&in->rd, (size_t)len, &data))
		return truncated(in);
	v->len = (uint32_t)len;
	v->data = (const char *)data;
	return 0;
}

/*
 * Read TupleData of a row of rel into the scratch array b; t borrows it.
 *   Int16 ncols (must equal the relation's), then ncols values (read_value)
 */
static int read_tuple(struct pgo_in *in, const struct relation *rel, struct colbuf *b,
                      struct pgo_tuple *t)
{
	uint16_t ncols;

	if (!rd_u16(&in->rd, &ncols))
		return truncated(in);
	if (ncols != rel->ncols)
		return fail(in, "tuple has %u columns but relation %s.%s has %u", ncols,
		            rel->nspname, rel->relname, rel->ncols);
	if (colbuf_reserve(b, ncols) < 0)
		return nomem(in);
	for (uint16_t i = 0; i < ncols; i++)
		if (read_value(in, i, &b->v[i]) < 0)
			return -1;
	t->ncols = ncols;
	t->cols = b->v;
	return 0;
}

/* Int32 relation OID of a change, which a RELATION message must have described. */
static int read_change_rel(struct pgo_in *in, struct pgo_msg *m)
{
	uint32_t oid;

	if (!rd_u32(&in->rd, &oid))
		return truncated(in);
	m->u.change.rel = relcache_get(in->d->rc, oid);
	if (m->u.change.rel == NULL)
		return fail(in, "relation OID %u not seen in a Relation message", oid);
	return 0;
}

/* Byte1 that says which tuple follows: 'N' new, 'K' old key, 'O' old row. */
static int read_tuple_tag(struct pgo_in *in, const char *allowed, uint8_t *tag)
{
	if (!rd_u8(&in->rd, tag))
		return truncated(in);
	if (*tag == '\0' || strchr(allowed, *tag) == NULL)
		return fail(in, "unexpected tuple tag 0x%02x (expected one of \"%s\")", *tag,
		            allowed);
	return 0;
}

/*
 * Read INSERT from the stream.
 *   Byte1('I') [Int32 xid] Int32 relation OID, Byte1('N'), TupleData new row
 */
static int read_insert(struct pgo_in *in, struct pgo_msg *m)
{
	uint8_t tag = 0;

	if (read_change_rel(in, m) < 0 || read_tuple_tag(in, "N", &tag) < 0)
		return -1;
	return read_tuple(in, m->u.change.rel, &in->d->newcols, &m->u.change.newtup);
}

/*
 * Read UPDATE from the stream.
 *   Byte1('U') [Int32 xid] Int32 relation OID,
 *   optionally Byte1('K') TupleData old key or Byte1('O') TupleData old row,
 *   then Byte1('N') TupleData new row
 */
static int read_update(struct pgo_in *in, struct pgo_msg *m)
{
	const struct relation *rel;
	uint8_t tag = 0;

	if (read_change_rel(in, m) < 0 || read_tuple_tag(in, "KON", &tag) < 0)
		return -1;
	rel = m->u.change.rel;
	if (tag != 'N') {
		m->u.change.old_kind = (char)tag;
		if (read_tuple(in, rel, &in->d->oldcols, &m->u.change.oldtup) < 0 ||
		    read_tuple_tag(in, "N", &tag) < 0)
			return -1;
	}
	return read_tuple(in, rel, &in->d->newcols, &m->u.change.newtup);
}

/*
 * Read DELETE from the stream.
 *   Byte1('D') [Int32 xid] Int32 relation OID,
 *   Byte1('K') TupleData old key or Byte1('O') TupleData old row
 */
static int read_delete(struct pgo_in *in, struct pgo_msg *m)
{
	uint8_t tag = 0;

	if (read_change_rel(in, m) < 0 || read_tuple_tag(in, "KO", &tag) < 0)
		return -1;
	m->u.change.old_kind = (char)tag;
	return read_tuple(in, m->u.change.rel, &in->d->oldcols, &m->u.change.oldtup);
}

/*
 * Read TRUNCATE from the stream.
 *   Byte1('T') [Int32 xid] Int32 nrels, Int8 options (1 CASCADE,
 *   2 RESTART IDENTITY), nrels × Int32 relation OID
 */
static int read_truncate(struct pgo_in *in, struct pgo_msg *m)
{
	struct pgo_decoder *d = in->d;
	uint32_t nrels;

	if (!rd_u32(&in->rd, &nrels))
		return truncated(in);
	if (read_flags(in, PGO_TRUNCATE_FLAGS, &m->u.truncate.options) < 0)
		return -1;
	if (nrels > PGO_MAX_TRUNCATE_RELS)
		return fail(in, "%u relations exceed the maximum of %u", nrels,
		            PGO_MAX_TRUNCATE_RELS);
	if ((size_t)nrels * 4 > in->rd.left)
		return fail(in, "%u relations declared but only %zu bytes left", nrels,
		            in->rd.left);
	if (nrels > d->relcap) {
		uint32_t *relids =
		    grow_array(d->relids, &d->relcap, nrels, sizeof *relids, PGO_MAX_TRUNCATE_RELS);

		if (relids == NULL)
			return nomem(in);
		d->relids = relids;
	}
	for (uint32_t i = 0; i < nrels; i++)
		if (!rd_u32(&in->rd, &d->relids[i]))
			return truncated(in);
	m->u.truncate.nrels = nrels;
	m->u.truncate.relids = d->relids;
	return 0;
}

/*
 * Read a logical decoding MESSAGE (pg_logical_emit_message) from the stream.
 *   Byte1('M') [Int32 xid] Int8 flags (1 transactional), Int64 lsn,
 *   String prefix, Int32 len, Byte(len) content
 */
static int read_message(struct pgo_in *in, struct pgo_msg *m)
{
	int32_t len;

	if (read_flags(in, PGO_MESSAGE_TRANSACTIONAL, &m->u.message.flags) < 0)
		return -1;
	if (!rd_u64(&in->rd, &m->u.message.lsn))
		return truncated(in);
	if (read_str(in, &m->u.message.prefix) < 0)
		return -1;
	if (!rd_i32(&in->rd, &len))
		return truncated(in);
	if (len < 0)
		return fail(in, "negative content length %d", len);
	if (!rd_bytes(&in->rd, (size_t)len, &m->u.message.content))
		return truncated(in);
	m->u.message.len = (uint32_t)len;
	return 0;
}

/*
 * Read STREAM START from the stream.
 *   Byte1('S') Int32 xid, Int8 first_segment (1 for the transaction's first)
 */
static int read_stream_start(struct pgo_in *in, struct pgo_msg *m)
{
	if (in->d->in_stream)
		return fail(in, "transaction %u is already streaming", in->d->stream_xid);
	if (!rd_u32(&in->rd, &m->u.stream_start.xid) ||
	    !rd_u8(&in->rd, &m->u.stream_start.first_segment))
		return truncated(in);
	if (m->u.stream_start.first_segment > 1)
		return fail(in, "unrecognized first segment value %u",
		            m->u.stream_start.first_segment);
	m->stream_xid = m->u.stream_start.xid;
	return 0;
}

/*
 * Read STREAM STOP from the stream.
 *   Byte1('E')
 */
static int read_stream_stop(struct pgo_in *in, struct pgo_msg *m)
{
	if (!in->d->in_stream)
		return fail(in, "no transaction is streaming");
	m->stream_xid = in->d->stream_xid;
	return 0;
}

/*
 * Read STREAM COMMIT from the stream.
 *   Byte1('c') Int32 xid, Int8 flags (0), Int64 commit_lsn, Int64 end_lsn,
 *   Int64 commit_time
 */
static int read_stream_commit(struct pgo_in *in, struct pgo_msg *m)
{
	if (!rd_u32(&in->rd, &m->u.stream_commit.xid))
		return truncated(in);
	if (read_flags(in, 0, &m->u.stream_commit.flags) < 0)
		return -1;
	if (!rd_u64(&in->rd, &m->u.stream_commit.commit_lsn) ||
	    !rd_u64(&in->rd, &m->u.stream_commit.end_lsn) ||
	    !rd_i64(&in->rd, &m->u.stream_commit.commit_time))
		return truncated(in);
	m->stream_xid = m->u.stream_commit.xid;
	return 0;
}

/*
 * Read STREAM ABORT from the stream.
 *   Byte1('A') Int32 xid, Int32 subxid (equal to xid for the top level),
 *   v4 with streaming = parallel only: Int64 abort_lsn, Int64 abort_time
 *
 * Whether the v4 fields are present depends on a subscription option the
 * bytes do not carry, so a v4 message is read by its length.
 */
static int read_stream_abort(struct pgo_in *in, struct pgo_msg *m)
{
	if (!rd_u32(&in->rd, &m->u.stream_abort.xid) || !rd_u32(&in->rd, &m->u.stream_abort.subxid))
		return truncated(in);
	if (in->d->proto_version >= 4 && in->rd.left > 0 &&
	    (!rd_u64(&in->rd, &m->u.stream_abort.abort_lsn) ||
	     !rd_i64(&in->rd, &m->u.stream_abort.abort_time)))
		return truncated(in);
	m->stream_xid = m->u.stream_abort.xid;
	return 0;
}

/* The tail shared by the two-phase messages: Int32 xid, String gid. */
static int read_xid_gid(struct pgo_in *in, uint32_t *xid, const char **gid)
{
	if (!rd_u32(&in->rd, xid))
		return truncated(in);
	return read_str(in, gid);
}

/*
 * Read the body shared by BEGIN PREPARE, PREPARE and STREAM PREPARE.
 *   Int64 prepare_lsn, Int64 end_lsn, Int64 prepare_time, Int32 xid, String gid
 */
static int read_prepare_body(struct pgo_in *in, struct pgo_msg *m)
{
	if (!rd_u64(&in->rd, &m->u.prepare.prepare_lsn) ||
	    !rd_u64(&in->rd, &m->u.prepare.end_lsn) || !rd_i64(&in->rd, &m->u.prepare.prepare_time))
		return truncated(in);
	if (need_lsn(in, m->u.prepare.prepare_lsn, "prepare LSN") < 0 ||
	    need_lsn(in, m->u.prepare.end_lsn, "end LSN") < 0)
		return -1;
	return read_xid_gid(in, &m->u.prepare.xid, &m->u.prepare.gid);
}

/*
 * Read BEGIN PREPARE from the stream.
 *   Byte1('b') then the prepare body (no flags byte)
 */
static int read_begin_prepare(struct pgo_in *in, struct pgo_msg *m)
{
	return read_prepare_body(in, m);
}

/*
 * Read PREPARE or STREAM PREPARE from the stream.
 *   Byte1('P' or 'p') Int8 flags (0), then the prepare body
 */
static int read_prepare(struct pgo_in *in, struct pgo_msg *m)
{
	if (read_flags(in, 0, &m->u.prepare.flags) < 0)
		return -1;
	return read_prepare_body(in, m);
}

/*
 * Read COMMIT PREPARED from the stream.
 *   Byte1('K') Int8 flags (0), Int64 commit_lsn, Int64 end_lsn,
 *   Int64 commit_time, Int32 xid, String gid
 */
static int read_commit_prepared(struct pgo_in *in, struct pgo_msg *m)
{
	if (read_flags(in, 0, &m->u.commit_prepared.flags) < 0)
		return -1;
	if (!rd_u64(&in->rd, &m->u.commit_prepared.commit_lsn) ||
	    !rd_u64(&in->rd, &m->u.commit_prepared.end_lsn) ||
	    !rd_i64(&in->rd, &m->u.commit_prepared.commit_time))
		return truncated(in);
	if (need_lsn(in, m->u.commit_prepared.commit_lsn, "commit LSN") < 0 ||
	    need_lsn(in, m->u.commit_prepared.end_lsn, "end LSN") < 0)
		return -1;
	return read_xid_gid(in, &m->u.commit_prepared.xid, &m->u.commit_prepared.gid);
}

/*
 * Read ROLLBACK PREPARED from the stream.
 *   Byte1('r') Int8 flags (0), Int64 prepare_end_lsn, Int64 rollback_end_lsn,
 *   Int64 prepare_time, Int64 rollback_time, Int32 xid, String gid
 */
static int read_rollback_prepared(struct pgo_in *in, struct pgo_msg *m)
{
	if (read_flags(in, 0, &m->u.rollback_prepared.flags) < 0)
		return -1;
	if (!rd_u64(&in->rd, &m->u.rollback_prepared.prepare_end_lsn) ||
	    !rd_u64(&in->rd, &m->u.rollback_prepared.rollback_end_lsn) ||
	    !rd_i64(&in->rd, &m->u.rollback_prepared.prepare_time) ||
	    !rd_i64(&in->rd, &m->u.rollback_prepared.rollback_time))
		return truncated(in);
	if (need_lsn(in, m->u.rollback_prepared.prepare_end_lsn, "prepare end LSN") < 0 ||
	    need_lsn(in, m->u.rollback_prepared.rollback_end_lsn, "rollback end LSN") < 0)
		return -1;
	return read_xid_gid(in, &m->u.rollback_prepared.xid, &m->u.rollback_prepared.gid);
}

/* Indexed by the type byte; an entry without a reader is not a message type. */
static const struct pgo_reader readers[128] = {
    [PGO_BEGIN] = {"BEGIN", 1, false, read_begin},
    [PGO_COMMIT] = {"COMMIT", 1, false, read_commit},
    [PGO_ORIGIN] = {"ORIGIN", 1, false, read_origin},
    [PGO_RELATION] = {"RELATION", 1, true, read_relation},
    [PGO_TYPE] = {"TYPE", 1, true, read_type},
    [PGO_INSERT] = {"INSERT", 1, true, read_insert},
    [PGO_UPDATE] = {"UPDATE", 1, true, read_update},
    [PGO_DELETE] = {"DELETE", 1, true, read_delete},
    [PGO_TRUNCATE] = {"TRUNCATE", 1, true, read_truncate},
    [PGO_MESSAGE] = {"MESSAGE", 1, true, read_message},
    [PGO_STREAM_START] = {"STREAM START", 2, false, read_stream_start},
    [PGO_STREAM_STOP] = {"STREAM STOP", 2, false, read_stream_stop},
    [PGO_STREAM_COMMIT] = {"STREAM COMMIT", 2, false, read_stream_commit},
    [PGO_STREAM_ABORT] = {"STREAM ABORT", 2, false, read_stream_abort},
    [PGO_BEGIN_PREPARE] = {"BEGIN PREPARE", 3, false, read_begin_prepare},
    [PGO_PREPARE] = {"PREPARE", 3, false, read_prepare},
    [PGO_COMMIT_PREPARED] = {"COMMIT PREPARED", 3, false, read_commit_prepared},
    [PGO_ROLLBACK_PREPARED] = {"ROLLBACK PREPARED", 3, false, read_rollback_prepared},
    [PGO_STREAM_PREPARE] = {"STREAM PREPARE", 3, false, read_prepare},
};

static const struct pgo_reader *reader_for(unsigned type)
{
	if (type >= sizeof readers / sizeof readers[0] || readers[type].read == NULL)
		return NULL;
	return &readers[type];
}

/* Returns the documented message name, or "UNKNOWN". */
const char *pgoutput_type_name(enum pgo_type type)
{
	const struct pgo_reader *r = reader_for((unsigned)type);

	return r ? r->name : "UNKNOWN";
}

/* Apply what a complete, valid message changes in the decoder's state. */
static int apply_msg(struct pgo_in *in, struct pgo_msg *m)
{
	struct pgo_decoder *d = in->d;
	struct relation *rel;

	switch (m->type) {
	case PGO_RELATION:
		rel = in->rel;
		in->rel = NULL;
		if (relcache_put(d->rc, rel) < 0) /* frees rel */
			return nomem(in);
		m->u.relation.rel = rel;
		break;
	case PGO_TYPE:
		if (relcache_put_type(d->rc, m->u.type.oid, m->u.type.nspname, m->u.type.typname) <
		    0)
			return nomem(in);
		break;
	case PGO_STREAM_START:
		d->in_stream = true;
		d->stream_xid = m->u.stream_start.xid;
		break;
	case PGO_STREAM_STOP:
		d->in_stream = false;
		d->stream_xid = 0;
		break;
	default:
		break;
	}
	return 0;
}

/* Read the message body after its type byte, check nothing is left over. */
static int decode_body(struct pgo_in *in, const struct pgo_reader *r, struct pgo_msg *m)
{
	if (in->d->proto_version < r->min_version)
		return fail(in, "message needs protocol version %d but version %d is in use",
		            r->min_version, in->d->proto_version);
	if (r->stream_xid && in->d->in_stream && !rd_u32(&in->rd, &m->stream_xid))
		return truncated(in);
	if (r->read(in, m) < 0)
		return -1;
	if (in->rd.left > 0)
		return fail(in, "%zu trailing bytes", in->rd.left);
	return apply_msg(in, m);
}

/* Decode one message; see pgoutput.h. The decoder's state changes only on
 * success. */
int pgoutput_decode(struct pgo_decoder *d, const uint8_t *data, size_t len, struct pgo_msg *out,
                    struct err *e)
{
	struct pgo_in in = {.d = d, .len = len, .what = "message", .e = e};
	const struct pgo_reader *r;
	uint8_t type;
	int rc;

	memset(out, 0, sizeof *out);
	rd_init(&in.rd, data, len);
	if (!rd_u8(&in.rd, &type))
		return fail(&in, "empty message");
	r = reader_for(type);
	if (r == NULL)
		return err_set(
		    e, "could not decode message: unknown message type 0x%02x at offset 0", type);
	out->type = (enum pgo_type)type;
	in.what = r->name;
	rc = decode_body(&in, r, out);
	relation_free(in.rel); /* a RELATION that failed part way */
	return rc;
}

/* True between STREAM START and STREAM STOP. */
bool pgoutput_in_stream(const struct pgo_decoder *d)
{
	return d->in_stream;
}

/* The (sub)transaction xid of a message inside a stream; see pgoutput.h. */
int pgoutput_peek_stream_xid(const uint8_t *data, size_t len, uint32_t *xid, struct err *e)
{
	const struct pgo_reader *r;
	struct rd rd;
	uint8_t type;

	rd_init(&rd, data, len);
	if (!rd_u8(&rd, &type))
		return err_set(e, "could not decode message: empty message at offset 0");
	r = reader_for(type);
	if (r == NULL || !r->stream_xid)
		return err_set(e,
		               "could not decode stream: message type 0x%02x inside a streamed "
		               "transaction",
		               type);
	if (!rd_u32(&rd, xid))
		return err_set(e, "could not decode %s: truncated at offset 1", r->name);
	return 0;
}

/* Decode a message that was spooled from inside a stream; see pgoutput.h. */
int pgoutput_decode_spooled(struct pgo_decoder *d, const uint8_t *data, size_t len,
                            struct pgo_msg *out, struct err *e)
{
	bool in_stream = d->in_stream;
	uint32_t stream_xid = d->stream_xid;
	int rc;

	d->in_stream = true; /* so the xid after the type byte is read */
	rc = pgoutput_decode(d, data, len, out, e);
	d->in_stream = in_stream;
	d->stream_xid = stream_xid;
	return rc;
}

/* Create a decoder for protocol version 1..4; NULL if out of range or out of
 * memory. */
struct pgo_decoder *pgoutput_new(int proto_version)
{
	struct pgo_decoder *d;

	if (proto_version < 1 || proto_version > 4)
		return NULL;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->proto_version = proto_version;
	d->rc = relcache_new();
	if (d->rc == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

/* Free the decoder, its relcache and its scratch space; accepts NULL. */
void pgoutput_free(struct pgo_decoder *d)
{
	if (d == NULL)
		return;
	relcache_free(d->rc);
	free(d->oldcols.v);
	free(d->newcols.v);
	free(d->relids);
	free(d);
}

/* The decoder's relation cache, owned by the decoder. */
struct relcache *pgoutput_relcache(struct pgo_decoder *d)
{
	return d->rc;
}
