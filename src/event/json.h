/*
 * json.h — event → JSON text, written straight into the sink's buffer.
 *
 * Two formats: FORMAT_JSON is the JSONL contract (one object per line, keys
 * in a fixed order, see README "Event format"); FORMAT_PRETTY is the seed's
 * human view ("[INSERT] table=users lsn=0/16C752F8" then data={...}).
 * Output is always valid UTF-8 JSON: control characters are escaped and
 * invalid UTF-8 bytes become U+FFFD. No allocation beyond the buf's growth.
 */
#ifndef PGSTREAM_JSON_H
#define PGSTREAM_JSON_H

#include <stddef.h>

#include "event/event.h"
#include "event/valtype.h"
#include "util/buf.h"

enum json_format {
	FORMAT_JSON,
	FORMAT_PRETTY,
};

/* Append one event: a line ending in '\n' (JSON) or a block (pretty). */
void json_write_event(struct buf *out, const struct event *ev, enum json_format fmt);

/* Format the transaction's JSON members once (at BEGIN) instead of for
 * every event of it: the commit time costs a gmtime and a printf. */
void json_txn_prepare(struct event_txn *txn);

/* Escape the relation's schema, table and column names once (when its
 * Relation message arrives) instead of for every event. Without it the
 * encoder escapes them on the fly; on allocation failure likewise. */
void json_relation_prepare(struct relation *rel);

/* Append s[0..len) as a quoted, escaped JSON string. */
void json_write_string(struct buf *out, const char *s, size_t len);

/* Append one column value rendered by vt (text form s[0..len)). Falls back to
 * a JSON string whenever the text is not what vt promises (e.g. a number
 * that is not valid JSON), so output stays valid whatever the server sends. */
void json_write_value(struct buf *out, const struct valtype *vt, const char *s, size_t len);

/* true if s[0..len) is valid UTF-8 (used for message content). */
int json_utf8_valid(const char *s, size_t len);

#endif
