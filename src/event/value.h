/*
 * value.h — one column value as JSON, by its rendering (event/valtype.h).
 *
 * pgoutput sends a value as the type's text output; the rendering says what
 * JSON it becomes: true/false, a number from its exact digits, embedded
 * json, a JSON array, or a string. Whenever the text is not what the
 * rendering promises (a number that is not valid JSON, a malformed array
 * literal, json that does not parse), the value becomes a JSON string
 * instead, so the output is valid whatever the server sends.
 */
#ifndef PGSTREAM_VALUE_H
#define PGSTREAM_VALUE_H

#include <stddef.h>

#include "event/valtype.h"
#include "pg/pgoutput.h"
#include "util/buf.h"

/* Append the value whose text is s[0..len), rendered by vt. */
void json_write_value(struct buf *out, const struct valtype *vt, const char *s, size_t len);

/* Append one tuple column: its text rendered by vt, binary data as a hex
 * string, anything else (null) as null. Unchanged TOAST columns are left
 * out before this (event/row.h). */
void json_write_column(struct buf *out, const struct valtype *vt, const struct pgo_value *v);

#endif
