/*
 * rd.h — a bounds-checked reader over a borrowed byte range.
 *
 * Every getter returns false, and leaves the output untouched, when the
 * remaining bytes are too few: a parser can chain reads and check once.
 * Integers are big-endian (network order), as on the PostgreSQL wire.
 */
#ifndef PGSTREAM_RD_H
#define PGSTREAM_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd {
	const uint8_t *p;
	size_t left;
};

static inline void rd_init(struct rd *r, const void *data, size_t len)
{
	r->p = data;
	r->left = len;
}

bool rd_u8(struct rd *r, uint8_t *out);
bool rd_u16(struct rd *r, uint16_t *out);
bool rd_u32(struct rd *r, uint32_t *out);
bool rd_u64(struct rd *r, uint64_t *out);
bool rd_i32(struct rd *r, int32_t *out);
bool rd_i64(struct rd *r, int64_t *out);
/* Borrow n bytes; *out points into the reader's buffer. */
bool rd_bytes(struct rd *r, size_t n, const uint8_t **out);
/* Borrow a NUL-terminated string (terminator consumed, not counted in *len). */
bool rd_cstr(struct rd *r, const char **out, size_t *len);

#endif
