/*
 * jstring.h — JSON strings from arbitrary bytes, and the UTF-8 rules.
 *
 * Output is always valid UTF-8 JSON: '"', '\\' and control characters are
 * escaped, and each byte that does not start a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF)
 * becomes U+FFFD.
 */
#ifndef PGSTREAM_JSTRING_H
#define PGSTREAM_JSTRING_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Append s[0..len) as a quoted, escaped JSON string. */
void json_write_string(struct buf *out, const char *s, size_t len);

/* 1 if s[0..len) is valid UTF-8, else 0. */
int json_utf8_valid(const char *s, size_t len);

/* Length of the well-formed UTF-8 sequence at p[0..n) (n >= 1), or 0. */
size_t json_utf8_seq_len(const uint8_t *p, size_t n);

/* How many of the first len bytes of s a JSON string holds as they are:
 * printable ASCII other than '"' and '\\'. */
size_t json_plain_prefix(const uint8_t *s, size_t len);

#endif
