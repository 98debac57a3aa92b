/*
 * binary.h — bytes that are not text, as JSON strings.
 */
#ifndef PGSTREAM_BINARY_H
#define PGSTREAM_BINARY_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* "\\x" and lower-case hex, as bytea's text output writes them: for a
 * column pgoutput sent in binary form. */
void json_write_hex(struct buf *out, const uint8_t *p, size_t n);

/* Standard base64 with padding (RFC 4648), quoted: for message content
 * that is not UTF-8. */
void json_write_base64(struct buf *out, const uint8_t *p, size_t n);

#endif
