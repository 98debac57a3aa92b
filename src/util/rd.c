/* rd.c — bounds-checked big-endian reads; see rd.h. */
#include "util/rd.h"

#include <string.h>

static bool rd_be(struct rd *r, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (r->left < n)
		return false;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | r->p[i];
	r->p += n;
	r->left -= n;
	*out = v;
	return true;
}

bool rd_u8(struct rd *r, uint8_t *out)
{
	uint64_t v;
	if (!rd_be(r, 1, &v))
		return false;
	*out = (uint8_t)v;
	return true;
}

bool rd_u16(struct rd *r, uint16_t *out)
{
	uint64_t v;
	if (!rd_be(r, 2, &v))
		return false;
	*out = (uint16_t)v;
	return true;
}

bool rd_u32(struct rd *r, uint32_t *out)
{
	uint64_t v;
	if (!rd_be(r, 4, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

bool rd_u64(struct rd *r, uint64_t *out)
{
	return rd_be(r, 8, out);
}

bool rd_i32(struct rd *r, int32_t *out)
{
	uint32_t v;
	if (!rd_u32(r, &v))
		return false;
	*out = (int32_t)v;
	return true;
}

bool rd_i64(struct rd *r, int64_t *out)
{
	uint64_t v;
	if (!rd_u64(r, &v))
		return false;
	*out = (int64_t)v;
	return true;
}

bool rd_bytes(struct rd *r, size_t n, const uint8_t **out)
{
	if (r->left < n)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

bool rd_cstr(struct rd *r, const char **out, size_t *len)
{
	const uint8_t *nul = memchr(r->p, '\0', r->left);

	if (nul == NULL)
		return false;
	*out = (const char *)r->p;
	*len = (size_t)(nul - r->p);
	r->p = nul + 1;
	r->left -= *len + 1;
	return true;
}
