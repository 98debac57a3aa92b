/*
 * rd.h — a bounds-checked reader over a borrowed byte range.
 *
 * Every getter returns false, and leaves the output untouched, when the
 * remaining bytes are too few: a parser can chain reads and check once.
 * Integers are big-endian (network order), as on the PostgreSQL wire.
 *
 * The getters are inline: the decoder calls several per column of every row,
 * and as calls they were a tenth of pgstream's instructions (callgrind).
 */
#ifndef PGSTREAM_RD_H
#define PGSTREAM_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct rd {
	const uint8_t *p;
	size_t left;
};

static inline void rd_init(struct rd *r, const void *data, size_t len)
{
	r->p = data;
	r->left = len;
}

static inline bool rd_u8(struct rd *r, uint8_t *out)
{
	if (r->left < 1)
		return false;
	*out = r->p[0];
	r->p += 1;
	r->left -= 1;
	return true;
}

static inline bool rd_u16(struct rd *r, uint16_t *out)
{
	if (r->left < 2)
		return false;
	*out = (uint16_t)((uint16_t)r->p[0] << 8 | r->p[1]);
	r->p += 2;
	r->left -= 2;
	return true;
}

static inline bool rd_u32(struct rd *r, uint32_t *out)
{
	if (r->left < 4)
		return false;
	*out = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->left -= 4;
	return true;
}

static inline bool rd_u64(struct rd *r, uint64_t *out)
{
	uint32_t hi, lo;

	if (r->left < 8)
		return false;
	rd_u32(r, &hi);
	rd_u32(r, &lo);
	*out = (uint64_t)hi << 32 | lo;
	return true;
}

static inline bool rd_i32(struct rd *r, int32_t *out)
{
	uint32_t v;

	if (!rd_u32(r, &v))
		return false;
	*out = (int32_t)v;
	return true;
}

static inline bool rd_i64(struct rd *r, int64_t *out)
{
	uint64_t v;

	if (!rd_u64(r, &v))
		return false;
	*out = (int64_t)v;
	return true;
}

/* Borrow n bytes; *out points into the reader's buffer. */
static inline bool rd_bytes(struct rd *r, size_t n, const uint8_t **out)
{
	if (r->left < n)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

/* Borrow a NUL-terminated string (terminator consumed, not counted in *len). */
static inline bool rd_cstr(struct rd *r, const char **out, size_t *len)
{
	const uint8_t *nul = r->left ? memchr(r->p, '\0', r->left) : NULL;

	if (nul == NULL)
		return false;
	*out = (const char *)r->p;
	*len = (size_t)(nul - r->p);
	r->p = nul + 1;
	r->left -= *len + 1;
	return true;
}

#endif
