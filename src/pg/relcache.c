/*
 * relcache.c — relations and type names pgoutput told us about, by OID.
 *
 * Both maps are open-addressing hash tables with linear probing over a
 * power-of-two number of slots. A slot is empty when its value is NULL, so
 * every OID (0 included) is a valid key. Nothing is ever removed, only
 * replaced, so probing needs no tombstones. Invariant: used * 4 < cap * 3
 * (at most 3/4 full), which keeps at least one empty slot and ends every
 * probe.
 */
#include "pg/relcache.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OIDMAP_MIN_CAP 16

struct oidmap {
	uint32_t *keys;
	void **vals; /* NULL marks an empty slot */
	size_t cap;  /* 0 or a power of two */
	size_t used;
};

struct relcache {
	struct oidmap rels;  /* struct relation * */
	struct oidmap types; /* char * "nsp.name" */
};

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
static size_t oidmap_slot(const struct oidmap *m, uint32_t oid)
{
	size_t mask = m->cap - 1;
	size_t i = oid_hash(oid) & mask;

	while (m->vals[i] != NULL && m->keys[i] != oid)
		i = (i + 1) & mask;
	return i;
}

static void *oidmap_get(const struct oidmap *m, uint32_t oid)
{
	if (m->cap == 0)
		return NULL;
	return m->vals[oidmap_slot(m, oid)];
}

/* Rehash into twice the slots (or the minimum); -1 on allocation failure. */
static int oidmap_grow(struct oidmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : OIDMAP_MIN_CAP;
	struct oidmap n = {.cap = ncap, .used = m->used};

	assert(ncap > m->cap); /* overflow */
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
		size_t j = oidmap_slot(&n, m->keys[i]);
		n.keys[j] = m->keys[i];
		n.vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	*m = n;
	return 0;
}

/*
 * Store val under oid. Returns the value it replaced (NULL if none) through
 * *old so the caller, which knows the value's type, can free it.
 * -1 on allocation failure, with the map unchanged.
 */
static int oidmap_put(struct oidmap *m, uint32_t oid, void *val, void **old)
{
	size_t i;

	assert(val != NULL);
	if ((m->used + 1) * 4 >= m->cap * 3 && oidmap_grow(m) < 0)
		return -1;
	i = oidmap_slot(m, oid);
	*old = m->vals[i];
	if (*old == NULL)
		m->used++;
	m->keys[i] = oid;
	m->vals[i] = val;
	return 0;
}

static void oidmap_reset(struct oidmap *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->vals[i] != NULL)
			free_val(m->vals[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

static void relation_free_void(void *rel)
{
	relation_free(rel);
}

/* Create an empty cache; NULL on allocation failure. */
struct relcache *relcache_new(void)
{
	return calloc(1, sizeof(struct relcache));
}

/* Free the cache, every relation and every type name in it; accepts NULL. */
void relcache_free(struct relcache *rc)
{
	if (rc == NULL)
		return;
	oidmap_reset(&rc->rels, relation_free_void);
	oidmap_reset(&rc->types, free);
	free(rc);
}

/* The entry for oid, or NULL. Valid until replaced or the cache is freed. */
struct relation *relcache_get(struct relcache *rc, uint32_t oid)
{
	return oidmap_get(&rc->rels, oid);
}

/* Take ownership of rel, replacing and freeing an older entry for its OID;
 * on allocation failure frees rel and returns -1. */
int relcache_put(struct relcache *rc, struct relation *rel)
{
	void *old;

	if (oidmap_put(&rc->rels, rel->oid, rel, &old) < 0) {
		relation_free(rel);
		return -1;
	}
	if (old != rel) /* putting the same entry twice must not free it */
		relation_free(old);
	return 0;
}

/* Free rel, its strings and its columns; accepts NULL. */
void relation_free(struct relation *rel)
{
	if (rel == NULL)
		return;
	if (rel->cols != NULL)
		for (uint16_t i = 0; i < rel->ncols; i++) {
			free(rel->cols[i].name);
			free(rel->cols[i].json_key);
		}
	free(rel->cols);
	free(rel->json_head);
	free(rel->nspname);
	free(rel->relname);
	free(rel);
}

/* Remember "nsp.name" for oid, replacing an earlier name; -1 on allocation
 * failure (the cache is then unchanged). */
int relcache_put_type(struct relcache *rc, uint32_t oid, const char *nsp, const char *name)
{
	size_t len = strlen(nsp) + 1 + strlen(name) + 1;
	char *qualified = malloc(len);
	void *old;

	if (qualified == NULL)
		return -1;
	snprintf(qualified, len, "%s.%s", nsp, name);
	if (oidmap_put(&rc->types, oid, qualified, &old) < 0) {
		free(qualified);
		return -1;
	}
	free(old);
	return 0;
}

/* The "nsp.name" received for oid, or NULL. Valid until replaced or the
 * cache is freed. */
const char *relcache_type_name(struct relcache *rc, uint32_t oid)
{
	return oidmap_get(&rc->types, oid);
}
