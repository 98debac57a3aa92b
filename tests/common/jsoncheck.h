/*
 * jsoncheck.h — a strict JSON validator (RFC 8259, UTF-8 checked) used as an
 * oracle by the unit tests and the fuzz targets: whatever the encoder is fed,
 * its output must pass. Recursion is bounded (depth 10000), so hostile input
 * fails instead of overflowing the stack.
 */
#ifndef PGSTREAM_TEST_JSONCHECK_H
#define PGSTREAM_TEST_JSONCHECK_H

#include <stddef.h>

/* 1 if s[0..len) is exactly one JSON text (surrounding whitespace allowed),
 * else 0. */
int jsoncheck_text(const char *s, size_t len);

/* 1 if s[0..len) is one JSONL record: a JSON text, then exactly one '\n'
 * that ends it; else 0. */
int jsoncheck_line(const char *s, size_t len);

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF), else 0. */
int jsoncheck_utf8(const char *s, size_t len);

#endif
