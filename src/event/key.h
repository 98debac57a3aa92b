/*
 * key.h — an event's key: what a sink that routes events (Kafka) partitions
 * and compacts by, as a compact JSON object written with the event's own
 * value rules.
 *
 * A row's key is its key columns (struct relinfo's key): those pgoutput
 * flags as part of the replica identity, the primary key or the index of
 * REPLICA IDENTITY USING INDEX; under REPLICA IDENTITY FULL, where pgoutput
 * flags every column, the primary key the daemon found in the catalog, or
 * the whole row when there is none: {"id":42}. A logical message's key is its prefix,
 * {"prefix":"app"}, so one prefix's messages stay in order. A transaction's
 * begin and commit events (--tx-events) have its xid, {"xid":727}. A TRUNCATE, and
 * a row of a table without key columns, have none.
 */
#ifndef PGSTREAM_KEY_H
#define PGSTREAM_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "event/event.h"
#include "event/row.h"
#include "util/buf.h"

/* Append ev's key to out, its values rendered as opt says (the event's
 * own options; NULL: the defaults). Returns false, appending nothing, when
 * it has none. */
bool key_write(struct buf *out, const struct event *ev, const struct row_opts *opt);

/* An UPDATE whose old tuple Postgres sent (the key changed, or REPLICA
 * IDENTITY FULL): append the old row's key to out and return true when it
 * differs from key[0..key_len) (the new one, from key_write; NULL if none).
 * Otherwise append nothing and return false. */
bool key_write_old(struct buf *out, const struct event *ev, const char *key, size_t key_len,
                   const struct row_opts *opt);

/* The tuple a row event's key is taken from (old: the old key's, an
 * UPDATE's old tuple), NULL when it has none (no key columns, not sent,
 * not a row event): what key_write and key_write_old render, for a format
 * that renders keys its own way (encoder.h's encoder_write_key). */
const struct pgo_tuple *key_tuple(const struct event *ev, bool old);

#endif
