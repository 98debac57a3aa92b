/*
 * spool.h — a streamed transaction's messages, parked on disk until its
 * commit.
 *
 * With pgoutput protocol v2 and streaming on, the server sends a large
 * transaction in chunks while it is still running, interleaved with other
 * transactions, and only later says whether it committed. pgstream promises
 * committed changes only, so each chunk is appended to an unlinked temporary
 * file (one per top-level transaction) and replayed through the decoder at
 * Stream Commit, or thrown away at Stream Abort. Memory stays flat: records
 * are read back one at a time.
 *
 * Record layout: Int64 WAL position, Int32 length, Byte[length] message.
 *
 * A spool_set is the table of streamed transactions not yet committed or
 * aborted, and the one whose chunk is arriving now.
 */
#ifndef PGSTREAM_SPOOL_H
#define PGSTREAM_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct spool;

/* A new, empty spool for top-level transaction xid, in $TMPDIR (or /tmp).
 * Returns NULL with *e set on failure. */
struct spool *spool_new(uint32_t xid, struct err *e);
void spool_free(struct spool *sp); /* accepts NULL */
uint32_t spool_xid(const struct spool *sp);

/* Append one message that (sub)transaction subxid sent at WAL position lsn. */
int spool_append(struct spool *sp, uint64_t lsn, uint32_t subxid, const uint8_t *msg, size_t len,
                 struct err *e);

/* A subtransaction rolled back: drop what it, and everything after its
 * first record, spooled (its own subtransactions come after it). */
int spool_abort_subxact(struct spool *sp, uint32_t subxid, struct err *e);

/* Replay: rewind, then spool_next() until it returns 0. *msg borrows the
 * spool's read buffer until the next call. Returns 1, 0 at the end, or -1
 * with *e set. */
int spool_rewind(struct spool *sp, struct err *e);
int spool_next(struct spool *sp, uint64_t *lsn, const uint8_t **msg, size_t *len, struct err *e);

struct spool_set {
	struct spool **v; /* the open transactions, in no order */
	size_t n;
	size_t cap;
	struct spool *current; /* between Stream Start and Stream Stop, else NULL */
};

/* An empty set needs no allocation: zero it. Reset frees every spool. */
void spool_set_reset(struct spool_set *ss);

/* The spool of top-level transaction xid, or NULL. */
struct spool *spool_set_find(const struct spool_set *ss, uint32_t xid);

/* Stream Start for xid: its spool becomes current, made if this is its
 * first segment. A later segment of a transaction never started is an
 * error (the stream is not what pgoutput sends). */
int spool_set_start(struct spool_set *ss, uint32_t xid, bool first_segment, struct err *e);

/* Stream Stop: no spool is current. */
static inline void spool_set_stop(struct spool_set *ss)
{
	ss->current = NULL;
}

/* The transaction committed (after its replay) or aborted: free sp. */
void spool_set_drop(struct spool_set *ss, struct spool *sp);

#endif
