/*
 * map.h — decoded pgoutput messages → events: the one mapping, shared by the
 * daemon and the fuzzer (so the fuzzer exercises the rules the daemon runs).
 *
 * Pure: no I/O, no allocation. An event borrows from the message (tuples,
 * prefix, content), from the relmap (the relation) and from the caller
 * (the transaction), and lives until the next message is decoded.
 *
 * The rules: a row change or a TRUNCATE outside a transaction, or naming a
 * relation no Relation message described, is an error (the stream is not
 * what pgoutput sends); an UPDATE has an old tuple only when pgoutput sent
 * one ('K' key or 'O' whole row), a DELETE always has one; a logical
 * message belongs to the transaction only when it is transactional.
 */
#ifndef PGSTREAM_MAP_H
#define PGSTREAM_MAP_H

#include <stdint.h>

#include "event/event.h"
#include "event/relinfo.h"
#include "pg/pgoutput.h"
#include "util/err.h"

/* The event of INSERT, UPDATE or DELETE m at lsn (its XLogData start) in
 * txn (NULL: outside a transaction, an error). -1 with *e set on error. */
int map_change(const struct pgo_msg *m, uint64_t lsn, const struct event_txn *txn,
               struct relmap *rels, struct event *out, struct err *e);

/* The event of relation i (< m->u.truncate.nrels) of TRUNCATE m. */
int map_truncate(const struct pgo_msg *m, uint32_t i, uint64_t lsn, const struct event_txn *txn,
                 struct relmap *rels, struct event *out, struct err *e);

/* The event of logical message m; txn is the transaction it arrived in, or
 * NULL. Cannot fail. */
void map_message(const struct pgo_msg *m, uint64_t lsn, const struct event_txn *txn,
                 struct event *out);

#endif
