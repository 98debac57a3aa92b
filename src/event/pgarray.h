/*
 * pgarray.h — a PostgreSQL array literal ('{1,2}', '{{"a b",NULL}}') as a
 * (nested) JSON array.
 *
 * The parser knows the literal's syntax (array_in's: quoting, backslash
 * escapes, the NULL word, dimension bounds, the element type's delimiter);
 * what an element becomes is the caller's, through an element writer.
 */
#ifndef PGSTREAM_PGARRAY_H
#define PGSTREAM_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Writes one element's text s[0..n) (quotes and escapes removed; never the
 * NULL word) as a JSON value, at most PGARRAY_ELEM_MAX(n) bytes: an element
 * with escapes is unescaped into out itself first, and the room reserved
 * for it must not move while the writer reads it. A writer that may write
 * more must be done reading s before it appends to out. */
typedef void (*pgarray_elem_fn)(void *ctx, struct buf *out, const char *s, size_t n);
#define PGARRAY_ELEM_MAX(n) (6 * (n) + 16)

/* Append s[0..len), elements separated by delim, as a JSON array (NULL
 * elements as null, bounds dropped). Returns false, with out as it was, if
 * s is not a well-formed array literal. */
bool pgarray_write(struct buf *out, const char *s, size_t len, char delim, pgarray_elem_fn elem,
                   void *ctx);

#endif
