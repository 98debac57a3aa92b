/* oidmap.c — OID → pointer map; see oidmap.h for the invariants. */
#include "util/oidmap.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"

/* The most slots: the largest power of two no larger than SIZE_MAX /
 * sizeof(void *), so that grow.h keeps every capacity a power of two. */
#define OIDMAP_MAX_CAP (SIZE_MAX / sizeof(void *) / 2 + 1)

/* Spread sequential OIDs over the table (the murmur3 32-bit finalizer). */
static size_t oid_hash(uint32_t oid)
{
	oid ^= oid >> 16;
	oid *= 0x85ebca6bu;
	oid ^= oid >> 13;
	oid *= 0xc2b2ae35u;
	oid ^= oid >> 16;
	return oid;
}

/* The slot holding oid, or the empty slot where it would go. */
static size_t slot_of(const struct oidmap *m, uint32_t oid)
{
	size_t mask = m->cap - 1;
	size_t i = oid_hash(oid) & mask;

	while (m->vals[i] != NULL && m->keys[i] != oid)
		i = (i + 1) & mask;
	return i;
}

void *oidmap_get(const struct oidmap *m, uint32_t oid)
{
	if (m->cap == 0)
		return NULL;
	return m->vals[slot_of(m, oid)];
}

/* Rehash into twice the slots (grow.h's first size, when empty); -1 on
 * allocation failure or when no larger table can be sized. */
static int grow(struct oidmap *m)
{
	size_t ncap = grow_capacity(m->cap, m->cap + 1, sizeof *m->vals, OIDMAP_MAX_CAP);
	struct oidmap n = {.cap = ncap, .used = m->used};

	if (ncap == 0)
		return -1;
	assert((ncap & (ncap - 1)) == 0); /* grow.h: powers of two stay powers of two */
	n.keys = calloc(ncap, sizeof *n.keys);
	n.vals = calloc(ncap, sizeof *n.vals);
	if (n.keys == NULL || n.vals == NULL) {
		free(n.keys);
		free(n.vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (m->vals[i] == NULL)
			continue;
		size_t j = slot_of(&n, m->keys[i]);
		n.keys[j] = m->keys[i];
		n.vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	*m = n;
	return 0;
}

int oidmap_put(struct oidmap *m, uint32_t oid, void *val, void **old)
{
	size_t i;

	assert(val != NULL);
	if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) < 0)
		return -1;
	i = slot_of(m, oid);
	*old = m->vals[i];
	if (*old == NULL)
		m->used++;
	m->keys[i] = oid;
	m->vals[i] = val;
	return 0;
}

void oidmap_reset(struct oidmap *m, void (*free_val)(void *))
{
	for (size_t i = 0; free_val && i < m->cap; i++)
		if (m->vals[i] != NULL)
			free_val(m->vals[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}
