/*
 * oidmap.h — a map from PostgreSQL OIDs to pointers.
 *
 * Open addressing with linear probing over a power-of-two number of slots.
 * A slot is empty when its value is NULL, so every OID (0 included) is a
 * valid key and NULL is never stored. Nothing is removed, only replaced or
 * cleared all at once, so probing needs no tombstones. Invariant: used * 4
 * < cap * 3 (at most 3/4 full), which keeps an empty slot to end every
 * probe. The map owns no values: oidmap_put hands back the one it replaced
 * and oidmap_reset calls the caller's destructor, since only the caller
 * knows their type.
 */
#ifndef PGSTREAM_OIDMAP_H
#define PGSTREAM_OIDMAP_H

#include <stddef.h>
#include <stdint.h>

struct oidmap {
	uint32_t *keys;
	void **vals; /* NULL marks an empty slot */
	size_t cap;  /* 0 or a power of two */
	size_t used;
};

/* An empty map needs no allocation: zero it, or use OIDMAP_INIT. */
#define OIDMAP_INIT                                                                                \
	{                                                                                          \
		NULL, NULL, 0, 0                                                                   \
	}

/* The value stored under oid, or NULL. */
void *oidmap_get(const struct oidmap *m, uint32_t oid);

/* Store val (not NULL) under oid; *old receives the value it replaced, or
 * NULL. Returns -1 on allocation failure, with the map unchanged. */
int oidmap_put(struct oidmap *m, uint32_t oid, void *val, void **old);

/* Call free_val (if not NULL) on every value, then empty the map and free
 * its slots. The map can be used again afterwards. */
void oidmap_reset(struct oidmap *m, void (*free_val)(void *));

#endif
