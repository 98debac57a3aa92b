/*
 * copytext.h — one row of COPY ... TO STDOUT in text format, split into
 * column values as pgoutput would send them.
 *
 * COPY's text format writes each value as its type's output function
 * renders it (the same text pgoutput sends), with backslash escapes for
 * the delimiter, newlines and backslashes, and \N for NULL. Undoing the
 * escapes never lengthens a value, so the row is decoded in place and the
 * values point into it: no allocation per row. Pure: no I/O.
 */
#ifndef PGSTREAM_COPYTEXT_H
#define PGSTREAM_COPYTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "pg/pgoutput.h"
#include "util/err.h"

/*
 * Split row[0..len) (one CopyData message: fields separated by tabs, an
 * optional final newline) into exactly ncols values in vals, decoding
 * escapes in place: a value is PGO_COL_NULL for \N, else PGO_COL_TEXT
 * pointing into row. -1 with *e set if the row does not have ncols fields
 * or holds an escape COPY cannot have written.
 */
int copytext_split(char *row, size_t len, struct pgo_value *vals, uint16_t ncols, struct err *e);

#endif
